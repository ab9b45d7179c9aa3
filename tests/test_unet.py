"""U-Net shapes (101x101, odd sizes, channels-last, bf16 autocast), blocks, inits, rebuild from config."""

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from salttune.errors import SalttuneError
from salttune.model import build_model, count_parameters
from salttune.unet import (
    BLOCKS, INITS, PlainBlock, ResidualBlock, SCSEModule, SEModule, UNet, _reflect_pad, unet_arguments,
)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("init", sorted(INITS))
@pytest.mark.parametrize("block", sorted(BLOCKS))
def test_output_is_101x101(block, init, depth):
    model = build_model(block=block, init=init, depth=depth, base_width=4)
    y = model(torch.randn(2, 1, 101, 101))
    assert y.shape == (2, 1, 101, 101)
    assert y.dtype == torch.float32
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("hw", [(21, 21), (32, 32), (17, 40), (5, 3), (1, 1)])
def test_any_size(hw):
    # 5x3 and 1x1 need pads wider than the image (to 16x16): reflection repeated
    model = UNet(base_width=4, depth=4, block="residual_se")
    assert model(torch.randn(2, 1, *hw)).shape == (2, 1, *hw)


def test_reflect_pad_matches_numpy():
    for h, w, pad in [(101, 101, (5, 6, 5, 6)), (5, 5, (6, 5, 6, 5)), (3, 7, (20, 1, 2, 13)), (1, 4, (3, 3, 7, 8))]:
        x = torch.randn(1, 2, h, w)
        left, right, top, bottom = pad
        ref = np.pad(x.numpy(), ((0, 0), (0, 0), (top, bottom), (left, right)), mode="reflect")
        np.testing.assert_array_equal(_reflect_pad(x, pad).numpy(), ref)


def test_pad_and_crop_placement():
    # 101 -> 112 at depth 4 pads 5 before and 6 after; a 112x112 input is not padded at all. So the
    # logits of x equal the logits of numpy's reflection of x, cropped at [5:106, 5:106].
    model = UNet(base_width=4, depth=4, block="plain").eval()
    x = torch.randn(1, 1, 101, 101)
    padded = torch.from_numpy(np.pad(x.numpy(), ((0, 0), (0, 0), (5, 6), (5, 6)), mode="reflect"))
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(padded)[..., 5:106, 5:106])


def test_channels_last_and_bf16_autocast():
    model = UNet(base_width=4, depth=3, block="residual_se").to(memory_format=torch.channels_last)
    x = torch.randn(2, 1, 101, 101).to(memory_format=torch.channels_last)
    y = model(x)
    assert y.shape == (2, 1, 101, 101)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y16 = model(x)
    assert y16.shape == (2, 1, 101, 101)
    assert y16.dtype == torch.bfloat16
    y16.float().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_use_depth():
    model = UNet(base_width=4, depth=2, use_depth=True).eval()
    assert model.stem.conv1[0].in_channels == 2  # image + depth channel
    x = torch.randn(3, 1, 21, 21)
    z = torch.tensor([0.1, 0.5, 0.9])
    y = model(x, depth=z)
    assert y.shape == (3, 1, 21, 21)
    # depth changes the output, and image i only sees depth i
    y2 = model(x, depth=torch.tensor([0.1, 0.5, -2.0]))
    assert torch.equal(y[:2], y2[:2]) and not torch.allclose(y[2], y2[2])
    with pytest.raises(ValueError, match="use_depth=True"):
        model(x)
    with pytest.raises(ValueError, match="use_depth=False"):
        UNet(base_width=4, depth=2)(x, depth=z)


def test_dropout_only_in_training():
    model = UNet(base_width=4, depth=2, dropout=0.5)
    assert sum(isinstance(m, nn.Dropout2d) for m in model.modules()) == 1
    x = torch.randn(2, 1, 16, 16)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))


def test_blocks():
    x = torch.randn(2, 8, 6, 6)
    for name, make in BLOCKS.items():
        assert make(8, 16)(x).shape == (2, 16, 6, 6), name
    assert isinstance(BLOCKS["residual_se"](8, 16).se, SEModule)
    assert isinstance(BLOCKS["se"](8, 16), PlainBlock) and isinstance(BLOCKS["se"](8, 16).se, SEModule)
    # 1x1 projection only when the channel count changes
    assert isinstance(ResidualBlock(8, 8).shortcut, nn.Identity)
    assert ResidualBlock(8, 16).shortcut[0].kernel_size == (1, 1)


def test_residual_block_identity_when_branch_is_zero():
    # With the branch's last BN scaled to 0 the block is relu(x + 0) = relu(x): shows the shortcut.
    block = ResidualBlock(4, 4).eval()
    nn.init.zeros_(block.conv2[1].weight)
    x = torch.randn(2, 4, 5, 5)
    assert torch.allclose(block(x), torch.relu(x))


