"""Shared by the search tests: token authentication for the test cluster, and tiny space files.

Import this module before anything that imports Ray: Ray reads ``RAY_AUTH_MODE`` into its config once, when
it is imported, and the test modules of this folder are collected in name order.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(16))

FAST_STATE = {"TUNE_GLOBAL_CHECKPOINT_S": "0.5"}  # tiny epochs: save Tune's experiment state often


def space_yaml(folder: Path, name: str, space: str, *, trials: int = 4, max_t: int = 3, grace: int = 1,
               seed: int = 0, max_failures: int = 1, fixed: str = "", algorithm: str = "tpe+asha", data: str = "") -> Path:
    """A search space file for the tiny test data: 2 trials at a time, one CPU each, a 4-wide U-Net."""
    f = folder / f"{name}.yaml"
    f.write_text(f"""
name: {name}
trials: {trials}
concurrent: 2
seed: {seed}
startup_trials: 2
max_failures: {max_failures}
algorithm: {algorithm}
asha: {{max_t: {max_t}, grace_period: {grace}, reduction_factor: 2}}
resources: {{cpu: 1, gpu: 0}}
data: {{val_fraction: 0.25{", " + data if data else ""}}}
fixed: {{model.base_width: 4, model.depth: 2, batch_size: 8, augment.names: [hflip]{", " + fixed if fixed else ""}}}
space:
{space}
""")
    return f
