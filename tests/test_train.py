import json
import math

import numpy as np
import pytest
import torch

from conftest import assert_user_error, run_cli
from salttune.checkpoint import build_from_checkpoint, load_checkpoint
from salttune.config import config_from_dict
from salttune.data import load_dataset
from salttune.layout import CheckpointFiles, RunFiles
from salttune.predict import predict_proba
from salttune.split import Arrays, Split, split_data
from salttune.train import NonFiniteLoss, WATCHERS, fit, train_epoch

TINY = {"batch_size": 4, "model": {"base_width": 4, "depth": 2}, "val_fraction": 0.25}


def tiny_cfg(**over):
    d = {**TINY, **over}
    return config_from_dict(d)


@pytest.fixture
def parts(tgs_folder):
    root, _ = tgs_folder
    data = load_dataset(root, with_test=False)
    return split_data(data, Split(0.25, split_seed=0))[:2]


def test_fit_writes_run_and_reports_every_epoch(parts, tmp_path):
    train, val = parts
    log = []
    summary = fit(tiny_cfg(epochs=3), train, val, tmp_path / "run", lambda m, c: log.append((m, c)),
                  watchers=[WATCHERS["layer_stats"]])
    assert [m["epoch"] for m, _ in log] == [1, 2, 3]
    for m, ckpt_dir in log:
        assert 0.0 <= m["val_score"] <= 1.0 and m["lr"] == 3e-3 and m["grad_norm"] > 0
        assert any(k.startswith("weight_norm/") for k in m)  # a watcher's values join the metrics
        assert CheckpointFiles(ckpt_dir).state.exists()
    lines = [json.loads(x) for x in RunFiles(tmp_path / "run").metrics.read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2, 3]
    best = max(lines, key=lambda x: x["val_score"])
    assert summary["best_score"] == best["val_score"] and summary["best_epoch"] == best["epoch"]
    saved = json.loads(RunFiles(tmp_path / "run").summary.read_text())
    assert saved["best_score"] == summary["best_score"]
    (snap,) = summary["snapshots"]
    model, ckpt = build_from_checkpoint(snap["path"])  # the snapshot rebuilds the network on its own
    assert ckpt["epoch"] == best["epoch"] and ckpt["config"]["model"]["base_width"] == 4
    # The whole-validation-set score is reproduced from the snapshot alone.
    probs = predict_proba(model, val.images, None, torch.device("cpu"))
    from salttune.metric import competition_score

    assert competition_score(probs > 0.5, val.masks) == pytest.approx(best["val_score"])


def test_same_seed_same_weights_and_metrics(parts, tmp_path):
    train, val = parts
    cfg = tiny_cfg(epochs=2, model={"base_width": 4, "depth": 2, "dropout": 0.2})
    a = fit(cfg, train, val, tmp_path / "a")
    b = fit(cfg, train, val, tmp_path / "b")
    ma = RunFiles(tmp_path / "a").metrics.read_text().splitlines()
    mb = RunFiles(tmp_path / "b").metrics.read_text().splitlines()
    strip = lambda s: {k: v for k, v in json.loads(s).items() if "seconds" not in k and "per_s" not in k}
    assert [strip(x) for x in ma] == [strip(x) for x in mb]
    wa = load_checkpoint(RunFiles(tmp_path / "a").checkpoint.state)["model"]
    wb = load_checkpoint(RunFiles(tmp_path / "b").checkpoint.state)["model"]
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    c = fit(tiny_cfg(epochs=2, seed=1), train, val, tmp_path / "c")
    wc = load_checkpoint(RunFiles(tmp_path / "c").checkpoint.state)["model"]
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


