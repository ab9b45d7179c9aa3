"""salttune.heads: the output protocol, the loss over every head, loss stages in training, and the search keys."""

import math

import pytest
import torch
import torch.nn.functional as F

from conftest import assert_user_error, run_cli
from salttune.checkpoint import build_from_checkpoint, load_checkpoint
from salttune.config import LossConfig, config_from_dict
from salttune.data import load_dataset
from salttune.errors import SalttuneError
from salttune.heads import HeadLoss, build_training_loss, head_loss, outputs, salt_targets, to_float
from salttune.losses import CombinedLoss, Stage, bce, dice, parse_stages, stage_of
from salttune.model import build_model
from salttune.predict import predict_logits
from salttune.split import Split, split_data
from salttune.train import fit

LN2 = math.log(2.0)


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


# ---------------------------------------------------------------------------------------------- protocol


def test_outputs_normalises_tensor_and_dict():
    t = torch.zeros(2, 1, 3, 3)
    assert outputs(t)["logits"] is t and set(outputs(t)) == {"logits"}
    d = {"logits": t, "salt": torch.zeros(2)}
    assert outputs(d) == d and outputs(d) is not d  # a copy: callers may add keys
    with pytest.raises(TypeError):
        outputs({"aux": [t]})
    with pytest.raises(TypeError):
        outputs({"logits": t, "edges": t})


def test_to_float_keeps_the_form():
    t = torch.zeros(1, 1, 2, 2, dtype=torch.bfloat16)
    assert to_float(t).dtype == torch.float32
    out = to_float({"logits": t, "aux": [t, t], "salt": torch.zeros(1, dtype=torch.bfloat16)})
    assert out["logits"].dtype == out["salt"].dtype == torch.float32 and [a.dtype for a in out["aux"]] == [torch.float32] * 2


def test_salt_targets():
    y = torch.zeros(3, 1, 2, 2)
    y[1, 0, 1, 1] = 1.0
    assert salt_targets(y).tolist() == [0.0, 1.0, 0.0]


# ---------------------------------------------------------------------------------------------- head loss


def _two_images():
    """Two 1x2 images: the first holds salt in its first pixel, the second is empty. (2, 1, 1, 2)."""
    return torch.tensor([[[[1.0, 0.0]]], [[[0.0, 0.0]]]])


def test_head_loss_hand_value():
    y = _two_images()
    logits = torch.zeros(2, 1, 1, 2)  # BCE ln 2
    aux = [torch.zeros(2, 1, 1, 2), torch.full((2, 1, 1, 2), 2.0)]  # ln 2; (softplus(-2) + 3 softplus(2)) / 4
    salt = torch.tensor([0.0, math.log(3.0)])  # -log(0.5) = ln 2 and -log(1 - 0.75) = ln 4: mean 1.5 ln 2
    out = {"logits": logits, "aux": aux, "salt": salt}
    aux_mean = (LN2 + (_softplus(-2.0) + 3 * _softplus(2.0)) / 4) / 2
    want = LN2 + 0.5 * aux_mean + 0.05 * 1.5 * LN2
    assert head_loss(out, y, bce, aux_weight=0.5, salt_weight=0.05).item() == pytest.approx(want, rel=1e-6)
    assert HeadLoss(bce, 0.5, 0.05)(out, y).item() == pytest.approx(want, rel=1e-6)
    # Weights: aux 0 and salt 1 leave BCE + salt BCE; heads the output lacks are left out.
    assert head_loss(out, y, bce, 0.0, 1.0).item() == pytest.approx(LN2 + 1.5 * LN2, rel=1e-6)
    assert HeadLoss(bce, 0.5, 0.05)(logits, y).item() == pytest.approx(LN2, rel=1e-6)
    assert HeadLoss(bce, 0.5, 0.05)({"logits": logits, "salt": salt}, y).item() == pytest.approx(
        LN2 + 0.05 * 1.5 * LN2, rel=1e-6)


