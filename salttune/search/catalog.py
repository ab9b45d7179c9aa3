"""The search algorithms, declared: one name -> :class:`Algorithm` (which sampler, which scheduler, their options).

The space file's ``algorithm:`` key names an entry; :mod:`salttune.search.space` validates it against
:data:`ALGORITHMS` at the edge, :mod:`salttune.search.budget` and ``--resume`` ask an entry whether ASHA stops its
trials, and :func:`salttune.search.algorithms.build_algorithm` turns the entry into Tune's searcher and scheduler.
The entries are plain data, so this module imports nothing: the space reads the names without importing the
builders (which import the space).

Every searcher is :class:`salttune.search.sampler.PruneAwareOptunaSearch` with some Optuna sampler, so the study
in ``optuna.db`` and the leaderboard look the same whatever the algorithm; only the sampler and the scheduler
change. A new algorithm is one entry here plus its test in ``tests/search/test_algorithms.py`` (and, for a new
kind of sampler, its builder in :data:`salttune.search.algorithms.SAMPLERS`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = ["Algorithm", "ALGORITHMS", "DEFAULT_ALGORITHM", "SCHEDULERS"]

SCHEDULERS = ("asha", "fifo")  # ASHA stops the weak at its rungs; FIFO runs every trial to asha.max_t


@dataclass(frozen=True)
class Algorithm:
    """One search algorithm: an Optuna sampler proposes, a Tune scheduler stops.

    Args:
        sampler: a key of :data:`salttune.search.algorithms.SAMPLERS` (``tpe``, ``random``, ``rung_tpe``).
        scheduler: ``asha`` (the space's ``asha:`` settings, its state kept in ``asha_state.json``) or ``fifo``.
        brackets: ASHA's brackets (1: ASHA; more: asynchronous Hyperband).
        options: keyword arguments of the sampler's builder (for TPE, those of Optuna's ``TPESampler``).
        doc: one line for ``--help`` and the reader.
    """

    sampler: str
    scheduler: str
    brackets: int = 1
    options: Mapping[str, Any] = field(default_factory=dict)
    doc: str = ""

    def __post_init__(self):
        if self.scheduler not in SCHEDULERS or self.brackets < 1 or (self.brackets > 1 and self.scheduler != "asha"):
            raise ValueError(f"scheduler {self.scheduler!r} ({' | '.join(SCHEDULERS)}), brackets {self.brackets} "
                             "(at least 1; more only with asha)")

    @property
    def stops_early(self) -> bool:
        """ASHA may stop its trials before ``asha.max_t`` (and keeps ``asha_state.json``, which ``--resume`` checks)."""
        return self.scheduler == "asha"


DEFAULT_ALGORITHM = "tpe+asha"

ALGORITHMS: dict[str, Algorithm] = {
    "tpe+asha": Algorithm("tpe", "asha", doc="Optuna's TPE (after startup_trials random trials) proposes, ASHA stops the "
                          "weak at its rungs; both compare trials by their best score so far, and TPE learns failed "
                          "trials as the worst"),
    "random": Algorithm("random", "fifo", doc="seeded random sampling, no early stopping: every trial runs asha.max_t "
                        "epochs (the baseline)"),
    "random+asha": Algorithm("random", "asha", doc="seeded random sampling, the same ASHA as tpe+asha (what early "
                             "stopping alone is worth)"),
    "bohb": Algorithm("rung_tpe", "asha", doc="TPE fitted, as BOHB's model is, on the highest ASHA rung that enough "
                      "trials have reached (salttune.search.rung_tpe); the same ASHA stops the weak"),
}
