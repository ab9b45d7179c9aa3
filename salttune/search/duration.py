"""Durations as a user writes them: ``5400`` (seconds), ``90s``, ``45m``, ``2h``, ``1h30m``.

Read by the space file's ``time_budget:`` and ``salttune search --time-budget``; printed back in the same forms.
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = ["FORMS", "parse_duration", "format_duration"]

FORMS = "give seconds (5400) or a duration such as 90s, 45m, 2h, 1h30m"
_DURATION = re.compile(r"(?:(\d+(?:\.\d*)?)h)?(?:(\d+(?:\.\d*)?)m)?(?:(\d+(?:\.\d*)?)s)?")


def parse_duration(value: Any) -> float:
    """Seconds from a number of seconds or a text such as ``90s``, ``45m``, ``2h``, ``1h30m`` (``h``, ``m``, ``s`` in
    that order, each at most once; a bare number is seconds).

    Raises:
        ValueError: one phrase naming the value and the forms allowed (:data:`FORMS`); the caller names the key.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip().lower().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            m = _DURATION.fullmatch(text)
            if m is None or not any(m.groups()):
                raise ValueError(f"{value!r} is not a duration; {FORMS}") from None
            h, mi, s = (float(g) if g else 0.0 for g in m.groups())
            seconds = 3600 * h + 60 * mi + s
    else:
        raise ValueError(f"{value!r} is not a duration; {FORMS}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{value!r} is not a positive duration; {FORMS}")
    return seconds


def format_duration(seconds: float) -> str:
    """``7200`` -> ``2h``, ``5400`` -> ``1h30m``, ``40`` -> ``40s``, ``95.5`` -> ``1m36s`` (whole seconds past a minute) (what :func:`parse_duration` reads back)."""
    seconds = round(seconds, 1) if seconds < 60 else round(seconds)  # a planned share reads 2m31s, not 2m30.7847s
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    parts = [f"{int(h)}h" if h else "", f"{int(m)}m" if m else "", f"{s:g}s" if s else ""]
    return "".join(parts) or "0s"
