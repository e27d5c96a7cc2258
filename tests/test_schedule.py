"""The batch starts the submissions known to be slow first (issue 22), and changes nothing else."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from grader.batch.schedule import known_seconds, slowest_first


def subs(*names):
    return [SimpleNamespace(student=n) for n in names]


def write_run(out: Path, per: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "run.json").write_text(json.dumps({"timings": {"per_submission": per}}), encoding="utf-8")


def test_slowest_known_first_unknown_at_the_median(tmp_path):
    write_run(tmp_path, {"fast": {"checks": 0.2, "MNIST-MLP": 0.5}, "slow": {"checks": 3.0, "MNIST-MLP": 9.0},
                         "mid": {"checks": 1.0}, "Ёжик": {"checks": 5.0}})
    order = [s.student for s in slowest_first(subs("fast", "new", "mid", "slow", "Ёжик"), tmp_path)]
    # known: slow 12 s, Ёжик 5, mid 1, fast 0.7; "new" is placed at their median, 3 s
    assert order == ["slow", "Ёжик", "new", "mid", "fast"]


def test_no_previous_run_keeps_the_intake_order(tmp_path):
    names = ["b", "a", "c"]
    assert [s.student for s in slowest_first(subs(*names), tmp_path)] == names


def test_unreadable_or_malformed_run_record_keeps_the_order(tmp_path):
    (tmp_path / "run.json").write_text("{not json", encoding="utf-8")
    assert [s.student for s in slowest_first(subs("b", "a"), tmp_path)] == ["b", "a"]
    write_run(tmp_path, {"a": "fast", "b": {"checks": "x", "MNIST-MLP": -1}})
    assert known_seconds(tmp_path) == {}
    assert [s.student for s in slowest_first(subs("b", "a"), tmp_path)] == ["b", "a"]
