"""smp networks (salttune/smp_net.py): shapes, options, encoder weights from a file, errors, and the CLI.

They need the ``encoders`` extra; every test that builds one skips without segmentation_models_pytorch.
"""

from __future__ import annotations

import json
import sys

import pytest
import torch

from conftest import assert_user_error, run_cli
from salttune.errors import SalttuneError
from salttune.model import build_model, check_model

R18 = {"encoder": "resnet18", "encoder_weights": None}


@pytest.fixture
def smp():
    return pytest.importorskip("segmentation_models_pytorch")


@pytest.mark.parametrize("network", ["smp_unet", "smp_unetplusplus", "smp_fpn"])
@pytest.mark.parametrize("size", [32, 101])
def test_logits_have_the_input_size(smp, network, size):
    model = build_model(network=network, **R18)
    assert model.config["network"] == network
    out = model(torch.randn(2, 1, size, size))
    assert out.shape == (2, 1, size, size)
    out.mean().backward()  # trains: gradients reach the encoder's first convolution
    assert model.model.encoder.conv1.weight.grad.abs().sum() > 0


def test_padding_is_cropped_back_exactly(smp):
    """A 101x101 image is reflected to 128x128; the crop is the 101x101 the image sits in (13 above)."""
    model = build_model(network="smp_fpn", **R18).eval()
    x = torch.randn(1, 1, 101, 101)
    full = model.model(torch.nn.functional.pad(x, (13, 14, 13, 14), mode="reflect"))  # (1, 1, 128, 128)
    assert torch.equal(model(x), full[..., 13:114, 13:114])


def test_depth_channel_and_salt_head(smp):
    model = build_model(network="smp_unet", **R18, use_depth=True, salt_head=True)
    assert model.model.encoder.conv1.in_channels == 2  # image + depth plane
    out = model(torch.randn(2, 1, 101, 101), torch.rand(2))
    assert set(out) == {"logits", "salt"} and out["logits"].shape == (2, 1, 101, 101) and out["salt"].shape == (2,)
    with pytest.raises(ValueError, match="use_depth=True"):
        model(torch.randn(2, 1, 101, 101))


def test_decoder_attention(smp):
    plain = build_model(network="smp_unet", **R18)
    scse = build_model(network="smp_unetplusplus", **R18, decoder_attention="scse")
    assert not any("SCSE" in type(m).__name__ for m in plain.modules())
    assert any("SCSE" in type(m).__name__ for m in scse.modules())
    with pytest.raises(SalttuneError, match="smp_fpn has no decoder attention.*decoder_attention=null"):
        build_model(network="smp_fpn", **R18, decoder_attention="scse")


def test_deep_supervision_and_unknown_encoder_are_refused(smp):
    with pytest.raises(SalttuneError, match="deep_supervision=true: only the home-made network 'unet'"):
        build_model(network="smp_unet", **R18, deep_supervision=True)
    with pytest.raises(SalttuneError, match="model.encoder 'resnet33': not an smp encoder; e.g. resnet18, resnet34"):
        build_model(network="smp_unet", encoder="resnet33")


def test_unused_keys_are_ignored_and_config_rebuilds(smp):
    model = build_model(network="smp_unet", **R18, base_width=64, block="se", input_size=128)
    assert "base_width" not in model.config and "block" not in model.config
    clone = build_model(**json.loads(json.dumps(model.config)))  # plain data
    clone.load_state_dict(model.state_dict())
    model.eval(), clone.eval()
    x = torch.randn(1, 1, 101, 101)
    assert torch.equal(clone(x), model(x))


def _same_encoder(a, b) -> bool:
    sa, sb = a.model.encoder.state_dict(), b.model.encoder.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_encoder_weights_from_a_file(smp, tmp_path):
    first = build_model(network="smp_unet", **R18)
    path = tmp_path / "encoder.pt"
    torch.save(first.model.encoder.state_dict(), path)
    second = build_model(network="smp_fpn", encoder="resnet18", encoder_weights=str(path))  # another decoder
    assert _same_encoder(first, second)
    assert not _same_encoder(first, build_model(network="smp_fpn", **R18))  # a fresh one differs
    assert second.config["encoder_weights"] is None  # the weights live in the state dict; a checkpoint needs no file
    # a full smp model state dict: its encoder.* keys are read
    torch.save(first.model.state_dict(), tmp_path / "model.pt")
    assert _same_encoder(first, build_model(network="smp_unet", encoder="resnet18", encoder_weights=str(tmp_path / "model.pt")))


def test_rgb_encoder_file_is_folded_into_one_channel(smp, tmp_path):
    rgb = smp.encoders.get_encoder("resnet18", in_channels=3, depth=5, weights=None)
    torch.save(rgb.state_dict(), tmp_path / "rgb.pt")
    model = build_model(network="smp_unet", encoder="resnet18", encoder_weights=str(tmp_path / "rgb.pt"))
    w = model.model.encoder.conv1.weight  # (64, 1, 7, 7)
    torch.testing.assert_close(w, rgb.conv1.weight.sum(1, keepdim=True))
    torch.testing.assert_close(model.model.encoder.layer1[0].conv1.weight, rgb.layer1[0].conv1.weight)


