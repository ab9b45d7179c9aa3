import math

import numpy as np
import pytest
import torch

from salttune.model import build_model
from salttune.errors import SalttuneError
from salttune.predict import apply_salt_cutoff, iter_predictions, iter_proba, predict_logits, predict_proba, write_submission_stream
from salttune.submission import read_masks_csv


@pytest.fixture
def model():
    torch.manual_seed(0)
    return build_model(base_width=4, depth=2).eval()


def test_flip_tta_is_mean_of_image_and_mirrored_back(model):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (5, 21, 21), dtype=np.uint8)
    cpu = torch.device("cpu")
    plain = predict_proba(model, imgs, None, cpu, batch_size=2)
    mirrored = predict_proba(model, imgs[:, :, ::-1].copy(), None, cpu, batch_size=3)[:, :, ::-1]
    tta = predict_proba(model, imgs, None, cpu, batch_size=4, tta="flip")
    np.testing.assert_allclose(tta, (plain + mirrored) / 2, rtol=1e-5, atol=1e-6)
    logits = predict_logits(model, imgs, None, cpu)
    np.testing.assert_allclose(1 / (1 + np.exp(-logits)), plain, rtol=1e-5, atol=1e-6)


def test_submission_stream_thresholds_and_min_area(tmp_path):
    probs = np.zeros((3, 5, 5), np.float32)
    probs[0, :2, :2] = 0.9  # 4 pixels
    probs[1, 0, 0] = 0.9  # 1 pixel: below min_area 2, written empty
    probs[2] = 0.4  # below threshold
    path = write_submission_stream(tmp_path / "s.csv", ["a", "b", "c"], iter([probs[:2], probs[2:]]), 0.5, min_area=2)
    ids, masks = read_masks_csv(path, (5, 5))
    assert ids == ["a", "b", "c"]
    assert masks[0].sum() == 4 and masks[1].sum() == 0 and masks[2].sum() == 0


def test_prediction_leaves_the_models_memory_format_alone(model):
    # A model in training keeps the layout its (fused) optimiser state was made for: evaluating it mid-training
    # must not convert its weights to channels-last (that crashed fused Adam on CUDA, issue 14).
    imgs = np.random.default_rng(0).integers(0, 256, (3, 21, 21), dtype=np.uint8)
    weights = [p for p in model.parameters() if p.ndim == 4 and p.shape[1] > 1]
    assert weights and all(p.is_contiguous() for p in weights)
    predict_proba(model, imgs, None, torch.device("cpu"), tta="flip")
    assert all(p.is_contiguous() for p in weights)


def _salt_model(salt_logit_bias: float):
    """A network with both extra heads whose salt head gives sigmoid(bias) for every image."""
    torch.manual_seed(0)
    net = build_model(base_width=4, depth=2, deep_supervision=True, salt_head=True).eval()
    torch.nn.init.zeros_(net.salt.weight)
    torch.nn.init.constant_(net.salt.bias, salt_logit_bias)
    return net


def test_dict_outputs_predict_main_logits_with_flip_tta():
    net = _salt_model(0.0)
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (3, 21, 21), dtype=np.uint8)
    cpu = torch.device("cpu")
    x = torch.from_numpy(imgs).float().unsqueeze(1)
    plain = predict_proba(net, imgs, None, cpu)
    mirrored = predict_proba(net, imgs[:, :, ::-1].copy(), None, cpu)[:, :, ::-1]
    np.testing.assert_allclose(predict_proba(net, imgs, None, cpu, tta="flip"), (plain + mirrored) / 2, rtol=1e-5, atol=1e-6)
    logits = predict_logits(net, imgs, None, cpu)
    np.testing.assert_allclose(1 / (1 + np.exp(-logits)), plain, rtol=1e-5, atol=1e-6)
    ((p, salt),) = list(iter_predictions(net, imgs, None, cpu, tta="flip"))
    np.testing.assert_allclose(salt, [0.5, 0.5, 0.5])  # sigmoid(0), averaged over both passes
    assert x.shape == (3, 1, 21, 21)


def test_salt_cutoff_empties_images_below_it():
    imgs = np.random.default_rng(1).integers(0, 256, (4, 13, 13), dtype=np.uint8)
    cpu = torch.device("cpu")
    net = _salt_model(math.log(3.0))  # salt probability 0.75 for every image
    full = predict_proba(net, imgs, None, cpu)
    np.testing.assert_array_equal(predict_proba(net, imgs, None, cpu, salt_cutoff=0.75), full)  # 0.75 >= 0.75: kept
    assert not predict_proba(net, imgs, None, cpu, salt_cutoff=0.8, tta="flip").any()  # 0.75 < 0.8: emptied
    # Per image: only the images below the cut-off are zeroed.
    p = np.ones((3, 2, 2), np.float32)
    np.testing.assert_array_equal(apply_salt_cutoff(p, np.array([0.2, 0.6, 0.5]), 0.5).sum((1, 2)), [0, 4, 4])
    assert apply_salt_cutoff(p, None, 0.5) is p and apply_salt_cutoff(p, np.zeros(3), None) is p
    # A network without a salt head cannot use a cut-off.
    with pytest.raises(SalttuneError, match="no salt head"):
        predict_proba(build_model(base_width=4, depth=2).eval(), imgs, None, cpu, salt_cutoff=0.5)


def test_cli_predict_salt_cutoff(tgs_folder, tmp_path):
    from conftest import assert_user_error, run_cli
    from salttune.checkpoint import save_checkpoint

    root, made = tgs_folder
    net = _salt_model(0.0)  # salt probability 0.5 for every image
    torch.nn.init.constant_(net.head.bias, 20.0)  # every pixel salt
    with_head = save_checkpoint(tmp_path / "head.pt", {"model_args": net.config, "model": net.state_dict(), "config": {}})
    plain = build_model(base_width=4, depth=2)
    no_head = save_checkpoint(tmp_path / "plain.pt", {"model_args": plain.config, "model": plain.state_dict(), "config": {}})

    def rles(cutoff: str) -> list[str]:
        out = tmp_path / f"sub_{cutoff}.csv"
        proc = run_cli("predict", "--checkpoint", str(with_head), "--data", str(root), "--out", str(out), "--quiet",
                       "--tta", "none", "--salt-cutoff", cutoff)
        assert proc.returncode == 0, proc.stderr
        return [r.split(",")[1] for r in out.read_text().splitlines()[1:]]

    kept = rles("0.4")
    assert all(kept) and len(kept) == len(made["test_ids"])  # 0.5 >= 0.4: full masks kept
    assert not any(rles("0.6"))  # 0.5 < 0.6: every image empty
    assert_user_error(run_cli("predict", "--checkpoint", str(no_head), "--data", str(root), "--out", str(tmp_path / "x.csv"),
                              "--quiet", "--salt-cutoff", "0.5"), "--salt-cutoff 0.5", "no salt head")
    assert not (tmp_path / "x.csv").exists()
    assert_user_error(run_cli("predict", "--checkpoint", str(with_head), "--data", str(root), "--out", str(tmp_path / "y.csv"),
                              "--salt-cutoff", "1.5"), "--salt-cutoff 1.5", "between 0 and 1")
