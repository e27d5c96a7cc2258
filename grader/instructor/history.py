"""``OUT/history.jsonl``: one line per ``grader grade`` run, and ``grader diff`` between runs.

A line holds the run id, the time (UTC), the grader version, the rubric's digests, the selection
(``--only``, ``--changed``, ``--regrade-all``), who was graded, and for each of them the old and the
new score and status, the score of every test before and after, and the fingerprint of the
submission's bytes (what ``--changed`` compares). Lines are appended whole (one ``write`` of a line
opened in append mode), so an interrupted run cannot leave a half line that breaks the next read.
"""
from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..scoring.results import SubmissionResult

HISTORY = "history.jsonl"


def scan_records(out: Path) -> dict[str, tuple[Path, SubmissionResult]]:
    """Every stored result under ``out``: student id (as the record stores it) -> (folder, result).

    Folder names are not assumed to be the ids (they may be made safe); when two folders hold the
    same id, the most recently written one wins."""
    found: dict[str, tuple[Path, SubmissionResult, float]] = {}
    if not out.is_dir():
        return {}
    for rec in sorted(out.glob("*/record.json")):
        try:
            r = SubmissionResult.from_dict(json.loads(rec.read_text(encoding="utf-8")))
            mtime = rec.stat().st_mtime
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if r.student not in found or mtime > found[r.student][2]:
            found[r.student] = (rec.parent, r, mtime)
    return {k: (d, r) for k, (d, r, _m) in found.items()}


def test_scores(r: SubmissionResult | None) -> dict[str, float]:
    return {t.name: t.score for t in r.tests} if r is not None else {}


def new_run_id(now: datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


def append_run(out: Path, *, rubric, secret_id: str, selection: dict, graded: list[str],
               before: dict[str, SubmissionResult], after: dict[str, SubmissionResult],
               fingerprints: dict[str, str], version: str) -> dict:
    now = datetime.now(timezone.utc)
    students = {}
    for sid in graded:
        old, new = before.get(sid), after.get(sid)
        students[sid] = {
            "old": old.score if old else None, "new": new.score if new else None,
            "old_status": old.status if old else None, "new_status": new.status if new else None,
            "max_score": new.max_score if new else None,
            "old_tests": test_scores(old), "new_tests": test_scores(new),
            "fingerprint": fingerprints.get(sid, ""),
        }
    entry = {"run": new_run_id(now), "time": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
             "grader_version": version, "rubric_sha256": rubric.digest,
             "rubric_grading_sha256": rubric.grading_digest, "secret_id": secret_id,
             "selection": selection, "graded": list(graded), "students": students}
    line = json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n"
    fd = os.open(out / HISTORY, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)
    return entry


def load_runs(out: Path) -> list[dict]:
    path = out / HISTORY
    if not path.is_file():
        return []
    runs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            d = json.loads(line)
        except ValueError:
            continue  # a damaged line (written by hand, or a full disk) is skipped, not fatal
        if isinstance(d, dict) and "run" in d:
            runs.append(d)
    return runs


def last_fingerprints(runs: list[dict]) -> dict[str, str]:
    fp: dict[str, str] = {}
    for run in runs:
        for sid, s in run.get("students", {}).items():
            if s.get("fingerprint"):
                fp[sid] = s["fingerprint"]
    return fp


# --- diff ------------------------------------------------------------------------------------------

class DiffError(ValueError):
    pass


@dataclass(frozen=True)
class Change:
    student: str
    old: float | None
    new: float | None
    tests: tuple[tuple[str, float | None, float | None], ...]   #: (test, old, new) of the changed tests

    @property
    def delta(self) -> float:
        return round((self.new or 0.0) - (self.old or 0.0), 4)


def _find(runs: list[dict], ref: str) -> int:
    hits = [i for i, r in enumerate(runs) if r["run"] == ref] or [i for i, r in enumerate(runs) if r["run"].startswith(ref)]
    if len(hits) != 1:
        known = ", ".join(r["run"] for r in runs[-5:])
        raise DiffError(f"run {ref!r} {'is ambiguous' if hits else 'not found'} in {HISTORY}; recent runs: {known}")
    return hits[0]


def _state(runs: list[dict], upto: int) -> dict[str, tuple[float | None, dict]]:
    """Each student's (score, test scores) after run ``upto`` (index), from the latest run that graded it."""
    state: dict[str, tuple[float | None, dict]] = {}
    for run in runs[: upto + 1]:
        for sid, s in run.get("students", {}).items():
            state[sid] = (s.get("new"), s.get("new_tests", {}))
    return state


def diff(runs: list[dict], run_a: str | None = None, run_b: str | None = None) -> tuple[str, str, list[Change]]:
    """Students whose score changed: within one run (old -> new; the last run by default), or
    between the states after run A and after run B."""
    if not runs:
        raise DiffError(f"no {HISTORY} yet: run grader grade with --out first")
    if run_b is None:
        i = _find(runs, run_a) if run_a else len(runs) - 1
        run = runs[i]
        pairs = {sid: ((s.get("old"), s.get("old_tests", {})), (s.get("new"), s.get("new_tests", {})))
                 for sid, s in run.get("students", {}).items()}
        label_a, label_b = f"before {run['run']}", run["run"]
    else:
        if run_a is None:
            raise DiffError("--run B needs --run A before it")
        ia, ib = _find(runs, run_a), _find(runs, run_b)
        sa, sb = _state(runs, ia), _state(runs, ib)
        pairs = {sid: (sa.get(sid, (None, {})), sb.get(sid, (None, {}))) for sid in set(sa) | set(sb)}
        label_a, label_b = runs[ia]["run"], runs[ib]["run"]
    changes = []
    for sid in sorted(pairs):
        (old, old_t), (new, new_t) = pairs[sid]
        tests = tuple((n, old_t.get(n), new_t.get(n)) for n in sorted(set(old_t) | set(new_t))
                      if old_t.get(n) != new_t.get(n)) if old_t and new_t else ()  # a first grading: no list
        if old != new or tests:
            changes.append(Change(sid, old, new, tests))
    return label_a, label_b, changes


def render_diff(label_a: str, label_b: str, changes: list[Change]) -> str:
    from ..intake.discover import shown  # ids come from file names: no escape sequence reaches a terminal

    fmt = (lambda x: "-" if x is None else f"{x:g}")
    lines = [f"{label_a} -> {label_b}: {len(changes)} student(s) changed"]
    for c in changes:
        lines.append(f"{shown(c.student)}: {fmt(c.old)} -> {fmt(c.new)} ({c.delta:+g})")
        for name, a, b in c.tests:
            lines.append(f"    {name}: {fmt(a)} -> {fmt(b)}")
    return "\n".join(lines) + "\n"
