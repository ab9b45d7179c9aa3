"""A search's time budget (``salttune.search.budget``): the space's time_budget key, the sizing arithmetic checked by hand,
the typical trial that is timed, and the deadline the driver's stopper and sampler read."""

from __future__ import annotations

import dataclasses
import pickle
import time

import pytest
import torch

from conftest import write_tgs_folder
from search_fixtures import space_yaml  # before Ray is imported: it turns token authentication on
from salttune.errors import SalttuneError
from salttune.search.budget import (
    cutoff_s, expected_epochs, fits_at_once, measure_epoch, read_budget, rungs, size_to_budget, sizing_line, typical_point,
    write_budget,
)
from salttune.search.space import Resources, load_space, space_from_dict


# -- the space's key ------------------------------------------------------------------------------------

def test_the_space_key_takes_a_duration_and_says_which_forms_it_takes(tmp_path):
    base = {"space": {"optim.lr": {"loguniform": [1e-3, 1e-2]}}}
    assert space_from_dict({**base, "time_budget": "1h30m"}).time_budget == 5400
    assert space_from_dict({**base, "time_budget": 600}).time_budget == 600
    assert space_from_dict(base).time_budget is None
    with pytest.raises(SalttuneError, match=r"^s.yaml: key 'time_budget': 'soon' is not a duration; give seconds \(5400\) "
                                            r"or a duration such as 90s, 45m, 2h, 1h30m$"):
        space_from_dict({**base, "time_budget": "soon"}, source="s.yaml")
    f = space_yaml(tmp_path, "b", "  optim.lr: {loguniform: [1.0e-3, 1.0e-2]}")
    assert load_space(f, ["time_budget=2h"]).time_budget == 7200  # --set takes it too


# -- sizing -------------------------------------------------------------------------------------------

def test_rungs_and_expected_epochs_by_hand():
    assert rungs(9, 1, 3) == [1, 3] and rungs(6, 2, 2) == [2, 4] and rungs(8, 1, 2) == [1, 2, 4] and rungs(3, 3, 2) == []
    assert expected_epochs(9, 1, 3) == pytest.approx(1 + 2 / 3 + 6 / 9)  # 2.33
    assert expected_epochs(10, 4, 2) == pytest.approx(4 + 4 / 2 + 2 / 4)  # milestones 4, 8: 6.5
    assert expected_epochs(6, 2, 2) == pytest.approx(2 + 2 / 2 + 2 / 4)  # 3.5
    assert expected_epochs(3, 3, 2) == 3 and expected_epochs(6, 2, 2, asha=False) == 6


def test_trials_that_fit_at_once():
    assert fits_at_once(Resources(cpu=1, gpu=0), {"CPU": 2}) == 2
    assert fits_at_once(Resources(cpu=2, gpu=0.25), {"CPU": 16, "GPU": 1}) == 4  # the GPU shares bind first
    assert fits_at_once(Resources(cpu=1.5, gpu=0), {"CPU": 2}) == 1
    assert fits_at_once(Resources(cpu=0.1, gpu=0), {"CPU": 0.3}) == 3
    assert fits_at_once(Resources(cpu=4, gpu=0), {"CPU": 2}) == 1  # never none


def _space(**changes):
    space = space_from_dict({"asha": {"max_t": 6, "grace_period": 2, "reduction_factor": 2}, "trials": 10, "concurrent": 2,
                             "startup_trials": 6, "space": {"optim.lr": {"loguniform": [1e-3, 1e-2]}}})
    return dataclasses.replace(space, **changes)