def test_resume_continues_at_the_right_epoch_identically(parts, tmp_path):
    train, val = parts
    cfg = tiny_cfg(epochs=3, schedule={"name": "cosine_snapshots", "cycle_epochs": 1})
    full = fit(cfg, train, val, tmp_path / "full")
    fit(tiny_cfg(epochs=2, schedule={"name": "cosine_snapshots", "cycle_epochs": 1}), train, val, tmp_path / "part")
    log = []
    resumed = fit(cfg, train, val, tmp_path / "resumed", lambda m, c: log.append(m["epoch"]),
                  resume_from=RunFiles(tmp_path / "part").checkpoint.root)
    assert log == [3]
    assert resumed["epochs_run"] == 3 and len(resumed["snapshots"]) == 3
    assert resumed["best_score"] == full["best_score"]
    wf = load_checkpoint(RunFiles(tmp_path / "full").checkpoint.state)["model"]
    wr = load_checkpoint(RunFiles(tmp_path / "resumed").checkpoint.state)["model"]
    for k in wf:
        assert torch.equal(wf[k], wr[k]), k
    for s in resumed["snapshots"]:  # snapshots were brought along into the new folder
        assert (RunFiles(tmp_path / "resumed").checkpoint.snapshots / s["path"].split("/")[-1]).exists()


def test_cosine_snapshots_keep_top_k(parts, tmp_path):
    train, val = parts
    cfg = tiny_cfg(epochs=4, schedule={"name": "cosine_snapshots", "cycle_epochs": 1, "max_snapshots": 2})
    s = fit(cfg, train, val, tmp_path / "r")
    files = sorted(p.name for p in RunFiles(tmp_path / "r").checkpoint.snapshots.glob("*.pt"))
    assert len(s["snapshots"]) == 2 and files == sorted(x["path"].split("/")[-1] for x in s["snapshots"])
    scores = [json.loads(x)["val_score"] for x in RunFiles(tmp_path / "r").metrics.read_text().splitlines()]
    # every cycle closed: the two best of the four, whichever cycle they came from
    assert sorted(x["score"] for x in s["snapshots"]) == sorted(scores)[-2:]


def _snap(cycle, score):
    return {"path": f"/nonexistent/snapshot_{cycle:02d}.pt", "epoch": cycle + 1, "score": score, "cycle": cycle}


def test_an_open_cycle_never_evicts_a_better_closed_snapshot():
    from salttune.train import _keep_best

    closed, opened = _snap(0, 0.8), _snap(1, 0.1)
    # max_snapshots 1: a new cycle opens with a poor first epoch; the best closed snapshot stays, the open one too
    assert _keep_best([closed, opened], 1, open_cycle=1) == [closed, opened]
    # at the end of the run they compete on score alone: a short unfinished cycle does not push out a better one
    assert _keep_best([closed, opened], 1, open_cycle=None) == [closed]
    assert _keep_best([_snap(0, 0.5), _snap(1, 0.7), _snap(2, 0.6), _snap(3, 0.2)], 2, open_cycle=3) == [
        _snap(1, 0.7), _snap(2, 0.6), _snap(3, 0.2)]


def test_a_cosine_cycle_cut_short_leaves_no_mid_cycle_snapshot(parts, tmp_path):
    train, val = parts
    # 3 epochs of 2-epoch cycles: cycle 0 closes at epoch 2; epoch 3 is the first half of cycle 1 (high rate)
    cfg = tiny_cfg(epochs=3, schedule={"name": "cosine_snapshots", "cycle_epochs": 2, "max_snapshots": 5})
    s = fit(cfg, train, val, tmp_path / "r")
    assert [(x["cycle"], x["epoch"]) for x in s["snapshots"]] == [(0, 2)]
    assert [p.name for p in RunFiles(tmp_path / "r").checkpoint.snapshots.glob("*.pt")] == ["snapshot_00.pt"]


def test_a_cosine_cycle_cut_late_keeps_its_last_weights(parts, tmp_path):
    train, val = parts
    # 11 epochs of 6-epoch cycles: cycle 1 (epochs 7-12) is cut after 5 of its 6 epochs, its last rate below a
    # quarter of the peak (CUT_CYCLE_LR_SHARE): its last weights are a snapshot beside cycle 0's
    cfg = tiny_cfg(epochs=11, schedule={"name": "cosine_snapshots", "cycle_epochs": 6, "max_snapshots": 5})
    s = fit(cfg, train, val, tmp_path / "r")
    assert [(x["cycle"], x["epoch"]) for x in s["snapshots"]] == [(0, 6), (1, 11)]