def test_se_module_gate():
    # Zero weights -> gate sigmoid(bias); with bias 0 every channel is halved.
    se = SEModule(8)
    for p in se.parameters():
        nn.init.zeros_(p)
    x = torch.randn(2, 8, 3, 3)
    assert torch.allclose(se(x), x / 2)
    assert se.fc1.out_channels == 4  # max(4, 8 // 8): tiny networks keep a usable gate


def _largest_conv(model: nn.Module) -> nn.Conv2d:
    return max((m for m in model.modules() if isinstance(m, nn.Conv2d)), key=lambda m: m.weight.numel())


def test_he_normal_statistics():
    model = UNet(base_width=16, depth=2, init="he_normal", block="plain")
    conv = _largest_conv(model)  # 3x3, 64 -> 64: 36,864 weights
    fan_out = conv.out_channels * 9
    assert abs(conv.weight.mean().item()) < 0.05 * math.sqrt(2 / fan_out)
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_out), rel=0.03)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
        if isinstance(m, nn.Conv2d) and m.bias is not None:
            assert torch.all(m.bias == 0)


def test_xavier_uniform_bounds():
    model = UNet(base_width=16, depth=2, init="xavier_uniform", block="plain")
    conv = _largest_conv(model)
    bound = math.sqrt(6 / ((conv.in_channels + conv.out_channels) * 9))
    w = conv.weight
    assert w.abs().max().item() <= bound
    assert w.abs().max().item() > 0.99 * bound  # 36,864 draws reach the edge
    assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.03)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"block": "resnet"}, "unknown block 'resnet'; valid names: plain, residual, residual_scse, residual_se, scse, se"),
        ({"init": "orthogonal"}, "unknown init 'orthogonal'; valid names: he_normal, xavier_uniform"),
        ({"depth": 0}, "depth"),
        ({"base_width": 0}, "base_width"),
        ({"dropout": 1.0}, "dropout"),
        ({"width": 8}, "unknown model argument.s. width; valid: in_channels, base_width, depth, block, dropout, use_depth, init, "
                        "deep_supervision, salt_head"),
        ({"depth": 1, "deep_supervision": True}, "deep_supervision needs depth >= 2"),
    ],
)
def test_bad_config_raises(kwargs, match):
    with pytest.raises(SalttuneError, match=match):
        build_model(**kwargs)


def test_rebuild_from_config_and_state_dict():
    model = build_model(base_width=4, depth=3, block="se", dropout=0.1, use_depth=True, init="xavier_uniform")
    assert model.config == dict(
        in_channels=1, base_width=4, depth=3, block="se", dropout=0.1, use_depth=True, init="xavier_uniform",
        deep_supervision=False, salt_head=False,
    )
    ckpt = {"model_args": json.loads(json.dumps(model.config)), "model": model.state_dict()}  # plain data
    # one training step so the BN running stats differ from a fresh model's
    model(torch.randn(4, 1, 21, 21), depth=torch.rand(4)).mean().backward()
    ckpt["model"] = model.state_dict()
    clone = UNet(**ckpt["model_args"])
    clone.load_state_dict(ckpt["model"])
    model.eval(), clone.eval()
    x, z = torch.randn(2, 1, 21, 21), torch.rand(2)
    assert torch.equal(model(x, depth=z), clone(x, depth=z))


def test_model_config_keys_are_unet_arguments():
    from salttune.config import ModelConfig

    assert list(UNet(base_width=2, depth=1).config) == unet_arguments()
    # every model.* key reaches some network (or the geometry): tests/test_geometry.py
    assert {"base_width", "depth", "block", "dropout", "use_depth", "init"} <= set(vars(ModelConfig()))


def test_parameter_count():
    # plain, width 2, depth 1, by hand (3x3 convs have no bias, BN has 2 per channel):
    #   stem 1->2: 18 + 4 + 36 + 4 = 62;   down 2->4: 72 + 8 + 144 + 8 = 232;   reduce 1x1 4->2: 8 + 2 = 10
    #   up 4->2: 72 + 4 + 36 + 4 = 116;    head 1x1 2->1: 2 + 1 = 3;            total 423
    assert count_parameters(UNet(base_width=2, depth=1, block="plain")) == 423
    # default config, pinned so an accidental change shows up
    assert count_parameters(UNet()) == 1_900_257
    assert count_parameters(UNet(base_width=8, depth=3)) == 118_705


