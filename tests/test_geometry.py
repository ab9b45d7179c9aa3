"""model.input_size / model.input_mode: the Geometry wrapper around every network, and build_model's key rules."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from salttune.checkpoint import build_from_checkpoint, save_checkpoint
from salttune.config import ModelConfig, config_from_dict, config_to_dict
from salttune.errors import SalttuneError
from salttune.geometry import Geometry, map_spatial
from salttune.model import NETWORKS, build_model, network_arguments
from salttune.unet import UNet

TINY_UNET = {"base_width": 2, "depth": 2}


class Probe(nn.Module):
    """Returns its input's first channel as 'logits' and remembers what it saw."""

    config: dict = {}

    def forward(self, x, depth=None):
        self.seen = x
        return x[:, :1]


def _nets(smp_too: bool):
    """(network kwargs) for the home-made U-Net and, when smp is installed, an smp U-Net on resnet18."""
    nets = [{"network": "unet", **TINY_UNET}]
    if smp_too:
        pytest.importorskip("segmentation_models_pytorch")
        nets.append({"network": "smp_unet", "encoder": "resnet18"})
    return nets


@pytest.mark.parametrize("mode", ["pad", "resize"])
@pytest.mark.parametrize("smp_too", [False, True], ids=["unet", "smp_unet"])
def test_101_in_101_out(mode, smp_too):
    for kwargs in _nets(smp_too):
        model = build_model(**kwargs, input_size=128, input_mode=mode).eval()
        assert isinstance(model, Geometry) and model.config["input_size"] == 128
        x = torch.randn(2, 1, 101, 101)
        assert model(x).shape == (2, 1, 101, 101)


def test_pad_centres_the_image_and_reflects_around_it():
    probe = Probe()
    model = Geometry(probe, 9, "pad")
    x = torch.arange(25.0).reshape(1, 1, 5, 5)  # rows 0..4, value 5 r + c
    out = model(x)
    seen = probe.seen  # (1, 1, 9, 9): 2 rows/columns above/left, 2 below/right
    assert seen.shape == (1, 1, 9, 9)
    assert torch.equal(seen[..., 2:7, 2:7], x)  # the centre is the image
    # reflection without repeating the edge: padded row 0 is image row 2, row 1 is image row 1
    assert seen[0, 0, 0, 2].item() == 10.0 and seen[0, 0, 1, 2].item() == 5.0 and seen[0, 0, 8, 2].item() == 10.0
    assert torch.equal(out, x)  # the logits are cropped back to the image


def test_pad_splits_an_odd_margin_with_the_extra_row_below():
    probe = Probe()
    x = torch.rand(1, 1, 101, 101)
    Geometry(probe, 128, "pad")(x)
    assert torch.equal(probe.seen[..., 13:114, 13:114], x)  # 27 = 13 above + 14 below


def test_resize_of_a_constant_image_is_constant():
    probe = Probe()
    x = torch.full((2, 1, 101, 101), 0.3)
    out = Geometry(probe, 64, "resize")(x)
    assert probe.seen.shape == (2, 1, 64, 64)
    torch.testing.assert_close(probe.seen, torch.full((2, 1, 64, 64), 0.3))
    torch.testing.assert_close(out, x)


def test_same_size_passes_through_untouched():
    probe = Probe()
    x = torch.rand(1, 1, 101, 101)
    Geometry(probe, 101, "resize")(x)
    assert probe.seen is x


def test_outputs_of_the_protocol_map_back_and_salt_passes():
    out = {"logits": torch.ones(2, 1, 8, 8), "aux": [torch.zeros(2, 1, 8, 8)], "salt": torch.tensor([1.0, -1.0])}
    mapped = map_spatial(out, lambda t: t[..., 1:4, 1:4])
    assert mapped["logits"].shape == (2, 1, 3, 3) and mapped["aux"][0].shape == (2, 1, 3, 3)
    assert mapped["salt"] is out["salt"] and out["logits"].shape == (2, 1, 8, 8)  # the input dict is left as it was