def test_a_budget_with_room_keeps_max_t_and_fills_the_slots():
    # 600 s, 10 s epochs: 60 epochs a slot, max_t 6 kept (<= 60 / 3); milestones 2, 4: 2 + 2/2 + 2/4 = 3.5 epochs
    # a trial, 3 + 35 = 38 s; 2 slots * 600 s / 38 s = 31.6 -> 32 trials; startup min(6, max(2, 32 // 10)) = 3
    sized = size_to_budget(_space(), budget_s=600, epoch_s=10, slots=2, overhead_s=3)
    assert (sized.trials, sized.concurrent, sized.startup_trials, sized.asha.max_t, sized.asha.grace_period) == (32, 2, 3, 6, 2)
    assert sized.asha.reduction_factor == 2 and sized.params == _space().params  # the rest as it was


def test_a_tight_budget_cuts_max_t_so_several_full_trials_fit():
    # 120 s, 10 s epochs: 12 epochs a slot, max_t 12 / 3 = 4; milestone 2: 2 + 2/2 = 3 epochs, 33 s a trial;
    # 4 slots * 120 / 33 = 14.5 -> 15 trials, 4 at a time, startup min(6, max(4, 1)) = 4
    sized = size_to_budget(_space(), budget_s=120, epoch_s=10, slots=4, overhead_s=3)
    assert (sized.trials, sized.concurrent, sized.startup_trials, sized.asha.max_t, sized.asha.grace_period) == (15, 4, 4, 4, 2)
    # 30 s: 3 epochs a slot -> max_t 1 (at least one), grace 1 (<= max_t); 13 s a trial, 8 * 30 / 13 = 18.5 -> 19
    sized = size_to_budget(_space(), budget_s=30, epoch_s=10, slots=8, overhead_s=3)
    assert (sized.trials, sized.concurrent, sized.asha.max_t, sized.asha.grace_period) == (19, 8, 1, 1)


def test_without_asha_every_trial_counts_all_its_epochs():
    # random search: 6 epochs a trial, 63 s; 2 * 600 / 63 = 19.05 -> 20 trials; startup min(6, max(2, 2)) = 2
    sized = size_to_budget(_space(algorithm="random"), budget_s=600, epoch_s=10, slots=2, overhead_s=3)
    assert (sized.trials, sized.concurrent, sized.startup_trials, sized.asha.max_t) == (20, 2, 2, 6)


def test_the_laptop_example_and_its_line():
    # 2 h, 7.1 s epochs, laptop.yaml's asha (max_t 10, grace 4, rf 2): 6.5 epochs, 3 + 46.15 = 49.15 s a trial;
    # 2 * 7200 / 49.15 = 292.98 -> 293 trials
    space = _space(asha=dataclasses.replace(_space().asha, max_t=10, grace_period=4), startup_trials=4)
    sized = size_to_budget(space, budget_s=7200, epoch_s=7.1, slots=2, overhead_s=3)
    assert (sized.trials, sized.concurrent, sized.startup_trials, sized.asha.max_t) == (293, 2, 4, 10)
    line = sizing_line(space, sized, 7200, 7200, 7.1, 2)
    assert line.startswith("time budget 2h: first epoch 7.1 s\n  explore: 7200 s for the trials; 2 trials at a time (all that fit), ")
    assert "max_t 10 (the space's), grace_period 4, about 6.5 epochs a trial under ASHA, so 293 trials" in line
    short = size_to_budget(space, budget_s=120, epoch_s=10, slots=2, overhead_s=3)
    assert "max_t 4 (the space's 10 would take over a third of a slot's time)" in sizing_line(space, short, 130, 120, 10, 2)
    assert cutoff_s(sized, 7.1, overhead_s=3) == pytest.approx(3 + 4 * 7.1)  # time to reach the first rung


def test_a_budget_that_holds_no_trial_is_one_line():
    with pytest.raises(SalttuneError, match=r"^time budget: 10 s left for the trials and one epoch takes 8.0 s .* give a larger --time-budget"):
        size_to_budget(_space(), budget_s=10, epoch_s=8, slots=2, overhead_s=3)


# -- the timed epoch ----------------------------------------------------------------------------------

