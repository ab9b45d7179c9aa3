"""A small U-Net for 101x101 single-channel seismic images.

The network pads its input by reflection to a multiple of ``2**depth`` so that every pooling halves
the size exactly, and crops the logits back, so a 101x101 image gives 101x101 logits.

Named choices live in two dicts, as the search space and the config use the same names:

* ``BLOCKS``: the convolution block used at every level (``plain``, ``residual``, ``se``, ``residual_se``,
  ``scse``, ``residual_scse``).
* ``INITS``: how conv weights are initialised (``he_normal``, ``xavier_uniform``).

The model keeps its constructor arguments in ``model.config`` (a plain dict), so a checkpoint that
stores ``model_args=model.config`` next to the weights rebuilds the network alone:
``UNet(**ckpt["model_args"])``.

Mixed precision and channels-last are the training loop's business; the model only has to work
under ``torch.autocast`` and after ``model.to(memory_format=torch.channels_last)``.

Reference:
    Ronneberger et al., "U-Net: Convolutional Networks for Biomedical Image Segmentation", 2015.
    He et al., "Deep Residual Learning for Image Recognition", 2016.
    Hu et al., "Squeeze-and-Excitation Networks", 2018.
    Roy, Navab, Wachinger, "Concurrent Spatial and Channel Squeeze & Excitation in Fully Convolutional
    Networks", MICCAI 2018, arXiv:1803.02579 (scSE).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from salttune.errors import SalttuneError

__all__ = [
    "BLOCKS",
    "INITS",
    "ConvBNReLU",
    "PlainBlock",
    "ResidualBlock",
    "SEModule",
    "SCSEModule",
    "UNet",
    "unet_arguments",
]


def _lookup(table: Mapping[str, Any], name: str, what: str) -> Any:
    """``table[name]``, or a one-line SalttuneError naming the bad value and the valid names."""
    try:
        return table[name]
    except (KeyError, TypeError):
        raise SalttuneError(f"unknown {what} {name!r}; valid names: {', '.join(sorted(table))}") from None


# ----------------------------------------------------------------------------------------------
# Building blocks. Every block builder has the signature (in_channels, out_channels) -> nn.Module
# and keeps the spatial size: (B, C_in, H, W) -> (B, C_out, H, W).


class ConvBNReLU(nn.Sequential):
    """3x3 conv (no bias, BN follows) -> BatchNorm -> ReLU.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        act: append the ReLU; a residual branch leaves it out before the addition.

    Shape:
        (B, in_channels, H, W) -> (B, out_channels, H, W)
    """

    def __init__(self, in_channels: int, out_channels: int, act: bool = True) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class SEModule(nn.Module):
    """Squeeze-and-excitation: rescale each channel by a gate computed from its global mean.

    Args:
        channels: channels in and out.
        reduction: the hidden width is ``max(min_channels, channels // reduction)``.
        min_channels: floor on the hidden width, so tiny networks (width 8) still get a gate.

    Shape:
        (B, C, H, W) -> (B, C, H, W)

    Reference:
        Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018; timm ``layers/squeeze_excite.py``.
    """

    def __init__(self, channels: int, reduction: int = 8, min_channels: int = 4) -> None:
        super().__init__()
        hidden = max(min_channels, channels // reduction)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)  # (B, C, 1, 1)
        s = self.fc2(self.act(self.fc1(s)))  # (B, C, 1, 1)
        return x * s.sigmoid()


class SCSEModule(nn.Module):
    """Concurrent spatial and channel squeeze & excitation: ``x * cSE(x) + x * sSE(x)``.

    The channel gate is an ``SEModule``'s (global mean -> 1x1 conv -> ReLU -> 1x1 conv -> sigmoid, one value
    per channel); the spatial gate is a 1x1 conv to one channel and a sigmoid (one value per pixel). The two
    recalibrated maps are added, as in the paper's "addition" aggregation and smp's ``SCSEModule``.

    Args:
        channels: channels in and out.
        reduction: the channel gate's hidden width is ``max(min_channels, channels // reduction)``.
        min_channels: floor on that width, so tiny networks still get a gate.

    Shape:
        (B, C, H, W) -> (B, C, H, W)

    Reference:
        Roy et al., "Concurrent Spatial and Channel Squeeze & Excitation in Fully Convolutional Networks",
        MICCAI 2018, arXiv:1803.02579, Sec. 2.3; segmentation_models_pytorch ``base/modules.py`` ``SCSEModule``.
    """

    def __init__(self, channels: int, reduction: int = 8, min_channels: int = 4) -> None:
        super().__init__()
        hidden = max(min_channels, channels // reduction)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        self.spatial = nn.Conv2d(channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True)))).sigmoid()  # (B, C, 1, 1)
        s = self.spatial(x).sigmoid()  # (B, 1, H, W)
        return x * c + x * s


def _gate(kind: str | None, channels: int) -> nn.Module:
    """The attention gate a block ends with: none, ``se`` or ``scse``."""
    return {None: nn.Identity, "se": SEModule, "scse": SCSEModule}[kind](*([channels] if kind else []))


class PlainBlock(nn.Module):
    """Two conv-BN-ReLU layers, optionally followed by squeeze-and-excitation.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        gate: ``"se"`` (an ``SEModule``) or ``"scse"`` (an ``SCSEModule``) on the output; None for none.

    Shape:
        (B, in_channels, H, W) -> (B, out_channels, H, W)
    """

    def __init__(self, in_channels: int, out_channels: int, gate: str | None = None) -> None:
        super().__init__()
        self.conv1 = ConvBNReLU(in_channels, out_channels)
        self.conv2 = ConvBNReLU(out_channels, out_channels)
        self.se = _gate(gate, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.se(self.conv2(self.conv1(x)))


class ResidualBlock(nn.Module):
    """Post-activation residual block (ResNet "basic block"), with optional SE on the branch.

    ``relu(branch(x) + shortcut(x))`` where ``branch`` is conv-BN-ReLU-conv-BN (then SE if asked, so
    the gate scales the residual before the addition, as in SE-ResNet) and ``shortcut`` is the
    identity, or a 1x1 conv + BN when the channel count changes.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        gate: ``"se"`` or ``"scse"``: that gate on the residual branch before the addition; None for none.

    Shape:
        (B, in_channels, H, W) -> (B, out_channels, H, W)

    Reference:
        He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (Fig. 2);
        Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018 (Fig. 3, SE-ResNet module).
    """

    def __init__(self, in_channels: int, out_channels: int, gate: str | None = None) -> None:
        super().__init__()
        self.conv1 = ConvBNReLU(in_channels, out_channels)
        self.conv2 = ConvBNReLU(out_channels, out_channels, act=False)
        self.se = _gate(gate, out_channels)
        if in_channels == out_channels:
            self.shortcut: nn.Module = nn.Identity()
        else:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)
            )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.se(self.conv2(self.conv1(x)))  # (B, C_out, H, W)
        return self.act(branch + self.shortcut(x))


BLOCKS: dict[str, Callable[[int, int], nn.Module]] = {
    "plain": lambda cin, cout: PlainBlock(cin, cout),
    "residual": lambda cin, cout: ResidualBlock(cin, cout),
    "se": lambda cin, cout: PlainBlock(cin, cout, gate="se"),
    "residual_se": lambda cin, cout: ResidualBlock(cin, cout, gate="se"),
    "scse": lambda cin, cout: PlainBlock(cin, cout, gate="scse"),
    "residual_scse": lambda cin, cout: ResidualBlock(cin, cout, gate="scse"),
}


# ----------------------------------------------------------------------------------------------
# Initialisers: applied to every Conv2d weight; conv biases to 0, BatchNorm weight 1 and bias 0.


def _he_normal(weight: torch.Tensor) -> None:
    # fan_out as in torchvision's ResNet: it keeps the variance of the gradients through the
    # backward pass; std = sqrt(2 / (out_channels * kh * kw)).
    nn.init.kaiming_normal_(weight, mode="fan_out", nonlinearity="relu")


def _xavier_uniform(weight: torch.Tensor) -> None:
    # U(-a, a) with a = sqrt(6 / (fan_in + fan_out)), fan = channels * kh * kw.
    nn.init.xavier_uniform_(weight)


INITS: dict[str, Callable[[torch.Tensor], None]] = {
    "he_normal": _he_normal,
    "xavier_uniform": _xavier_uniform,
}


def init_weights(module: nn.Module, init: str = "he_normal") -> None:
    """Initialise every conv and BatchNorm below ``module`` in place.

    Args:
        module: the network.
        init: a name in ``INITS``.
    """
    init_conv = _lookup(INITS, init, "init")
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            init_conv(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def init_logit_layer(layer: nn.Conv2d | nn.Linear) -> None:
    """Start a layer that gives logits near 0 (probability 1/2): weights N(0, 0.01), bias 0.

    He fan-out initialisation, right for a conv followed by a ReLU, gives a 1x1 logit conv over 16 channels
    logits with a standard deviation of about 4.6: the first steps then only undo confident random guesses.
    Detection and segmentation heads (RetinaNet, Lin et al. 2017, section 4.1) start small instead.
    """
    nn.init.normal_(layer.weight, std=0.01)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


def with_depth_channel(x: torch.Tensor, depth: torch.Tensor | None, use_depth: bool, what: str) -> torch.Tensor:
    """The input with the image depth z as one more constant channel when the network ``use_depth``.

    Shape:
        x: (B, C, H, W); depth: (B,) or None; output: (B, C + use_depth, H, W).
    """
    if use_depth:
        if depth is None:
            raise ValueError(f"this {what} was built with use_depth=True; pass forward(x, depth=...)")
        b, _, h, w = x.shape
        z = depth.to(dtype=x.dtype).reshape(b, 1, 1, 1).expand(b, 1, h, w)  # (B, 1, H, W)
        return torch.cat([x, z], dim=1)  # (B, C+1, H, W)
    if depth is not None:
        raise ValueError(f"this {what} was built with use_depth=False; do not pass depth")
    return x


# ----------------------------------------------------------------------------------------------
# Padding to a multiple of 2**depth.


def _reflect_index(size: int, before: int, after: int) -> torch.Tensor:
    """Source indices of a reflection padding of any width: the signal mirrored at both ends, repeated.

    Reflection without repeating the edge has period ``2 (size - 1)``; a size of 1 has nothing to
    mirror and repeats its one value.
    """
    idx = torch.arange(-before, size + after)
    if size == 1:
        return torch.zeros_like(idx)
    period = 2 * (size - 1)
    idx = idx % period
    return torch.where(idx < size, idx, period - idx)


def _reflect_pad(x: torch.Tensor, pad: tuple[int, int, int, int]) -> torch.Tensor:
    """Reflection padding ``(left, right, top, bottom)`` of the last two dims, for pads of any width.

    ``F.pad(mode="reflect")`` (which keeps channels-last) covers pads smaller than the image, i.e.
    every real case (101 -> 112 pads 5 and 6). Tiny inputs, e.g. 5x5 padded to 16, need more than one
    reflection; those gather rows and columns with ``numpy.pad(mode="reflect")``'s indexing.
    """
    left, right, top, bottom = pad
    h, w = x.shape[-2:]
    if max(left, right) < w and max(top, bottom) < h:
        return F.pad(x, pad, mode="reflect")
    rows = _reflect_index(h, top, bottom).to(x.device)
    cols = _reflect_index(w, left, right).to(x.device)
    return x.index_select(-2, rows).index_select(-1, cols)


# ----------------------------------------------------------------------------------------------
# The network.


class UNet(nn.Module):
    """U-Net with a configurable block; logits have the input's height and width.

    Encoder: a block at full resolution, then ``depth`` times max-pool + block doubling the width;
    the last of these is the bottleneck. Decoder: ``depth`` times 1x1 conv halving the width, bilinear
    x2 upsampling, concatenation with the encoder feature of that size, block. A final 1x1 conv gives
    one logit per pixel. Upsampling is bilinear rather than a transposed conv, so every learnable
    layer is a ``Conv2d`` and the initialisers mean the same thing everywhere (the 1x1 conv runs
    before the upsampling; the two are linear and commute, and this way it runs on 4x fewer pixels).

    Args:
        in_channels: image channels (1 for TGS).
        base_width: channels at full resolution; level ``i`` has ``base_width * 2**i``.
        depth: number of down-samplings (>= 1); the input is padded to a multiple of ``2**depth``.
        block: a name in ``BLOCKS``.
        dropout: spatial dropout (``nn.Dropout2d``) probability after the bottleneck and after each
            decoder block; 0 disables it.
        use_depth: add the image's depth z (already normalised by the caller) as an extra constant
            input channel; ``forward`` then needs ``depth``.
        init: a name in ``INITS``.
        deep_supervision: add a 1x1 conv logit to every decoder level but the last (coarse to fine),
            upsampled bilinearly to the input size; trained by :class:`salttune.heads.HeadLoss`.
        salt_head: add an image-level logit "this image holds salt": global mean of the bottleneck ->
            linear layer.

    Shape:
        x: (B, in_channels, H, W) float; depth: (B,) float, only when ``use_depth``.
        Output: (B, 1, H, W) logits; with ``deep_supervision`` or ``salt_head`` the dict of the output
        protocol (see :mod:`salttune.heads`): ``{"logits": (B, 1, H, W), "aux": [(B, 1, H, W)] * (depth - 1),
        "salt": (B,)}``, with the keys of the heads it has.

    Reference:
        Deep supervision and the salt-present head as in the 4th-place TGS solution (SeuTao,
        Kaggle_TGS2018_4th_solution, ``model/model.py``: ``logit_pixel``, ``logit_image``).
    """

    def __init__(
        self,
        in_channels: int = 1,
        base_width: int = 16,
        depth: int = 4,
        block: str = "residual",
        dropout: float = 0.0,
        use_depth: bool = False,
        init: str = "he_normal",
        deep_supervision: bool = False,
        salt_head: bool = False,
    ) -> None:
        super().__init__()
        make_block = _lookup(BLOCKS, block, "block")
        _lookup(INITS, init, "init")  # fail before building anything
        if not isinstance(depth, int) or depth < 1:
            raise SalttuneError(f"model depth must be an integer >= 1, got {depth!r}")
        if not isinstance(base_width, int) or base_width < 1:
            raise SalttuneError(f"model base_width must be an integer >= 1, got {base_width!r}")
        if not 0.0 <= dropout < 1.0:
            raise SalttuneError(f"model dropout must be in [0, 1), got {dropout!r}")
        if deep_supervision and depth < 2:
            raise SalttuneError("model deep_supervision needs depth >= 2 (a decoder level besides the last); "
                                "raise model.depth or turn deep_supervision off")
        args = locals()
        self.config: dict[str, Any] = {name: args[name] for name in unet_arguments()}
        self.depth = depth
        self.use_depth = use_depth
        widths = [base_width * 2**i for i in range(depth + 1)]  # e.g. [16, 32, 64, 128, 256]

        self.stem = make_block(in_channels + int(use_depth), widths[0])
        self.pool = nn.MaxPool2d(2)
        self.down = nn.ModuleList(make_block(widths[i], widths[i + 1]) for i in range(depth))
        self.reduce = nn.ModuleList(nn.Conv2d(widths[i + 1], widths[i], 1) for i in range(depth))
        self.up = nn.ModuleList(make_block(2 * widths[i], widths[i]) for i in range(depth))
        self.drop = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Conv2d(widths[0], 1, 1)
        # Extra heads exist only when asked for, so a network without them keeps today's parameters.
        self.aux = nn.ModuleList(nn.Conv2d(widths[i], 1, 1) for i in range(1, depth)) if deep_supervision else None
        self.salt = nn.Linear(widths[depth], 1) if salt_head else None
        init_weights(self, init)
        for layer in [self.head, *(self.aux or []), *([self.salt] if self.salt is not None else [])]:
            init_logit_layer(layer)

    def forward(self, x: torch.Tensor, depth: torch.Tensor | None = None) -> torch.Tensor | dict[str, Any]:
        """Logits for a batch of images.

        Args:
            x: images, (B, in_channels, H, W) float.
            depth: normalised image depth z, (B,) float; required iff the model has ``use_depth``.

        Returns:
            Logits, (B, 1, H, W); or, for a network with extra heads, the output-protocol dict.
        """
        x = with_depth_channel(x, depth, self.use_depth, "UNet")

        h, w = x.shape[-2:]
        m = 2**self.depth
        ph, pw = -h % m, -w % m  # e.g. 101 -> 112 for depth 4: pad 11 = 5 above + 6 below
        top, left = ph // 2, pw // 2
        x = _reflect_pad(x, (left, pw - left, top, ph - top))  # (B, C, H', W'), H', W' multiples of m

        skips = [self.stem(x)]  # (B, w0, H', W')
        for block in self.down:
            skips.append(block(self.pool(skips[-1])))  # (B, w_{i+1}, H'/2^{i+1}, W'/2^{i+1})
        y = self.drop(skips.pop())  # bottleneck: (B, w_depth, H'/m, W'/m)
        out: dict[str, Any] = {}
        if self.salt is not None:
            out["salt"] = self.salt(y.mean((2, 3)))[:, 0]  # (B, w_depth) -> (B,)
        aux = []
        for i in reversed(range(self.depth)):
            y = self.reduce[i](y)  # (B, w_i, h, w)
            y = F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False)  # (B, w_i, 2h, 2w)
            y = self.up[i](torch.cat([y, skips.pop()], dim=1))  # (B, 2 w_i, 2h, 2w) -> (B, w_i, 2h, 2w)
            y = self.drop(y)
            if self.aux is not None and i > 0:
                a = F.interpolate(self.aux[i - 1](y), size=x.shape[-2:], mode="bilinear", align_corners=False)  # (B, 1, H', W')
                aux.append(a[..., top : top + h, left : left + w])  # (B, 1, H, W)
        logits = self.head(y)[..., top : top + h, left : left + w]  # (B, 1, H', W') -> (B, 1, H, W)
        if self.aux is None and self.salt is None:
            return logits
        if self.aux is not None:
            out["aux"] = aux  # coarse to fine
        return {"logits": logits, **out}


def unet_arguments() -> list[str]:
    """The names of ``UNet``'s constructor arguments, in order: the one list of them."""
    return list(inspect.signature(UNet).parameters)
