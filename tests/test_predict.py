import numpy as np
import pytest
import torch

from salttune.model import build_model
from salttune.predict import iter_proba, predict_logits, predict_proba, write_submission_stream
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
