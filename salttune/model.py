"""The network a config names: one dict from name to builder, and the helpers every network shares.

``NETWORKS`` maps ``model.network`` to a builder taking the model keywords; today it holds the home-made
U-Net (:mod:`salttune.unet`). Every network keeps its constructor keywords in ``model.config`` (plain data),
so a checkpoint that stores ``model_args=model.config`` rebuilds it alone with :func:`build_model`.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import torch
from torch import nn

from salttune.errors import SalttuneError
from salttune.unet import BLOCKS, UNet

__all__ = ["NETWORKS", "build_model", "count_parameters"]

NETWORKS: dict[str, Callable[..., nn.Module]] = {"unet": UNet}


def build_model(**kwargs: Any) -> nn.Module:
    """Build a network from config keywords, checking their names first.

    Args:
        **kwargs: constructor arguments of the network (``UNet``'s signature is the list); unknown keywords
            raise ``SalttuneError``.

    Returns:
        The network, with ``model.config`` holding the full resolved arguments.
    """
    valid = list(inspect.signature(UNet).parameters)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise SalttuneError(f"unknown model argument(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
    return NETWORKS["unet"](**kwargs)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


if __name__ == "__main__":  # python -m salttune.model: parameter count and CPU timing
    import argparse
    import time

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-width", type=int, default=16)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--block", default="residual", choices=sorted(BLOCKS))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=101)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    net = build_model(base_width=args.base_width, depth=args.depth, block=args.block)
    x = torch.randn(args.batch, 1, args.size, args.size)
    net(x).mean().backward()  # warm-up
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        net.zero_grad(set_to_none=True)
        net(x).mean().backward()
        times.append(time.perf_counter() - t0)
    print(
        f"{args.block} width={args.base_width} depth={args.depth}: {count_parameters(net):,} params; "
        f"fwd+bwd batch {args.batch} at {args.size}x{args.size}: median {sorted(times)[len(times) // 2]:.3f} s "
        f"({torch.get_num_threads()} threads)"
    )