def test_the_time_budget_stops_training_before_an_epoch_that_would_not_fit(parts, tmp_path):
    from salttune.train import _out_of_time

    ten = [{"epoch_seconds": 10.0}] * 3
    assert not _out_of_time(None, ten, 0.0, 0)
    assert not _out_of_time(40.0, ten, 0.0, 0)  # 30 s spent, the next epoch takes ~10 s: 40 fits
    assert _out_of_time(39.0, ten, 0.0, 0)
    assert _out_of_time(45.0, ten, 10.0, 1)  # finishing a 4th epoch: 40 s spent, a 5th would end at 50
    assert not _out_of_time(45.0, [], 0.0, 0)  # nothing trained yet: always one epoch
    train, val = parts
    probe = fit(tiny_cfg(epochs=2), train, val, tmp_path / "probe")
    epoch_s = probe["seconds"] / 2
    s = fit(tiny_cfg(epochs=50, time_budget_s=max(1.0, 2.5 * epoch_s)), train, val, tmp_path / "budget")
    assert 1 <= s["epochs_run"] < 50 and s["stopped_by_time_budget"]
    assert s["seconds"] <= max(1.0, 2.5 * epoch_s) * 1.5 + epoch_s  # within the budget, give or take one epoch's noise
    assert json.loads(RunFiles(tmp_path / "budget").summary.read_text())["epochs_run"] == s["epochs_run"]


def test_a_run_under_a_time_budget_plans_its_length_from_its_epochs_so_far(parts):
    from salttune.train import _run_length

    ten = [{"epoch_seconds": 10.0}] * 3
    assert _run_length(tiny_cfg(epochs=50), ten, 10.0) == 50  # no budget: the config's epochs
    assert _run_length(tiny_cfg(epochs=50, time_budget_s=100.0), ten, 10.0) == 10  # 4 done in 40 s, 6 more fit
    assert _run_length(tiny_cfg(epochs=50, time_budget_s=99.0), ten, 10.0) == 9
    assert _run_length(tiny_cfg(epochs=8, time_budget_s=100.0), ten, 10.0) == 8  # at most the config's epochs
    assert _run_length(tiny_cfg(epochs=50, time_budget_s=30.0), ten, 10.0) == 4  # past the budget: ends now


def test_a_run_under_a_time_budget_ends_at_its_last_cycle_end_in_its_last_stage(parts, tmp_path):
    train, val = parts
    probe = fit(tiny_cfg(epochs=2), train, val, tmp_path / "probe")
    epoch_s = probe["seconds"] / 2
    cfg = tiny_cfg(epochs=200, time_budget_s=max(1.0, 8 * epoch_s), loss={"stages": "bce:30%,lovasz_symmetric"},
                   schedule={"name": "cosine_snapshots", "cycles": 2, "max_snapshots": 5})
    s = fit(cfg, train, val, tmp_path / "r")
    lines = [json.loads(x) for x in RunFiles(tmp_path / "r").metrics.read_text().splitlines()]
    n = s["epochs_run"]
    assert 3 <= n < 200 and s["stopped_by_time_budget"]
    # Both cycles closed, the second at the last epoch, so it annealed: its rate ended far below the peak.
    assert [x["cycle"] for x in s["snapshots"]] == [0, 1] and s["snapshots"][-1]["epoch"] == n
    assert lines[-1]["lr"] < 0.25 * 3e-3
    stages = [x["loss_stage"] for x in lines]
    assert stages[0] == 0 and stages[-1] == 1 and stages == sorted(stages)  # reached Lovasz, never switched back
    state = load_checkpoint(RunFiles(tmp_path / "r").checkpoint.state)
    assert state["plan"]["run_epochs"] == n and state["plan"]["stage_epochs"][1] is None


