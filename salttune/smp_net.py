"""Encoder-decoder networks from segmentation_models_pytorch (smp): U-Net, U-Net++ and FPN on any smp encoder.

The winning TGS solutions used exactly these: an ImageNet encoder (ResNet-34, SE-ResNeXt-50...) under a U-Net
or FPN decoder, often with scSE attention in the decoder. :class:`SmpNet` holds the smp model and does what the
home-made U-Net does around it: one input channel (plus the depth plane when ``use_depth``), reflection padding
to a multiple of 32 (the encoder down-samples 5 times) and cropping back, so a 101x101 image gives 101x101
logits.

smp is an optional extra (``pip install 'salttune[encoders]'``); it is imported only when such a network is
built.

Encoder weights (``encoder_weights``):

* ``None``: random initialisation.
* a pretrained-weights name of the encoder (``"imagenet"``; some encoders also have ``"advprop"``, ``"ssl"``...):
  fetched by smp from its hub when the machine is online.
* a file path: ``torch.save(encoder.state_dict(), path)`` of the same encoder, i.e. a dict of tensors with the
  encoder's own keys (``conv1.weight``, ``bn1.weight``, ``layer1.0.conv1.weight``... for a ResNet). A full smp
  model state dict (keys ``encoder.conv1.weight``...) works too: only its ``encoder.*`` keys are read. A first
  convolution saved with 3 input channels (an RGB ImageNet encoder) is folded into the network's 1 or 2 channels
  by smp's own rule (``patch_first_conv``: summed over RGB for one channel).

The loaded weights end up in the state dict, so ``model.config`` records ``encoder_weights=None``: a checkpoint
rebuilds the network without the file or the network connection (the run's ``config.yaml`` keeps the source).

Reference:
    Iakubovskii, "Segmentation Models Pytorch", https://github.com/qubvel/segmentation_models.pytorch;
    Roy et al., "Concurrent Spatial and Channel Squeeze & Excitation in Fully Convolutional Networks", 2018 (scSE).
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from salttune.errors import SalttuneError
from salttune.unet import _reflect_pad, with_depth_channel

__all__ = ["ARCHITECTURES", "SmpNet", "check_args", "import_smp", "load_encoder_file"]

# model.network -> smp class name (resolved lazily, smp being optional).
ARCHITECTURES: dict[str, str] = {"smp_unet": "Unet", "smp_unetplusplus": "UnetPlusPlus", "smp_fpn": "FPN"}
_ATTENTION = ("smp_unet", "smp_unetplusplus")  # the smp decoders that take decoder_attention_type
_STRIDE = 32  # 5 down-samplings in every smp encoder used here


def import_smp():
    """``segmentation_models_pytorch``, or a one-line SalttuneError saying how to install it."""
    try:
        import segmentation_models_pytorch as smp
    except ImportError as e:
        raise SalttuneError(f"the smp networks need segmentation_models_pytorch ({e}); "
                            "install them with: pip install 'salttune[encoders]'") from None
    except Exception as e:  # noqa: BLE001 - e.g. "operator torchvision::nms does not exist": torchvision built for another torch
        raise SalttuneError(f"segmentation_models_pytorch does not import ({type(e).__name__}: {str(e)[:100]}; torchvision "
                            f"must match torch {torch.__version__}); reinstall with: pip install 'salttune[encoders]'") from None
    return smp


def _check_encoder(smp: Any, name: str) -> None:
    """A one-line SalttuneError unless ``name`` is an smp encoder (or ``tu-<timm model>``)."""
    if name in smp.encoders.encoders:
        return
    if isinstance(name, str) and name.startswith("tu-"):
        import timm

        if timm.is_model(name[3:]):
            return
    some = ["resnet18", "resnet34", "resnet50", "se_resnext50_32x4d", "efficientnet-b0", "efficientnet-b3"]
    raise SalttuneError(f"model.encoder {name!r}: not an smp encoder; e.g. {', '.join(some)} "
                        f"({len(smp.encoders.encoders)} in all: segmentation_models_pytorch.encoders.get_encoder_names(); "
                        "or tu-<timm model>)")


def _hub_names(smp: Any, encoder: str) -> list[str]:
    """The pretrained-weights names smp knows for ``encoder`` (e.g. ``["imagenet"]``)."""
    entry = smp.encoders.encoders.get(encoder)
    return sorted(entry["pretrained_settings"]) if entry else ["imagenet"]


def load_encoder_file(path: str | Path, encoder: nn.Module, make_rgb_encoder: Any, name: str = "") -> None:
    """Load an encoder state dict from ``path`` into ``encoder`` (in place), checking it fits.

    Args:
        path: a ``torch.save`` file of a dict of tensors: the encoder's keys, or a full smp model's
            (``encoder.``-prefixed; the other keys are skipped).
        encoder: the network's encoder.
        make_rgb_encoder: ``() -> nn.Module``, the same encoder with 3 input channels, for files whose first
            convolution is RGB; smp's ``patch_first_conv`` then folds it into the encoder's channels.
        name: the encoder's name, for the messages.

    Raises:
        SalttuneError: the file is missing or unreadable, or its tensors do not fit the encoder.
    """
    path = Path(path)
    what = f"model.encoder_weights {str(path)!r}"
    if not path.is_file():
        raise SalttuneError(f"{what}: no such file; give a torch.save(encoder.state_dict()) file, 'imagenet' "
                            "(needs the network) or null")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, pickle.UnpicklingError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise SalttuneError(f"{what}: not a readable torch state dict ({first[:120]}); "
                            "write it with torch.save(encoder.state_dict(), path)") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SalttuneError(f"{what}: not a state dict (a dict of tensors); write it with torch.save(encoder.state_dict(), path)")
    if any(k.startswith("encoder.") for k in state):  # a full smp model: keep its encoder
        state = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    try:
        encoder.load_state_dict(state)
        return
    except RuntimeError as e:
        problem = _first_problem(str(e))
    try:  # an RGB first convolution: load into a 3-channel encoder, fold the channels as smp does
        from segmentation_models_pytorch.encoders._utils import patch_first_conv

        rgb = make_rgb_encoder()
        rgb.load_state_dict(state)
        cin = next(m for m in encoder.modules() if isinstance(m, nn.Conv2d)).in_channels
        patch_first_conv(rgb, new_in_channels=cin, pretrained=True)
        encoder.load_state_dict(rgb.state_dict())
    except RuntimeError:
        raise SalttuneError(f"{what}: does not fit encoder {name or type(encoder).__name__} ({problem}); "
                            "give a state dict of the same model.encoder") from None


def _first_problem(message: str) -> str:
    """The first specific line of a ``load_state_dict`` error, shortened."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return (lines[1] if len(lines) > 1 else lines[0])[:200]


