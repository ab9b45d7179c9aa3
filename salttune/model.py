"""The network a config names: one dict from name to builder, and the helpers every network shares.

``NETWORKS`` maps ``model.network`` to a builder taking the model keywords: ``unet``, the home-made U-Net
(:mod:`salttune.unet`), and ``smp_unet``, ``smp_unetplusplus``, ``smp_fpn``, encoder-decoders from
segmentation_models_pytorch (:mod:`salttune.smp_net`, the optional ``encoders`` extra). Every network keeps its
constructor keywords in ``model.config`` (plain data), so a checkpoint that stores ``model_args=model.config``
rebuilds it alone with :func:`build_model`.

Which ``model.*`` keys a network uses: those its builder names. The others are ignored, so one config (and
``config_to_dict(cfg.model)``) builds any network: ``base_width``, ``depth``, ``block``, ``dropout`` and ``init``
are the home-made U-Net's; ``encoder``, ``encoder_weights`` and ``decoder_attention`` the smp networks'.
``in_channels``, ``use_depth`` and ``salt_head`` are shared; ``input_size`` and ``input_mode`` (the
:mod:`salttune.geometry` wrapper) apply to every network.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import torch
from torch import nn

from salttune.errors import SalttuneError
from salttune.geometry import Geometry
from salttune.unet import BLOCKS, UNet

__all__ = ["NETWORKS", "build_model", "check_model", "count_parameters", "network_arguments"]


_SMP_CHECKED = ("encoder", "encoder_weights", "decoder_attention", "deep_supervision")


def _smp(network: str) -> Callable[..., nn.Module]:
    """The builder of an smp network (smp itself is imported only when one is built)."""

    def build(encoder: str = "resnet34", encoder_weights: str | None = None, decoder_attention: str | None = None,
              in_channels: int = 1, use_depth: bool = False, salt_head: bool = False,
              deep_supervision: bool = False) -> nn.Module:
        from salttune.smp_net import SmpNet

        return SmpNet(network, encoder=encoder, encoder_weights=encoder_weights, decoder_attention=decoder_attention,
                      in_channels=in_channels, use_depth=use_depth, salt_head=salt_head, deep_supervision=deep_supervision)

    return build


NETWORKS: dict[str, Callable[..., nn.Module]] = {
    "unet": UNet,
    "smp_unet": _smp("smp_unet"),
    "smp_unetplusplus": _smp("smp_unetplusplus"),
    "smp_fpn": _smp("smp_fpn"),
}
_GEOMETRY = ("input_size", "input_mode")  # keys of the Geometry wrapper, for every network


def network_arguments(network: str) -> list[str]:
    """The keywords the builder of ``network`` takes, in order."""
    return list(inspect.signature(NETWORKS[network]).parameters)


def build_model(**kwargs: Any) -> nn.Module:
    """Build a network from config keywords, checking their names first.

    Args:
        **kwargs: ``network`` (a name in ``NETWORKS``; ``unet`` when absent, as in checkpoints written before it
            existed), the network's constructor arguments, and optionally ``input_size`` and ``input_mode``
            (then the network is wrapped in :class:`salttune.geometry.Geometry`). ``model.*`` keys the network
            does not use are ignored (module doc); any other keyword raises ``SalttuneError``.

    Returns:
        The network, with ``model.config`` holding the full resolved arguments.
    """
    network, args = _network_args(kwargs)
    net = NETWORKS[network](**args)
    if kwargs.get("input_size") is None:
        return net
    return Geometry(net, kwargs["input_size"], kwargs.get("input_mode", "pad"), network=network)


def check_model(**kwargs: Any) -> None:
    """Check config keywords as :func:`build_model` would, without building the network: the CLI calls it before
    writing anything. The home-made U-Net is built (it is small); an smp network's names, extra and weights file
    are checked, nothing downloaded.

    Raises:
        SalttuneError: one line naming the bad keyword.
    """
    network, args = _network_args(dict(kwargs))
    if network.startswith("smp_"):
        from salttune.smp_net import check_args

        check_args(network, **{k: args[k] for k in _SMP_CHECKED if k in args})
    else:
        NETWORKS[network](**args)


def _network_args(kwargs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(network, the keywords its builder takes)`` from config keywords; ``kwargs`` loses ``network``."""
    network = kwargs.pop("network", "unet")
    if network not in NETWORKS:
        raise SalttuneError(f"unknown model.network {network!r}; valid names: {', '.join(NETWORKS)}")
    takes = network_arguments(network)
    # every model.* config key is some network's argument or the geometry's (tests/test_geometry.py checks it)
    known = set().union(*(network_arguments(n) for n in NETWORKS), _GEOMETRY)
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise SalttuneError(f"unknown model argument(s) {', '.join(unknown)}; valid: "
                            f"{', '.join([*takes, 'network', *_GEOMETRY])}")
    return network, {k: v for k, v in kwargs.items() if k in takes}


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


if __name__ == "__main__":  # python -m salttune.model: parameter count and CPU timing
    import argparse
    import time

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="unet", choices=list(NETWORKS))
    parser.add_argument("--encoder", default="resnet34", help="smp networks: the encoder")
    parser.add_argument("--base-width", type=int, default=16)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--block", default="residual", choices=sorted(BLOCKS))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=101)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    net = build_model(network=args.network, encoder=args.encoder, base_width=args.base_width, depth=args.depth,
                      block=args.block)
    x = torch.randn(args.batch, 1, args.size, args.size)
    net(x).mean().backward()  # warm-up
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        net.zero_grad(set_to_none=True)
        net(x).mean().backward()
        times.append(time.perf_counter() - t0)
    print(
        f"{args.network} " + (f"{args.block} width={args.base_width} depth={args.depth}" if args.network == "unet"
                              else f"encoder={args.encoder}") + f": {count_parameters(net):,} params; "
        f"fwd+bwd batch {args.batch} at {args.size}x{args.size}: median {sorted(times)[len(times) // 2]:.3f} s "
        f"({torch.get_num_threads()} threads)"
    )