def test_scse_module_gates_at_zero_weights():
    # Zero weights and biases -> both gates are sigmoid(0) = 0.5, so the output is x * 0.5 + x * 0.5 = x.
    m = SCSEModule(8)
    for p in m.parameters():
        nn.init.zeros_(p)
    x = torch.randn(2, 8, 3, 5)
    assert torch.allclose(m(x), x)
    # By hand: channel gate 8->4 (32 + 4) and 4->8 (32 + 8), spatial gate 8->1 (8 + 1): 85 parameters.
    assert count_parameters(m) == 85
    # A spatial gate alone: channel gate forced to 0 (bias -inf), spatial logit 0 -> x * 0.5.
    nn.init.constant_(m.fc2.bias, -math.inf)
    assert torch.allclose(m(x), x / 2)


def test_scse_blocks():
    x = torch.randn(2, 8, 6, 6)
    assert isinstance(BLOCKS["scse"](8, 16), PlainBlock) and isinstance(BLOCKS["scse"](8, 16).se, SCSEModule)
    assert isinstance(BLOCKS["residual_scse"](8, 16), ResidualBlock)
    assert isinstance(BLOCKS["residual_scse"](8, 16).se, SCSEModule)
    assert BLOCKS["residual_scse"](8, 16)(x).shape == (2, 16, 6, 6)
    # The gate adds exactly one SCSEModule's parameters to the block without a gate.
    assert count_parameters(BLOCKS["residual_scse"](8, 8)) == count_parameters(BLOCKS["residual"](8, 8)) + 85
    # Residual + scSE with the branch's last BN at 0: the gate sees zeros, so the block is relu(x).
    block = BLOCKS["residual_scse"](4, 4).eval()
    nn.init.zeros_(block.conv2[1].weight)
    x = torch.randn(2, 4, 5, 5)
    assert torch.allclose(block(x), torch.relu(x))


def test_heads_off_is_todays_network():
    # Both heads off: a plain tensor and today's parameter count (width 2, depth 2, plain, by hand:
    # stem 62 + down 232 + 896 + reduce 10 + 36 + up 116 + 448 + head 3 = 1803).
    model = UNet(base_width=2, depth=2, block="plain")
    assert count_parameters(model) == 1803
    assert isinstance(model(torch.randn(1, 1, 9, 9)), torch.Tensor)


@pytest.mark.parametrize("hw", [(101, 101), (9, 13)])
def test_deep_supervision_and_salt_head_outputs(hw):
    model = UNet(base_width=2, depth=3, block="plain", deep_supervision=True, salt_head=True)
    # Extra parameters by hand: aux 1x1 convs at levels 2 and 1 (widths 8, 4): 9 + 5; salt linear 16 -> 1: 17.
    assert count_parameters(model) - count_parameters(UNet(base_width=2, depth=3, block="plain")) == 9 + 5 + 17
    out = model(torch.randn(3, 1, *hw))
    assert set(out) == {"logits", "aux", "salt"}
    assert out["logits"].shape == (3, 1, *hw)
    assert [a.shape for a in out["aux"]] == [(3, 1, *hw)] * 2
    assert out["salt"].shape == (3,)
    only_salt = UNet(base_width=2, depth=2, block="plain", salt_head=True)(torch.randn(2, 1, 8, 8))
    assert set(only_salt) == {"logits", "salt"}
    only_aux = UNet(base_width=2, depth=2, block="plain", deep_supervision=True)(torch.randn(2, 1, 8, 8))
    assert set(only_aux) == {"logits", "aux"} and len(only_aux["aux"]) == 1


def test_salt_head_is_linear_in_the_pooled_bottleneck():
    # With the salt weights at 1 and bias 0 the salt logit is the sum over channels of the bottleneck's mean.
    model = UNet(base_width=2, depth=1, block="plain", salt_head=True).eval()
    nn.init.ones_(model.salt.weight)
    nn.init.zeros_(model.salt.bias)
    x = torch.randn(2, 1, 8, 8)
    bottleneck = model.down[0](model.pool(model.stem(x)))  # (2, 4, 4, 4); 8 is a multiple of 2: no padding
    assert torch.allclose(model(x)["salt"], bottleneck.mean((2, 3)).sum(1), atol=1e-6)


def test_deep_supervision_aux_is_the_upsampled_level_logit():
    # depth 2 on an 8x8 input (no padding): the one aux logit is level 1's 1x1 conv at 4x4, upsampled to 8x8.
    model = UNet(base_width=2, depth=2, block="plain", deep_supervision=True).eval()
    x = torch.randn(2, 1, 8, 8)
    feats = {}
    model.up[1].register_forward_hook(lambda m, i, o: feats.update(level1=o))
    out = model(x)
    want = torch.nn.functional.interpolate(model.aux[0](feats["level1"]), size=(8, 8), mode="bilinear", align_corners=False)
    assert torch.allclose(out["aux"][0], want)