def test_the_typical_trial_is_the_middle_of_each_range_and_of_each_choice():
    space = space_from_dict({"space": {
        "optim.lr": {"loguniform": [1e-4, 1e-2]}, "optim.name": {"choice": ["adam", "sgd"]},
        "optim.momentum": {"uniform": [0.8, 0.99], "when": {"optim.name": "sgd"}},  # not drawn: adam is the middle (of 2)
        "model.base_width": {"int": [8, 32], "step": 8}, "schedule.factor": {"uniform": [0.1, 0.5], "step": 0.1},
        "augment.names": {"choice": [["hflip"], ["hflip", "translate"]]}}})
    point = typical_point(space)
    assert point == {"optim.lr": pytest.approx(1e-3), "optim.name": "adam", "model.base_width": 24,  # 8 + round(1.5) * 8
                     "schedule.factor": pytest.approx(0.3), "augment.names": "hflip"}


def test_one_epoch_is_timed_with_the_trial_threads_and_the_driver_threads_come_back(tmp_path):
    from salttune.data import load_dataset
    from salttune.split import Split, split_data

    write_tgs_folder(tmp_path / "d", n_train=16, n_test=1, size=32)
    space = space_from_dict({"fixed": {"model.base_width": 4, "model.depth": 2, "batch_size": 8, "faults.raise_at_epoch": 1},
                             "space": {"optim.lr": {"loguniform": [1e-3, 1e-2]}}, "data": {"val_fraction": 0.25}})
    train, val, _ = split_data(load_dataset(tmp_path / "d", with_test=False), Split(val_fraction=0.25))
    threads = torch.get_num_threads()
    seconds, predict_s = measure_epoch(space, train, val, Resources(cpu=1, gpu=0))  # the injected fault is left out
    assert 0 < seconds < 30 and torch.get_num_threads() == threads
    assert 0 < predict_s < seconds / len(val.ids)  # predicting one image costs less than an epoch over all of them


# -- the deadline on disk, as the driver's stopper and sampler read it ---------------------------------

def test_the_stopper_stops_a_trial_whose_next_epoch_would_pass_the_deadline(tmp_path):
    from salttune.search.stopping import Deadline

    write_budget(tmp_path, 60, time.time() + 8, epoch_s=2, cutoff=5)
    stop = Deadline(tmp_path / "budget.json")
    assert not stop("t1", {"iterations_since_restore": 2, "time_since_restore": 6.0})  # 3 s an epoch, 8 s left
    assert stop("t1", {"iterations_since_restore": 1, "time_since_restore": 9.0})  # 9 s an epoch
    assert not stop.stop_all()
    # a resumed search writes its own deadline: the pickled stopper (Tune's tuner.pkl) reads the new one
    stop = pickle.loads(pickle.dumps(stop))
    write_budget(tmp_path, 60, time.time() - 1, epoch_s=2, cutoff=5)
    assert stop.stop_all() and stop("t1", {"iterations_since_restore": 0})


def test_sampling_stops_when_too_little_time_is_left_and_says_so(tmp_path):
    from ray.tune.search import Searcher

    from salttune.search.stopping import SampleUntil

    class Counting(Searcher):
        def __init__(self):
            super().__init__(metric="val_score", mode="max")
            self.n = 0

        def suggest(self, trial_id):
            self.n += 1
            return {"x": self.n}

        def on_trial_complete(self, trial_id, result=None, error=False):
            pass

    write_budget(tmp_path, 60, time.time() + 30, epoch_s=2, cutoff=10)
    sampler = SampleUntil(Counting(), max_concurrent=2, budget_path=tmp_path / "budget.json")
    assert sampler.suggest("a") == {"x": 1} and sampler.suggest("b") == {"x": 2} and sampler.suggest("c") is None  # 2 at once
    sampler.on_trial_complete("a")
    assert "_budget" not in sampler.get_state()  # Tune saves this state; the deadline is always read from the file
    write_budget(tmp_path, 60, time.time() + 9, epoch_s=2, cutoff=10)  # 9 s left, 10 needed: no more trials
    sampler.set_state(sampler.get_state())
    sampler._budget = None  # as after a restore
    assert sampler.suggest("d") == Searcher.FINISHED and sampler.searcher.n == 2
    assert "sampling_ended" in read_budget(tmp_path)


