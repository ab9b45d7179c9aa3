"""Input geometry: the size a network sees, for every network alike.

Many TGS solutions did not feed the 101x101 images as they are: they padded them (reflection) to 128 or
resized them to 202 or 256, so that deep encoders keep more spatial detail. :class:`Geometry` wraps any
network of :data:`salttune.model.NETWORKS` and does this around it: any HxW input is mapped to
``input_size`` x ``input_size``, and every spatial output (the logits and each ``aux`` tensor of the output
protocol) is mapped back to exactly HxW; ``salt`` (one value per image) passes through.

``INPUT_MODES`` (``model.input_mode``):

* ``pad``: reflection padding, the image centred (``(S - H) // 2`` rows above); the outputs are cropped back.
  ``input_size`` must be at least the image side.
* ``resize``: bilinear resizing to ``input_size``; the outputs are resized back (bilinear).

An input that already has the size passes through untouched, so ``input_size=101`` on 101x101 images is
the network alone.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from salttune.errors import SalttuneError
from salttune.unet import _reflect_pad

__all__ = ["INPUT_MODES", "Geometry", "map_spatial"]

INPUT_MODES = ("pad", "resize")
Output = torch.Tensor | dict[str, Any]


def map_spatial(out: Output, fn: Callable[[torch.Tensor], torch.Tensor]) -> Output:
    """Apply ``fn`` to every spatial tensor of a network output: a logits Tensor, or the dict's ``logits``
    and each ``aux`` tensor; other entries (``salt``: (B,)) pass through."""
    if isinstance(out, torch.Tensor):
        return fn(out)
    mapped = dict(out)
    if "logits" in mapped:
        mapped["logits"] = fn(mapped["logits"])
    if "aux" in mapped:
        mapped["aux"] = [fn(a) for a in mapped["aux"]]
    return mapped


class Geometry(nn.Module):
    """A network that sees ``input_size`` x ``input_size`` images whatever the input's size.

    Args:
        net: the network; ``forward(x, depth=None)`` returns logits or an output-protocol dict.
        input_size: side of the square the network sees.
        input_mode: ``pad`` or ``resize`` (module doc).
        network: the network's name in ``NETWORKS``, kept in ``config`` so that ``build_model(**config)``
            rebuilds the pair.

    Shape:
        x: (B, C, H, W); depth: (B,) or None. Output: as the network's, with every spatial tensor (B, 1, H, W).
    """

    def __init__(self, net: nn.Module, input_size: int, input_mode: str = "pad", network: str = "unet") -> None:
        super().__init__()
        if input_mode not in INPUT_MODES:
            raise SalttuneError(f"model.input_mode {input_mode!r}: give one of {', '.join(INPUT_MODES)}")
        if not isinstance(input_size, int) or isinstance(input_size, bool) or input_size < 1:
            raise SalttuneError(f"model.input_size must be an integer >= 1, got {input_size!r}")
        self.net = net
        self.input_size = input_size
        self.input_mode = input_mode
        self.config: dict[str, Any] = {"network": network, **net.config, "input_size": input_size, "input_mode": input_mode}
        # A checkpoint of the bare network (written before the geometry existed) loads too: its keys lack "net.".
        self.register_load_state_dict_pre_hook(_add_net_prefix)

    def forward(self, x: torch.Tensor, depth: torch.Tensor | None = None) -> Output:
        h, w = x.shape[-2:]
        s = self.input_size
        if (h, w) == (s, s):
            return self.net(x, depth)
        if self.input_mode == "pad":
            if h > s or w > s:
                raise SalttuneError(f"model.input_size={s} is smaller than the {h}x{w} images; with input_mode=pad "
                                    f"give input_size >= {max(h, w)}, or input_mode=resize")
            top, left = (s - h) // 2, (s - w) // 2  # 101 -> 128: 13 above, 14 below
            x = _reflect_pad(x, (left, s - w - left, top, s - h - top))  # (B, C, S, S)
            return map_spatial(self.net(x, depth), lambda t: t[..., top : top + h, left : left + w])  # (B, 1, H, W)
        x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False)  # (B, C, S, S)
        return map_spatial(self.net(x, depth),
                           lambda t: F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False))  # (B, 1, H, W)


def _add_net_prefix(module: nn.Module, state_dict: dict, prefix: str, *args: Any) -> None:
    """Load-state-dict pre-hook: rename ``KEY`` to ``net.KEY`` when the dict holds the bare network's keys."""
    keys = [k for k in state_dict if k.startswith(prefix)]
    if keys and not any(k.startswith(prefix + "net.") for k in keys):
        for k in keys:
            state_dict[prefix + "net." + k[len(prefix):]] = state_dict.pop(k)