def test_head_loss_trains_every_head():
    y = _two_images()
    out = {"logits": torch.zeros(2, 1, 1, 2, requires_grad=True), "aux": [torch.zeros(2, 1, 1, 2, requires_grad=True)],
           "salt": torch.zeros(2, requires_grad=True)}
    head_loss(out, y, bce, 0.5, 0.05).backward()
    # d/dx mean BCE at logit 0 = (sigmoid(0) - t) / n: salt (0.5 - [1, 0]) / 2 * 0.05
    assert out["salt"].grad.tolist() == pytest.approx([-0.0125, 0.0125])
    assert out["aux"][0].grad.abs().sum() > 0 and out["logits"].grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------- stages


def test_parse_stages_values():
    assert parse_stages("bce+dice:20,lovasz_symmetric") == [Stage("bce+dice", (1.0, 1.0), 20),
                                                             Stage("lovasz_symmetric", (1.0,), None)]
    assert parse_stages(" bce*1+lovasz*0.5 : 3 , lovasz ") == [Stage("bce+lovasz", (1.0, 0.5), 3), Stage("lovasz", (1.0,), None)]
    assert parse_stages("focal") == [Stage("focal", (1.0,), None)]


def test_stage_of_epoch():
    stages = parse_stages("bce:2,dice:3,lovasz")
    assert [stage_of(stages, e) for e in range(8)] == [0, 0, 1, 1, 1, 2, 2, 2]
    # Stages past the end of a short run never train; a single stage trains every epoch.
    assert [stage_of(parse_stages("bce:10,lovasz"), e) for e in range(3)] == [0, 0, 0]
    assert stage_of(parse_stages("dice"), 7) == 0


@pytest.mark.parametrize("text, fragment", [
    ("bce:2,hinge", "unknown loss 'hinge' in stage 'hinge'; valid names: bce, dice"),
    ("bce:0,lovasz", "stage 'bce:0': length '0' is not a whole number of epochs >= 1"),
    ("bce:x,lovasz", "length 'x' is not a whole number"),
    ("bce,lovasz", "stage 'bce' is not the last, so it needs its epochs: write bce:N"),
    ("bce:2,lovasz:3", "the last stage 'lovasz:3' runs to the end of training; drop ':3'"),
    ("bce:2,,lovasz", "stage 2 of 'bce:2,,lovasz' is empty"),
    ("bce*-1:2,lovasz", "weight '-1' of 'bce' in stage 'bce*-1:2' is not a number >= 0"),
    ("bce*0+dice*0:2,lovasz", "every weight is 0"),
    ("bce+bce:2,lovasz", "repeats a term"),
])
def test_parse_stages_errors(text, fragment):
    with pytest.raises(SalttuneError, match=None) as e:
        parse_stages(text)
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_build_training_loss_per_stage_with_family_settings():
    cfg = LossConfig(stages="bce*2+dice:1,lovasz", lovasz_per_image=False, dice_per_image=True, aux_weight=0.3, salt_weight=0.0)
    staged = build_training_loss(cfg, 10)
    first, second = staged.at(0), staged.at(1)
    assert isinstance(first, HeadLoss) and (first.aux_weight, first.salt_weight) == (0.3, 0.0)
    assert isinstance(first.main, CombinedLoss) and first.main.names == ["bce", "dice"] and first.main.weights == [2.0, 1.0]
    assert first.main.params["dice"] == {"per_image": True}
    assert second.main.names == ["lovasz"] and second.main.params["lovasz"] == {"per_image": False, "nonempty_only": False}
    assert [staged.index(e) for e in range(3)] == [0, 1, 1]
    # Without stages: the single loss of name and weights at every epoch.
    single = build_training_loss(LossConfig(stages=""), 10)
    assert single.at(0) is single.at(99) and single.at(0).main.names == ["bce", "lovasz_symmetric"]


