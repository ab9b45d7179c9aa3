"""The one precision policy: autocast dtype and loss scaling per device, ``amp`` and bf16 support."""

import pytest
import torch

from salttune.precision import Precision, checkpoint_precision, precision, precision_name

CPU, CUDA = torch.device("cpu"), torch.device("cuda")  # a device object needs no GPU; only the policy is asked


@pytest.mark.parametrize("device, amp, bf16, expected", [
    (CPU, True, True, Precision(None, False)),  # the CPU never autocasts: its numbers stay float32's
    (CPU, False, False, Precision(None, False)),
    (CUDA, False, True, Precision(None, False)),  # amp off: float32 on a GPU too
    (CUDA, False, False, Precision(None, False)),
    (CUDA, True, True, Precision(torch.bfloat16, False)),  # A100, H100: bf16, no scaling
    (CUDA, True, False, Precision(torch.float16, True)),  # V100, T4: fp16, which needs a GradScaler
])
def test_precision_per_device_amp_and_bf16_support(monkeypatch, device, amp, bf16, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    got = precision(device, amp)
    assert got == expected and got.dtype is expected.dtype
    dtype, needs_scaler = got  # unpacks as a pair
    assert (dtype, needs_scaler) == tuple(expected)


@pytest.mark.parametrize("config, bf16, expected", [
    ({"amp": True}, True, torch.bfloat16),
    ({"amp": False}, True, None),  # trained in float32: predicted in float32
    ({}, True, torch.bfloat16),  # a config without amp: amp's default, true
    ({"amp": True}, False, torch.float16),
])
def test_a_checkpoint_predicts_in_the_precision_it_was_trained_in(monkeypatch, config, bf16, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    assert checkpoint_precision({"config": config}, CUDA) is expected
    assert checkpoint_precision({"config": config}, CPU) is None


def test_precision_names():
    assert [precision_name(d) for d in (None, torch.bfloat16, torch.float16)] == ["float32", "bfloat16", "float16"]