def test_bad_encoder_files(smp, tmp_path):
    r34 = build_model(network="smp_unet", encoder="resnet34")
    torch.save(r34.model.encoder.state_dict(), tmp_path / "r34.pt")
    with pytest.raises(SalttuneError, match=r"r34.pt': does not fit encoder resnet18 \(.*\); give a state dict of the same model.encoder") as e:
        build_model(network="smp_unet", encoder="resnet18", encoder_weights=str(tmp_path / "r34.pt"))
    assert "\n" not in str(e.value)
    with pytest.raises(SalttuneError, match=r"none.pt': no such file, and not a weights name of resnet18 \(imagenet, ssl, swsl\)"):
        build_model(network="smp_unet", encoder="resnet18", encoder_weights=str(tmp_path / "none.pt"))
    (tmp_path / "text.pt").write_text("not a torch file")
    with pytest.raises(SalttuneError, match="text.pt': not a readable torch state dict"):
        build_model(network="smp_unet", encoder="resnet18", encoder_weights=str(tmp_path / "text.pt"))
    torch.save({"epoch": 3}, tmp_path / "dict.pt")
    with pytest.raises(SalttuneError, match="dict.pt': not a state dict"):
        build_model(network="smp_unet", encoder="resnet18", encoder_weights=str(tmp_path / "dict.pt"))


def test_check_model_checks_without_building_or_downloading(smp, tmp_path):
    check_model(network="smp_unet", encoder="resnet18", encoder_weights="imagenet", base_width=64)  # no download
    with pytest.raises(SalttuneError, match="smp_fpn has no decoder attention"):
        check_model(network="smp_fpn", decoder_attention="scse")
    with pytest.raises(SalttuneError, match="model.encoder 'resnet33'"):
        check_model(network="smp_unet", encoder="resnet33")
    with pytest.raises(SalttuneError, match="gone.pt': no such file"):
        check_model(network="smp_unet", encoder_weights=str(tmp_path / "gone.pt"))
    with pytest.raises(SalttuneError, match="unknown block"):
        check_model(network="unet", block="resnet")


def test_missing_smp_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "segmentation_models_pytorch", None)  # import fails as if not installed
    for check in (build_model, check_model):
        with pytest.raises(SalttuneError, match=r"pip install 'salttune\[encoders\]'"):
            check(network="smp_unet")


def test_cli_imagenet_offline_is_one_line(smp, tgs_folder, tmp_path):
    """HF_HUB_OFFLINE makes the hub fail as on a machine without the network (it would read a local cache)."""
    root, _ = tgs_folder
    proc = run_cli("train", "--data", str(root), "--out", str(tmp_path / "run"), "--quiet", "--set", "epochs=1",
                   "--set", "model.network=smp_unet", "--set", "model.encoder=resnet18",
                   "--set", "model.encoder_weights=imagenet", env={"HF_HUB_OFFLINE": "1"})
    if proc.returncode == 0:
        pytest.skip("the imagenet weights were found in a local cache")
    assert_user_error(proc, "model.encoder_weights=imagenet: the resnet18 weights could not be fetched",
                      "model.encoder_weights=/path/to/encoder.pt")


def test_cli_train_and_predict_smp_unet(smp, tgs_folder, tmp_path):
    root, made = tgs_folder
    out = tmp_path / "run"
    proc = run_cli("train", "--data", str(root), "--out", str(out), "--quiet", "--set", "epochs=1", "--set", "batch_size=4",
                   "--set", "model.network=smp_unet", "--set", "model.encoder=resnet18", "--set", "model.input_size=128")
    assert proc.returncode == 0, proc.stderr
    assert "epoch   1" in proc.stdout
    snap = json.loads((out / "summary.json").read_text())["snapshots"][0]["path"]
    args = torch.load(snap, weights_only=True)["model_args"]
    assert (args["network"], args["encoder"], args["input_size"]) == ("smp_unet", "resnet18", 128)
    sub = tmp_path / "sub.csv"
    proc = run_cli("predict", "--checkpoint", snap, "--data", str(root), "--out", str(sub), "--tta", "flip", "--quiet")
    assert proc.returncode == 0, proc.stderr
    rows = sub.read_text().splitlines()
    assert rows[0] == "id,rle_mask" and [r.split(",")[0] for r in rows[1:]] == made["test_ids"]


@pytest.mark.parametrize("setting, fragment", [("model.encoder=resnet1234", "resnet1234"),
                                              ("model.decoder_attention=scse", "smp_fpn")])
def test_cli_train_refuses_a_bad_network_before_writing_anything(tgs_folder, tmp_path, setting, fragment):
    root, _ = tgs_folder
    out = tmp_path / "run"
    proc = run_cli("train", "--data", str(root), "--out", str(out), "--quiet", "--set", "model.network=smp_fpn",
                   "--set", setting)
    # with the encoders extra: the bad name; without it: how to install it. Either way one line, nothing written.
    assert_user_error(proc)
    assert fragment in proc.stderr or "salttune[encoders]" in proc.stderr, proc.stderr
    assert not out.exists()