# ---------------------------------------------------------------------------------------------- training


TINY = {"batch_size": 4, "model": {"base_width": 4, "depth": 2}, "val_fraction": 0.25, "augment": {"names": []}}


@pytest.fixture
def parts(tgs_folder):
    root, _ = tgs_folder
    return split_data(load_dataset(root, with_test=False), Split(0.25, split_seed=0))[:2]


def _val_loss_of(state_path, val, loss) -> float:
    state = load_checkpoint(state_path)
    model = build_model(**state["model_args"])
    model.load_state_dict(state["model"])
    logits = torch.from_numpy(predict_logits(model, val.images, None, torch.device("cpu"))).unsqueeze(1)
    return float(loss(logits, torch.from_numpy(val.masks).unsqueeze(1).float()))


def test_fit_switches_loss_stage_and_resume_picks_it(parts, tmp_path):
    train, val = parts
    cfg = config_from_dict({**TINY, "epochs": 2, "loss": {"stages": "bce:1,dice"}})
    log = []
    fit(cfg, train, val, tmp_path / "run", lambda m, c: log.append(m))
    assert [m["loss_stage"] for m in log] == [0, 1]
    # Epoch 2's val_loss is the Dice of the final weights' logits: the second stage's loss.
    assert log[1]["val_loss"] == pytest.approx(_val_loss_of(tmp_path / "run" / "checkpoint" / "state.pt", val, dice), rel=1e-5)
    # A run stopped after epoch 1 and resumed trains epoch 2 with the second stage, from the epoch number alone.
    fit(config_from_dict({**TINY, "epochs": 1, "loss": {"stages": "bce:1,dice"}}), train, val, tmp_path / "part")
    resumed = []
    fit(cfg, train, val, tmp_path / "resumed", lambda m, c: resumed.append(m), resume_from=tmp_path / "part" / "checkpoint")
    assert [(m["epoch"], m["loss_stage"]) for m in resumed] == [(2, 1)]
    assert resumed[0]["val_loss"] == pytest.approx(log[1]["val_loss"], rel=1e-5)


def test_fit_without_stages_reports_no_stage(parts, tmp_path):
    train, val = parts
    log = []
    fit(config_from_dict({**TINY, "epochs": 1, "loss": {"stages": ""}}), train, val, tmp_path / "run", lambda m, c: log.append(m))
    assert "loss_stage" not in log[0]


def test_fit_with_deep_supervision_and_salt_head(parts, tmp_path):
    train, val = parts
    cfg = config_from_dict({**TINY, "epochs": 1, "model": {"base_width": 4, "depth": 2, "deep_supervision": True,
                                                             "salt_head": True}, "loss": {"name": "bce"}})
    log = []
    summary = fit(cfg, train, val, tmp_path / "run", lambda m, c: log.append(m))
    assert math.isfinite(log[0]["train_loss"]) and 0.0 <= log[0]["val_score"] <= 1.0
    # val_loss scores the main logits with the pixel loss alone.
    assert log[0]["val_loss"] == pytest.approx(_val_loss_of(tmp_path / "run" / "checkpoint" / "state.pt", val, bce), rel=1e-5)
    model, _ = build_from_checkpoint(summary["snapshots"][0]["path"])  # rebuilds with its heads
    out = model.eval()(torch.zeros(2, 1, 101, 101))
    assert set(out) == {"logits", "aux", "salt"}


def test_fit_trains_the_salt_head(parts, tmp_path):
    # The salt head's weights move only through the salt term: with salt_weight 0 they stay as initialised.
    train, val = parts
    runs = {}
    for w in (0.0, 1.0):
        cfg = config_from_dict({**TINY, "epochs": 1, "model": {"base_width": 4, "depth": 2, "salt_head": True},
                                "loss": {"name": "bce", "salt_weight": w}})
        fit(cfg, train, val, tmp_path / f"w{w}")
        runs[w] = load_checkpoint(tmp_path / f"w{w}" / "checkpoint" / "state.pt")["model"]["salt.weight"]
    torch.manual_seed(0)  # fit seeds with cfg.seed = 0 before building the network
    fresh = build_model(base_width=4, depth=2, salt_head=True).state_dict()["salt.weight"]
    assert torch.equal(runs[0.0], fresh)
    assert not torch.equal(runs[1.0], fresh)