def test_a_trial_gets_the_time_left_plus_what_it_trained_before_a_retry(tmp_path):
    from salttune.config import config_from_dict
    from salttune.data import load_dataset
    from salttune.search.trainable import time_left
    from salttune.split import Split, split_data
    from salttune.train import fit

    cfg = config_from_dict({"epochs": 2, "model": {"base_width": 4, "depth": 2}, "batch_size": 8})
    assert time_left(cfg, time.time() + 100, None) == pytest.approx(100, abs=1)
    assert time_left(cfg, time.time() - 5, None) == 1.0  # past the deadline: the least a config takes; one epoch runs
    assert time_left(dataclasses.replace(cfg, time_budget_s=30.0), time.time() + 100, None) == 30.0  # the space's own
    write_tgs_folder(tmp_path / "d", n_train=12, n_test=1, size=32)
    train, val, _ = split_data(load_dataset(tmp_path / "d", with_test=False), Split(val_fraction=0.25))
    spent = fit(dataclasses.replace(cfg, epochs=1), train, val, tmp_path / "run")["seconds"]
    # fit counts the restored epochs against its budget, so a retried trial gets them back on top of the time left
    assert time_left(cfg, time.time() + 100, tmp_path / "run" / "checkpoint") == pytest.approx(100 + spent, abs=1)


def test_the_typical_trial_of_a_space_with_a_prior_is_the_prior():
    space = space_from_dict({"space": {"optim.lr": {"loguniform": [1e-4, 1e-2]}, "model.block": {"choice": ["plain", "residual", "se"]}},
                             "prior": {"optim.lr": 5e-3, "model.block": "se"}})
    assert typical_point(space) == {"optim.lr": 5e-3, "model.block": "se"}


def test_asha_first_rung_waits_for_the_last_stage_and_a_cycle_end():
    from salttune.search.budget import comparable_from

    shares = _space(fixed={"loss.stages": "bce+dice:30%,lovasz_symmetric"})
    assert comparable_from(shares, 10) == 4  # 3 epochs of BCE+Dice, then the first in Lovasz
    cycles = _space(fixed={"loss.stages": "bce+dice:30%,lovasz_symmetric", "schedule.name": "cosine_snapshots", "schedule.cycles": 2})
    assert comparable_from(cycles, 10) == 5  # ... and the first cycle's end at or after it
    assert comparable_from(_space(), 10) == 1  # the default stages count epochs: left alone
    sized = size_to_budget(cycles, budget_s=600, epoch_s=10, slots=2, overhead_s=3)
    assert sized.asha.grace_period == 5 or sized.asha.max_t < 10


def test_the_plan_reserves_the_ensemble_then_shares_the_rest():
    from salttune.search.budget import ENSEMBLE_SAFETY, ENSEMBLE_START_S, plan_job

    # 900 s left; predictions: 0.01 s an image, 1000 passes, 2 models of 2 snapshots: 30 + 1.2 * 0.01 * 1000 * 4 = 78 s
    job = plan_job(900, epoch_s=10, predict_s=0.01, slots=2, train_images=600, fit_images=800, predicted_images=1000,
                   snapshots=2, final_share=0.6, overhead_s=5)
    assert job.ensemble_s == pytest.approx(ENSEMBLE_START_S + ENSEMBLE_SAFETY * 0.01 * 1000 * 4) == pytest.approx(78)
    assert job.final_s == pytest.approx(0.6 * 822) and job.explore_s == pytest.approx(0.4 * 822)
    # an epoch on 800 images takes 10 * 800 / 600 = 13.3 s, planned at 1.1 times that: (493.2 - 5) / 14.67 = 33.3
    # -> 33 epochs, one model per slot
    assert (job.final_models, job.final_epochs, job.final_images) == (2, 33, 800)
    none = plan_job(900, epoch_s=10, predict_s=0.01, slots=2, train_images=600, fit_images=800, predicted_images=1000,
                    snapshots=2, final_share=0.0)
    assert none.final_models == 0 and none.final_s == 0 and none.explore_s == pytest.approx(900 - 30 - 12 * 2)


