import torch

from salttune.config import ScheduleConfig, config_from_dict
import pytest

from salttune.errors import SalttuneError
from salttune.schedule import SCHEDULES, cycle_ends, make_schedule


def make(name, run_epochs=10, **kw):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    return make_schedule(ScheduleConfig(name=name, **kw), opt, 1.0, steps_per_epoch=4, run_epochs=run_epochs)


def test_plateau_cuts_by_factor_after_patience():
    s = make("plateau", factor=0.7, patience=1, min_lr=0.0)
    scores = [0.1, 0.2, 0.2, 0.2, 0.2, 0.3]
    lrs = []
    for e, sc in enumerate(scores):
        assert not s.end_epoch(e, sc)
        lrs.append(round(s.lr(), 6))
    # two stalled epochs (> patience 1) -> cut; the count restarts after a cut
    assert lrs == [1.0, 1.0, 1.0, 0.7, 0.7, 0.7]


def test_snapshot_plateau_restarts_from_last_weights():
    s = make("snapshot_plateau", factor=0.5, patience=0, snapshot_patience=2)
    ended = [s.end_epoch(e, sc) for e, sc in enumerate([0.1, 0.1, 0.1, 0.2])]
    assert ended == [False, False, True, False]
    assert s.state.cycle == 1 and s.state.cycle_start == 3
    assert s.lr() == 1.0  # restarted at the initial rate


def test_cosine_cycles():
    s = make("cosine_snapshots", cycle_epochs=2, min_lr=0.0)
    s.before_step(0, 0)
    assert s.lr() == 1.0
    s.before_step(1, 0)  # half-way through the 8-step cycle
    assert abs(s.lr() - 0.5) < 1e-9
    assert not s.end_epoch(0, 0.1) and s.end_epoch(1, 0.1)
    s.before_step(2, 0)
    assert s.lr() == 1.0 and s.state.cycle == 1
    st = s.state_dict()
    s2 = make("cosine_snapshots", cycle_epochs=2)
    s2.load_state_dict(st)
    assert s2.state == s.state


def test_none_keeps_the_rate_and_one_cycle():
    s = make("none")
    for e, sc in enumerate([0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]):
        s.before_step(e, 0)
        assert not s.end_epoch(e, sc) and s.lr() == 1.0
    assert s.state.cycle == 0


def test_only_cosine_keeps_the_last_epoch_of_a_cycle():
    assert {n: make(n).keeps_last_of_cycle for n in SCHEDULES} == {
        "none": False, "plateau": False, "snapshot_plateau": False, "cosine_snapshots": True}


def test_unknown_name_lists_the_valid_ones():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    with pytest.raises(SalttuneError, match="unknown 'step'; allowed: none, plateau, snapshot_plateau, cosine_snapshots"):
        make_schedule(ScheduleConfig(name="step"), opt, 1.0, 4, 10)


def test_config_choices_are_the_dict():
    assert config_from_dict({"schedule": {"name": "cosine_snapshots"}}).schedule.name == "cosine_snapshots"
    with pytest.raises(SalttuneError, match=f"'schedule.name': unknown value 'step'; allowed: {', '.join(SCHEDULES)}"):
        config_from_dict({"schedule": {"name": "step"}})


@pytest.mark.parametrize("run, cycles, ends", [(10, 3, [3, 7, 10]), (8, 2, [4, 8]), (2, 4, [1, 2]), (7, 1, [7])])
def test_cycles_as_shares_of_the_run_end_on_its_last_epoch(run, cycles, ends):
    assert cycle_ends(run, cycles) == ends
    s = make("cosine_snapshots", run_epochs=run, cycles=cycles, cycle_epochs=999, min_lr=0.0)
    closed = [e + 1 for e in range(run) if s.end_epoch(e, 0.0)]
    assert closed == ends  # every cycle whole, the last one ends the run: its snapshot is the run's last weights


def test_cycles_anneal_over_their_own_length():
    s = make("cosine_snapshots", run_epochs=10, cycles=3, min_lr=0.0)  # cycles of 3, 4 and 3 epochs
    for e in range(3):
        s.end_epoch(e, 0.0)
    s.before_step(3, 0)
    assert s.lr() == 1.0 and s.state.cycle_start == 3
    s.before_step(5, 0)  # 2 of the second cycle's 4 epochs: half-way
    assert abs(s.lr() - 0.5) < 1e-9