def test_a_resumed_run_keeps_the_stage_switch_its_plan_made(parts, tmp_path):
    import dataclasses

    from salttune.checkpoint import save_checkpoint

    train, val = parts
    cfg = tiny_cfg(epochs=6, loss={"stages": "bce:50%,lovasz_symmetric"},
                   schedule={"name": "cosine_snapshots", "cycles": 1, "max_snapshots": 5},
                   faults={"raise_at_epoch": 3})
    with pytest.raises(Exception):
        fit(cfg, train, val, tmp_path / "r")
    state_path = RunFiles(tmp_path / "r").checkpoint.state
    state = load_checkpoint(state_path)
    assert state["epoch"] == 1 and state["plan"] == {"run_epochs": 6, "stage_epochs": [3, None]}
    # As if a time budget had planned a short run and switched to Lovasz after epoch 1; the resumed run (6 epochs,
    # no budget) keeps that switch, which its first 2 epochs have passed, rather than switching back.
    state["plan"] = {"run_epochs": 3, "stage_epochs": [1, None]}
    save_checkpoint(state_path, {k: v for k, v in state.items() if k != "format"})
    s = fit(dataclasses.replace(cfg, faults=config_from_dict({}).faults), train, val, tmp_path / "r2",
            resume_from=RunFiles(tmp_path / "r").checkpoint.root)
    lines = [json.loads(x) for x in RunFiles(tmp_path / "r2").metrics.read_text().splitlines()]
    assert s["epochs_run"] == 6 and [x["loss_stage"] for x in lines] == [0, 0, 1, 1, 1, 1]


def test_logits_start_near_zero():
    from salttune.unet import UNet

    torch.manual_seed(0)
    with torch.no_grad():  # training mode: batch statistics, as in the first steps
        logits = UNet(base_width=16, depth=4).train()(torch.randn(4, 1, 101, 101))
    # He fan-out on the 1x1 logit conv gave a standard deviation of 6.2 here
    assert logits.std().item() < 0.1 and logits.abs().mean().item() < 0.1


def test_plateau_ignores_gains_below_min_delta():
    from salttune.config import ScheduleConfig
    from salttune.schedule import make_schedule

    def lrs(min_delta):
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        s = make_schedule(ScheduleConfig(name="plateau", factor=0.5, patience=1, min_delta=min_delta), opt, 1.0, 4, 10)
        out = []
        for e, score in enumerate([0.500, 0.5015, 0.5018, 0.5019]):  # gains of a third of an image of 200 and less
            s.end_epoch(e, score)
            out.append(s.lr())
        return out

    assert lrs(0.002) == [1.0, 1.0, 0.5, 0.5]  # two epochs without a real gain (> patience 1): cut
    assert lrs(0.0) == [1.0, 1.0, 1.0, 1.0]  # every wobble counted as a gain: never cut


def test_focal_weighs_salt_and_background_alike_by_default():
    from salttune.config import LossConfig
    from salttune.heads import build_loss_from_config

    loss = build_loss_from_config(LossConfig(name="focal", weights=None))
    logits = torch.zeros(1, 1, 1, 2)
    salt_only = loss(logits[..., :1], torch.ones(1, 1, 1, 1))
    background_only = loss(logits[..., :1], torch.zeros(1, 1, 1, 1))
    assert salt_only.item() == pytest.approx(background_only.item())  # 0.25 vs 0.75 with RetinaNet's alpha


def test_nan_loss_fails_with_reason(parts, tmp_path):
    """A NaN in the input images makes the loss NaN on the first step; the run fails naming it."""
    train, val = parts
    bad = Arrays(train.ids, train.images.astype(np.float32) * np.nan, train.masks, train.depths)
    with pytest.raises(NonFiniteLoss, match="loss became nan at step 0"):
        fit(tiny_cfg(epochs=1, augment={"names": []}), bad, val, tmp_path / "nan")