def test_depth_first_a_budget_too_small_to_explore_as_well_trains_only_the_final_models():
    from salttune.search.budget import MIN_EXPLORE_EPOCHS, MIN_EXPLORE_TRIALS, plan_job

    kw = dict(predict_s=0.01, slots=2, train_images=600, fit_images=800, predicted_images=1000, snapshots=2,
              final_share=0.6, min_final_epochs=10, overhead_s=5)
    # 15 minutes on 2 cores: an epoch of 19 s (25.3 s on 800 images, planned as 27.9 s); 30 epochs of the final
    # models take 841 s of the 822 s, and exploring needs 4 rounds of (5 + 4 * 19) = 324 s: none, the final models
    # take it all
    job = plan_job(900, epoch_s=19, depth_epochs=30, **kw)
    assert job.explore_s == 0 and job.final_s == pytest.approx(822) and job.final_models == 2
    assert job.final_epochs == int((822 - 5) / (1.1 * 19 * 800 / 600)) == 29
    # an hour: final_share of it (more than the 30 epochs), and the rest explores
    hour = plan_job(3600, epoch_s=19, depth_epochs=30, **kw)
    assert hour.final_s == pytest.approx(0.6 * (3600 - 78)) and hour.explore_s == pytest.approx(0.4 * (3600 - 78))
    # 2000 s, 45 epochs asked: the final models get them first (more than final_share), and the rest still
    # explores, since it holds 8 trials of 4 epochs, and the budget holds 3 trainings of 45 epochs on the whole
    # machine (at best a slot's epoch over 2: 3 * (5 + 45 * 1.1 * 9.5 * 800 / 600) = 1896 s of the 1922)
    mid = plan_job(2000, epoch_s=19, depth_epochs=45, **kw)
    depth = 5 + 45 * 1.1 * 19 * 800 / 600
    assert depth > 0.6 * (2000 - 78) and mid.final_s == pytest.approx(depth) and mid.final_epochs in (44, 45)
    assert mid.explore_s == pytest.approx(2000 - 78 - depth)
    assert mid.explore_s >= MIN_EXPLORE_TRIALS / 2 * (5 + MIN_EXPLORE_EPOCHS * 19)
    # 30 minutes: the 8 trials would fit beside the final models (1722 - 1259 s), but the budget holds fewer than 3
    # whole-machine trainings of 45 epochs: the prior alone goes deeper than 2 one-slot final models after exploring
    assert plan_job(1800, epoch_s=19, depth_epochs=45, **kw).explore_s == 0
    # 25 minutes with the same 45 epochs: what they leave does not hold the 8 trials, so no exploring
    assert plan_job(1500, epoch_s=19, depth_epochs=45, **kw).explore_s == 0
    # with the epoch of one model on the whole machine (both slots: 13 s), one model instead of two, longer, and
    # the ensemble's reserve for one model (30 + 1.2 * 0.01 * 1000 * 2 = 54 s)
    whole = plan_job(900, epoch_s=19, depth_epochs=30, machine_epoch_s=13, **kw)
    assert (whole.explore_s, whole.final_models, whole.final_slots, whole.ensemble_s) == (0, 1, 2, pytest.approx(54))
    assert whole.final_epochs == int((900 - 54 - 5) / (1.1 * 13 * 800 / 600)) == 44
    # not one epoch of a final model fits: exploring takes it all (size_to_budget then says no trial fits either)
    tiny = plan_job(30, epoch_s=19, depth_epochs=30, **kw)
    assert tiny.final_models == 0 and tiny.explore_s == pytest.approx(30 - 7.5)
