"""What the driver shows and remembers while trials run: the progress table and why trials failed.

Both are Tune callbacks running in the driver. Their state is saved with the experiment (``get_state``), so a
resumed search shows the trials finished before the interruption too.
"""

from __future__ import annotations

import math
import re
import sys
import time
from pathlib import Path
from typing import TextIO

from ray.tune import Callback

from salttune.leaderboard import FAILED, FINISHED, PRUNED
from salttune.search.space import SearchSpace

__all__ = ["ProgressTable", "FailureReasons", "error_line", "format_value"]


def error_line(text: str) -> str:
    """The exception line of a traceback (``NonFiniteLoss: loss became nan ...``), module path dropped."""
    lines = [ln.rstrip() for ln in str(text).splitlines() if ln.strip()]
    candidates = [ln for ln in lines if not ln[0].isspace() and re.match(r"^[\w.]+(: |$)", ln) and not ln.startswith(("Traceback", "ray::"))]
    line = candidates[-1] if candidates else (lines[-1].strip() if lines else "unknown error")
    name, sep, msg = line.partition(": ")
    if sep and re.fullmatch(r"[\w.]+", name):
        line = f"{name.rsplit('.', 1)[-1]}: {msg}"
    return line[:300]


def format_value(v) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.3g}" if (abs(v) < 1e-2 or abs(v) >= 1e3) and v != 0 else f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return "+".join(map(str, v))
    return str(v)


class FailureReasons(Callback):
    """Reads the reason of a trial that failed for good and hands it to the Optuna searcher."""

    def __init__(self, searcher):
        self.searcher = searcher  # the same object Tune drives (shared through Tune's pickles too)
        self.reasons: dict[str, str] = {}

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        text = ""
        if trial.error_file and Path(trial.error_file).is_file():
            text = Path(trial.error_file).read_text()
        reason = error_line(text) if text else "failed (no error text)"
        self.reasons[trial.trial_id] = reason
        self.searcher.fail(trial.trial_id, reason)

    def get_state(self) -> dict | None:
        return {"reasons": dict(self.reasons)} if self.reasons else None

    def set_state(self, state: dict) -> None:
        self.reasons = dict(state.get("reasons", {}))


class ProgressTable(Callback):
    """Prints a table of trials (state, epochs, best score, parameters) when something changes.

    A finished, pruned, failed or retried trial prints within ``pause`` seconds; other news (a trial
    started, new epochs) at most every ``interval`` seconds.
    """

    STATES = {"PENDING": "waiting", "RUNNING": "running", "PAUSED": "paused", "TERMINATED": FINISHED, "ERROR": FAILED}

    def __init__(self, space: SearchSpace, reasons: FailureReasons | None = None, interval: float = 30.0,
                 pause: float = 3.0, out: TextIO | None = None):
        self.space, self.reasons, self.interval, self.pause, self.out = space, reasons, interval, pause, out
        self.best: dict[str, float] = {}
        self.epochs: dict[str, int] = {}
        self.retries: dict[str, int] = {}
        self._dirty = self._changed = False
        self._last = 0.0
        self._t0 = time.monotonic()

    # Tune hooks ---------------------------------------------------------------------------------------
    def on_trial_start(self, iteration, trials, trial, **info):
        self._dirty = True

    def on_trial_result(self, iteration, trials, trial, result, **info):
        score, epoch = result.get(self.space.metric), result.get("epoch")
        if score is not None and not (isinstance(score, float) and math.isnan(score)):
            better = max if self.space.mode == "max" else min
            self.best[trial.trial_id] = better(self.best.get(trial.trial_id, score), score)
        if epoch is not None:
            self.epochs[trial.trial_id] = int(epoch)
        self._dirty = True

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._changed = True

    def on_trial_error(self, iteration, trials, trial, **info):
        self._changed = True

    def on_trial_recover(self, iteration, trials, trial, **info):
        self.retries[trial.trial_id] = self.retries.get(trial.trial_id, 0) + 1
        self._changed = True

    def on_step_end(self, iteration, trials, **info):
        since = time.monotonic() - self._last
        if (self._changed and since >= self.pause) or (self._dirty and since >= self.interval):
            self.print(trials)

    def on_experiment_end(self, trials, **info):
        if self._changed or self._dirty:
            self.print(trials)

    def get_state(self) -> dict | None:
        return {"best": dict(self.best), "epochs": dict(self.epochs), "retries": dict(self.retries)}

    def set_state(self, state: dict) -> None:
        self.best, self.epochs = dict(state.get("best", {})), dict(state.get("epochs", {}))
        self.retries = dict(state.get("retries", {}))

    # Table --------------------------------------------------------------------------------------------
    def state_of(self, trial) -> str:
        state = self.STATES.get(trial.status, trial.status.lower())
        if state == FINISHED and self.epochs.get(trial.trial_id, 0) < self.space.asha.max_t:
            state = PRUNED
        if state in ("running", "waiting") and self.retries.get(trial.trial_id):
            state = f"retry {self.retries[trial.trial_id]}"
        return state

    def render(self, trials: list) -> str:
        """The table as text (also used by the tests)."""
        sp = self.space
        rows = sorted(trials, key=lambda t: (t.config.get("optuna_trial", 1 << 30), t.trial_id))
        states = [self.state_of(t) for t in rows]
        counts = {s: sum(1 for x in states if x.split()[0] == s) for s in ("running", FINISHED, PRUNED, FAILED, "retry")}
        counts["running"] += counts.pop("retry")
        left = max(0, sp.trials - len(rows))
        scored = [(self.best[t.trial_id], t) for t in rows if t.trial_id in self.best]
        best = (max if sp.mode == "max" else min)(scored, key=lambda x: x[0], default=None)
        elapsed = time.monotonic() - self._t0
        head = (f"[{int(elapsed // 3600)}:{int(elapsed % 3600 // 60):02d}:{int(elapsed % 60):02d}] {sp.trials} trials: "
                + ", ".join(f"{n} {s}" for s, n in counts.items() if n) + (f", {left} to sample" if left else "")
                + (f" | best {sp.metric} {best[0]:.4f} (#{best[1].config.get('optuna_trial', '?')})" if best else ""))
        keys = [k for k in dict.fromkeys(k for t in rows for k in t.config if k != "optuna_trial")]
        cols = ["#", "state", "epoch", sp.metric] + keys
        table = []
        for t, state in zip(rows, states):
            reason = self.reasons.reasons.get(t.trial_id, "") if self.reasons else ""
            table.append([str(t.config.get("optuna_trial", "?")), state,
                          f"{self.epochs.get(t.trial_id, 0)}/{sp.asha.max_t}",
                          f"{self.best[t.trial_id]:.4f}" if t.trial_id in self.best else "-"]
                         + [format_value(t.config[k]) if k in t.config else "" for k in keys]
                         + ([reason] if reason else []))
        widths = [max(len(c), *(len(r[i]) for r in table)) if table else len(c) for i, c in enumerate(cols)]
        fmt = lambda cells: "  ".join(c.ljust(w) if i in (1,) or i >= 4 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
        lines = [head, "  " + fmt(cols)]
        for r in table:
            line = "  " + fmt(r[: len(cols)])
            lines.append(line + (f"  {r[len(cols)]}" if len(r) > len(cols) else ""))
        return "\n".join(lines)

    def print(self, trials: list) -> None:
        out = self.out or sys.stdout
        out.write(self.render(trials) + "\n\n")
        out.flush()
        self._last, self._dirty, self._changed = time.monotonic(), False, False