class _Scale(torch.nn.Module):
    """out = w * x with w = 1 (the network's call signature, depth ignored)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))

    def forward(self, x, z=None):
        return self.w * x


def _const_batches(values_sizes):
    """Batches whose images are all the value v (B of them), empty masks, zero depths."""
    return [(torch.full((b, 1, 2, 2), v), torch.zeros(b, 1, 2, 2), torch.zeros(b)) for v, b in values_sizes]


def test_train_epoch_loss_is_the_image_weighted_mean_and_grad_norm_the_rms():
    # Loss mean((w x)^2) = v^2 per batch, gradient d/dw = 2 v^2 (w stays 1: lr 0); by hand:
    # batches (v=1, 2 images), (v=2, 1 image): train_loss = (1*2 + 4*1) / 3 = 2, grad_norm = sqrt((2^2 + 8^2) / 2).
    model = _Scale()
    stats = train_epoch(model, _const_batches([(1.0, 2), (2.0, 1)]), lambda out, y: ((out - y) ** 2).mean(),
                        torch.optim.SGD(model.parameters(), lr=0.0), torch.device("cpu"))
    assert stats["train_loss"] == 2.0 and stats["grad_norm"] == pytest.approx(math.sqrt(34.0))
    assert stats["train_images_per_s"] > 0


def test_train_epoch_names_the_first_non_finite_step_after_the_epoch():
    model, seen = _Scale(), []

    def loss_fn(out, y):
        seen.append(len(seen))
        bad = {1: math.nan, 2: math.inf}.get(len(seen) - 1, 1.0)  # steps 1 and 2 go bad
        return ((out - y) ** 2).mean() * bad

    with pytest.raises(NonFiniteLoss, match="loss became nan at step 1;"):
        train_epoch(model, _const_batches([(1.0, 2)] * 4), loss_fn, torch.optim.SGD(model.parameters(), lr=0.0),
                    torch.device("cpu"))
    assert seen == [0, 1, 2, 3]  # checked once the epoch is done: the host never waited inside it


def test_cli_train_and_predict(tgs_folder, tmp_path):
    root, made = tgs_folder
    out = tmp_path / "run"
    proc = run_cli("train", "--data", str(root), "--out", str(out), "--quiet", "--set", "epochs=2",
                   "--set", "batch_size=4", "--set", "model.base_width=4", "--set", "model.depth=2")
    assert proc.returncode == 0, proc.stderr
    assert "epoch   2" in proc.stdout and "best score" in proc.stdout
    assert RunFiles(out).config.exists() and RunFiles(out).summary.exists()
    # a finished run is not overwritten by accident
    assert_user_error(run_cli("train", "--data", str(root), "--out", str(out)), "already holds a run")
    snap = json.loads(RunFiles(out).summary.read_text())["snapshots"][0]["path"]
    sub = tmp_path / "sub.csv"
    proc = run_cli("predict", "--checkpoint", snap, "--data", str(root), "--out", str(sub), "--tta", "flip", "--quiet")
    assert proc.returncode == 0, proc.stderr
    rows = sub.read_text().splitlines()
    assert rows[0] == "id,rle_mask" and [r.split(",")[0] for r in rows[1:]] == made["test_ids"]
    assert_user_error(run_cli("predict", "--checkpoint", snap, "--data", str(root), "--out", str(sub)), "already exists")
    assert_user_error(run_cli("predict", "--checkpoint", str(root / "train.csv"), "--data", str(root), "--out", str(tmp_path / "x.csv")), "train.csv")


def test_channels_last_false_keeps_weights_and_optimiser_state_contiguous(parts, tmp_path):
    train, val = parts
    fit(tiny_cfg(epochs=2, channels_last=False), train, val, tmp_path / "run")  # evaluates after epoch 1, then steps
    state = load_checkpoint(RunFiles(tmp_path / "run").checkpoint.state)
    convs = [k for k, v in state["model"].items() if v.ndim == 4 and v.shape[1] > 1]
    assert convs and all(state["model"][k].is_contiguous() for k in convs)
    moments = [s["exp_avg"] for s in state["optimizer"]["state"].values() if s["exp_avg"].ndim == 4 and s["exp_avg"].shape[1] > 1]
    assert moments and all(m.is_contiguous() for m in moments)