def test_pad_smaller_than_the_image_is_refused():
    model = build_model(**TINY_UNET, input_size=64, input_mode="pad")
    with pytest.raises(SalttuneError, match="input_size=64 is smaller than the 101x101 images.*input_mode=resize"):
        model(torch.rand(1, 1, 101, 101))


@pytest.mark.parametrize("mode", ["pad", "resize"])
def test_checkpoint_round_trip_keeps_the_geometry(tmp_path, mode):
    model = build_model(**TINY_UNET, use_depth=True, input_size=112, input_mode=mode)
    model(torch.randn(4, 1, 101, 101), depth=torch.rand(4)).mean().backward()  # BN statistics move
    path = save_checkpoint(tmp_path / "m.pt", {"model_args": model.config, "model": model.state_dict()})
    rebuilt, _ = build_from_checkpoint(path)
    assert isinstance(rebuilt, Geometry) and (rebuilt.input_size, rebuilt.input_mode) == (112, mode)
    assert rebuilt.config == model.config
    model.eval()
    x, z = torch.randn(2, 1, 101, 101), torch.rand(2)
    assert torch.equal(rebuilt(x, z), model(x, z))


def test_old_checkpoints_load_as_the_bare_unet(tmp_path):
    """model_args written before `network` and `input_size` existed rebuild the home-made U-Net as it was."""
    old = UNet(base_width=2, depth=2)
    path = save_checkpoint(tmp_path / "old.pt", {"model_args": old.config, "model": old.state_dict()})
    rebuilt, _ = build_from_checkpoint(path)
    assert type(rebuilt) is UNet and rebuilt.config == old.config
    # and a run resumed with today's config (input_size=101 wraps the net) reads the bare net's state dict
    wrapped = build_model(**TINY_UNET, input_size=101)
    wrapped.load_state_dict(old.state_dict())
    old.eval(), wrapped.eval()
    x = torch.randn(1, 1, 101, 101)
    assert torch.equal(wrapped(x), old(x))


@pytest.mark.parametrize("mode", ["pad", "resize"])
def test_channels_last(mode):
    model = build_model(**TINY_UNET, input_size=112, input_mode=mode).eval()
    x = torch.randn(2, 1, 101, 101)
    expected = model(x)
    model = model.to(memory_format=torch.channels_last)
    out = model(x.contiguous(memory_format=torch.channels_last))
    assert out.shape == (2, 1, 101, 101)
    torch.testing.assert_close(out, expected)


def test_default_config_builds_the_unet_seeing_the_image_as_it_is():
    cfg = config_from_dict({"model": TINY_UNET})
    model = build_model(**config_to_dict(cfg.model))
    assert type(model) is UNet and cfg.model.input_size is None  # no wrapper: state-dict keys as before
    assert build_model(**model.config).config == model.config
    wrapped = build_model(**config_to_dict(config_from_dict({"model": {**TINY_UNET, "input_size": 32}}).model))
    assert isinstance(wrapped.net, UNet) and wrapped.input_size == 32 and wrapped.config["network"] == "unet"


def test_every_model_key_reaches_a_network_or_the_geometry():
    used = set().union(*(network_arguments(n) for n in NETWORKS), {"network", "input_size", "input_mode"})
    assert {f.name for f in dataclasses.fields(ModelConfig)} <= used


def test_unknown_network_and_argument():
    with pytest.raises(SalttuneError, match="unknown model.network 'vgg'; valid names: unet, smp_unet"):
        build_model(network="vgg")
    with pytest.raises(SalttuneError, match="unknown model argument.s. encoder_depth; valid: in_channels"):
        build_model(encoder_depth=4)
    with pytest.raises(SalttuneError, match="input_mode 'crop'"):
        build_model(**TINY_UNET, input_size=128, input_mode="crop")
