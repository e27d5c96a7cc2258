"""The order in which a batch grades its submissions: the slowest known first (issue 22).

With ``--jobs N`` the batch ends when its last submission does. A slow one started last (an einsum
solution, one that runs into its time budget) leaves every other core idle while it finishes, so
submissions whose earlier grading in the same output folder took long are started first. What is
known comes from the ``run.json`` a previous run left there (``timings.per_submission``); a
submission it does not know is placed as if it took the median known time. Without a previous run
the order is the intake's. Only the start order changes: results, reports and the gradebook's
row order are not affected.
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Sequence, TypeVar

T = TypeVar("T")


def known_seconds(out: Path) -> dict[str, float]:
    """Student id -> seconds its grading took in the previous run written to ``out`` (may be empty)."""
    try:
        record = json.loads((Path(out) / "run.json").read_text())
        per = record["timings"]["per_submission"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    seconds: dict[str, float] = {}
    if not isinstance(per, dict):
        return seconds
    for student, parts in per.items():
        if isinstance(parts, dict):
            vals = [v for v in parts.values() if type(v) in (int, float) and v >= 0]
            if vals:
                seconds[str(student)] = float(sum(vals))
    return seconds


def slowest_first(todo: Sequence[T], out: Path, *, student=lambda s: s.student) -> list[T]:
    """``todo`` with the submissions known to be slow first (a stable sort: ties keep their order)."""
    seconds = known_seconds(out)
    if not seconds:
        return list(todo)
    typical = statistics.median(seconds.values())
    return sorted(todo, key=lambda s: -seconds.get(student(s), typical))