def check_args(network: str, encoder: str = "resnet34", encoder_weights: str | None = None,
               decoder_attention: str | None = None, deep_supervision: bool = False) -> tuple[Any, list[str]]:
    """Check an smp network's arguments without building it (nothing is downloaded or loaded).

    Returns:
        The smp module and the pretrained-weights names of ``encoder``.

    Raises:
        SalttuneError: one line naming the bad argument: an unknown network or encoder, attention the decoder
            lacks, deep supervision, an ``encoder_weights`` that is neither a weights name nor a file, or smp
            missing.
    """
    if network not in ARCHITECTURES:
        raise SalttuneError(f"unknown smp network {network!r}; valid names: {', '.join(ARCHITECTURES)}")
    if deep_supervision:
        raise SalttuneError(f"model.deep_supervision=true: only the home-made network 'unet' has it, not {network}; "
                            "set model.deep_supervision=false or model.network=unet")
    if decoder_attention not in (None, "scse"):
        raise SalttuneError(f"model.decoder_attention {decoder_attention!r}: give null or scse")
    if decoder_attention is not None and network not in _ATTENTION:
        raise SalttuneError(f"model.decoder_attention={decoder_attention}: {network} has no decoder attention "
                            f"(only {', '.join(_ATTENTION)}); set model.decoder_attention=null")
    smp = import_smp()
    _check_encoder(smp, encoder)
    hub = _hub_names(smp, encoder)
    if encoder_weights is not None and encoder_weights not in hub and not Path(encoder_weights).is_file():
        raise SalttuneError(f"model.encoder_weights {str(encoder_weights)!r}: no such file, and not a weights name of "
                            f"{encoder} ({', '.join(hub)}); give a torch.save(encoder.state_dict()) file, "
                            f"{hub[0]} (needs the network) or null")
    return smp, hub