@pytest.mark.parametrize("stages, fragments", [
    ("bce:2,hinge", ["loss.stages", "unknown loss 'hinge'", "valid names"]),
    ("bce,lovasz", ["loss.stages", "needs its epochs"]),
    ("bce:0,lovasz", ["loss.stages", "not a whole number of epochs >= 1"]),
])
def test_bad_stages_one_line_via_cli(tgs_folder, stages, fragments):
    root, _ = tgs_folder
    proc = run_cli("train", "--data", str(root), "--quiet", "--set", f"loss.stages={stages}")
    assert_user_error(proc, *fragments)


# ---------------------------------------------------------------------------------------------- search


def test_search_space_can_choose_blocks_heads_and_stages():
    from salttune.search.space import space_from_dict, trial_config

    space = space_from_dict({"space": {
        "model.block": {"choice": ["residual", "residual_scse"]},
        "model.deep_supervision": {"choice": [False, True]},
        "model.salt_head": {"choice": [False, True]},
        "loss.stages": {"choice": ["", "bce+dice:2,lovasz_symmetric"]},
    }})
    cfg = trial_config(space, {"model.block": "residual_scse", "model.deep_supervision": True, "model.salt_head": True,
                               "loss.stages": "bce+dice:2,lovasz_symmetric"})
    assert (cfg.model.block, cfg.model.deep_supervision, cfg.model.salt_head) == ("residual_scse", True, True)
    assert cfg.loss.stages == "bce+dice:2,lovasz_symmetric"
    with pytest.raises(SalttuneError, match="loss.stages.*unknown loss 'hinge'"):
        space_from_dict({"space": {"loss.stages": {"choice": ["", "bce:2,hinge"]}}})


@pytest.mark.parametrize("text, run, lengths", [
    ("bce+dice:30%,lovasz_symmetric", 10, [3, None]),
    ("bce+dice:30%,lovasz_symmetric", 8, [2, None]),  # round(2.4)
    ("bce+dice:30%,lovasz_symmetric", 1, [1, None]),  # too short for both: the first stage gets its epoch
    ("bce:50%,dice:40%,lovasz", 10, [5, 4, None]),
    ("bce:50%,dice:45%,lovasz", 4, [2, 1, None]),  # each later stage keeps at least one epoch
    ("bce:4,dice:50%,lovasz", 10, [4, 5, None]),  # epochs stay epochs
])
def test_stage_shares_resolve_against_the_run(text, run, lengths):
    from salttune.losses import resolve_stages

    stages = resolve_stages(parse_stages(text), run)
    assert [s.epochs for s in stages] == lengths and all(s.share is None for s in stages)
    staged = build_training_loss(LossConfig(stages=text), run)
    if run >= len(lengths):  # a run long enough trains every stage, the last one included
        assert sorted({staged.index(e) for e in range(run)}) == list(range(len(lengths)))


@pytest.mark.parametrize("text, fragment", [
    ("bce:0%,lovasz", "share '0%' is not a percentage between 0% and 100%"),
    ("bce:abc%,lovasz", "share 'abc%'"),
    ("bce:60%,dice:40%,lovasz", "add up to 100% or more"),
    ("bce:1.5,lovasz", "nor a share of the run such as 30%"),
])
def test_bad_shares_are_one_line(text, fragment):
    with pytest.raises(SalttuneError) as e:
        parse_stages(text)
    assert fragment in str(e.value) and "\n" not in str(e.value)
