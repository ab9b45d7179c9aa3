"""Search algorithms: one name -> factory of (searcher, scheduler). Importing this module imports no Ray.

The space file's ``algorithm:`` key names an entry (validated against ``ALGORITHMS`` at the edge); a new
algorithm (BOHB-style, DEHB, GP) is one new entry here plus its test.
"""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["ALGORITHMS", "DEFAULT_ALGORITHM"]

DEFAULT_ALGORITHM = "tpe+asha"


def _todo(*args: Any, **kwargs: Any):  # filled in by the search-algorithm seam
    raise NotImplementedError


# name -> factory(space, local_dir) -> (searcher, scheduler)
ALGORITHMS: dict[str, Callable[..., tuple[Any, Any]]] = {"tpe+asha": _todo, "random": _todo, "random+asha": _todo}