class SmpNet(nn.Module):
    """An smp encoder-decoder with one logit per pixel; the logits have the input's height and width.

    Args:
        network: a name in ``ARCHITECTURES`` (``smp_unet``, ``smp_unetplusplus``, ``smp_fpn``).
        encoder: an smp encoder name (``resnet34``, ``se_resnext50_32x4d``, ``efficientnet-b0``...).
        encoder_weights: ``None``, a pretrained-weights name (``"imagenet"``) or a state-dict file (module doc).
        decoder_attention: ``None`` or ``"scse"`` (smp's ``decoder_attention_type``; U-Net and U-Net++ only).
        in_channels: image channels (1 for TGS).
        use_depth: add the image's depth z (normalised by the caller) as an extra constant input channel.
        salt_head: add smp's classification head on the deepest encoder feature; ``forward`` then returns
            ``{"logits": (B, 1, H, W), "salt": (B,)}`` (``salt``: logit that the image holds salt).
        deep_supervision: not available for smp networks; ``True`` raises ``SalttuneError``.

    Shape:
        x: (B, in_channels, H, W) float; depth: (B,) float, only when ``use_depth``.
        Output: (B, 1, H, W) logits, or the dict above with ``salt_head``.
    """

    def __init__(
        self,
        network: str = "smp_unet",
        encoder: str = "resnet34",
        encoder_weights: str | None = None,
        decoder_attention: str | None = None,
        in_channels: int = 1,
        use_depth: bool = False,
        salt_head: bool = False,
        deep_supervision: bool = False,
    ) -> None:
        super().__init__()
        smp, hub = check_args(network, encoder, encoder_weights, decoder_attention, deep_supervision)
        self.config: dict[str, Any] = {
            "network": network, "encoder": encoder, "encoder_weights": None, "decoder_attention": decoder_attention,
            "in_channels": in_channels, "use_depth": use_depth, "salt_head": salt_head, "deep_supervision": False,
        }
        self.use_depth = use_depth
        self.salt_head = salt_head
        cin = in_channels + int(use_depth)
        kwargs: dict[str, Any] = {"encoder_name": encoder, "in_channels": cin, "classes": 1}
        if network in _ATTENTION:
            kwargs["decoder_attention_type"] = decoder_attention
        if salt_head:
            kwargs["aux_params"] = {"classes": 1}
        arch = getattr(smp, ARCHITECTURES[network])
        from_hub = encoder_weights is not None and encoder_weights in hub
        try:
            self.model = arch(encoder_weights=encoder_weights if from_hub else None, **kwargs)
        except Exception as e:  # noqa: BLE001 - any failure of the download (DNS, HTTP, hub cache) is the same to the user
            if not from_hub:
                raise
            raise SalttuneError(f"model.encoder_weights={encoder_weights}: the {encoder} weights could not be fetched "
                                f"({type(e).__name__}; is the machine offline?); download them elsewhere and pass the "
                                "file instead: model.encoder_weights=/path/to/encoder.pt (torch.save(encoder.state_dict()))") from None
        if encoder_weights is not None and not from_hub:
            def make_rgb_encoder() -> nn.Module:
                return smp.encoders.get_encoder(encoder, in_channels=3, depth=5, weights=None)

            load_encoder_file(encoder_weights, self.model.encoder, make_rgb_encoder, encoder)

    def forward(self, x: torch.Tensor, depth: torch.Tensor | None = None) -> torch.Tensor | dict[str, torch.Tensor]:
        """Logits (and the salt logit with ``salt_head``) for a batch of images.

        Args:
            x: images, (B, in_channels, H, W) float.
            depth: normalised image depth z, (B,) float; required iff the model has ``use_depth``.

        Returns:
            Logits (B, 1, H, W), or ``{"logits": (B, 1, H, W), "salt": (B,)}`` with ``salt_head``.
        """
        x = with_depth_channel(x, depth, self.use_depth, "network")
        h, w = x.shape[-2:]
        ph, pw = -h % _STRIDE, -w % _STRIDE  # 101 -> 128: 13 above, 14 below
        top, left = ph // 2, pw // 2
        x = _reflect_pad(x, (left, pw - left, top, ph - top))  # (B, C, H', W'), multiples of 32
        out = self.model(x)
        if self.salt_head:
            mask, label = out  # (B, 1, H', W'), (B, 1)
            return {"logits": mask[..., top : top + h, left : left + w], "salt": label[:, 0]}
        return out[..., top : top + h, left : left + w]  # (B, 1, H, W)
