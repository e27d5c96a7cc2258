"""``grade_batch``: grade a folder, write every report, resume after an interruption.

Resume: each student's folder gets ``results.json`` and ``feedback.md`` first and a ``.grading-key``
last, all atomically. The key hashes the submission's bytes, the rubric, the secret, the options and
the grader version, so a submission is skipped only when it would be graded exactly the same way.
The gradebook and summary are rebuilt from the per-student results at the end, never appended to, so
an interrupted run can leave neither a half-written file nor a duplicate row.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets as pysecrets
import sys
import time
from concurrent.futures import as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from .. import __version__
from ..intake import Submission, discover
from ..intake.discover import STUDENT_FILES
from ..pipeline import GradeOptions, grade_submission, plan, reference_mnist
from ..report import render_feedback, render_gradebook, render_summary, write_atomic, write_json
from ..scoring import SubmissionResult
from .executor import make_executor

KEY_FILE = ".grading-key"


@dataclass
class BatchOutcome:
    results: list[SubmissionResult]
    skipped: int = 0
    warnings: list[str] = field(default_factory=list)
    record: dict = field(default_factory=dict)
    out: Path | None = None
    graded: list[str] = field(default_factory=list)  #: the students graded by this run (not resumed)


FULL_HASH_LIMIT = 1 << 30  # bytes; larger files (refused by intake anyway) are keyed by size, mtime, head, tail


def _hash_file(h, p: Path) -> None:
    """Stream a file into ``h`` in chunks, never holding it in memory (a 1 TB sparse file is cheap
    to make and must not take the batch down)."""
    st = p.stat()
    h.update(f"{st.st_size}:".encode())
    with open(p, "rb") as fh:
        if st.st_size <= FULL_HASH_LIMIT:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        else:
            h.update(f"{st.st_mtime_ns}:".encode() + fh.read(1 << 20))
            fh.seek(-(1 << 20), os.SEEK_END)
            h.update(fh.read(1 << 20))


def fingerprint(sub: Submission) -> str:
    """sha256 of the bytes that can influence grading of this submission."""
    h = hashlib.sha256(sub.kind.encode())
    paths = ([base / name for base in (sub.path, sub.path / "assignment") for name in STUDENT_FILES]
             if sub.kind == "dir" else [sub.path])
    for p in paths:
        h.update(str(p.relative_to(sub.path.parent)).encode() + b"\x00")
        try:
            if p.is_symlink():
                h.update(b"<link>" + os.readlink(p).encode())
            elif p.is_file():
                _hash_file(h, p)
        except OSError as exc:
            h.update(repr(exc).encode())
    return h.hexdigest()


def job_key(sub: Submission, opts: GradeOptions) -> str:
    parts = [fingerprint(sub), sub.student, opts.rubric.grading_digest or opts.rubric.digest, opts.secret, __version__,
             str(opts.public_only), str(opts.mnist), str(opts.sandbox)]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def grade_job(sub: Submission, opts: GradeOptions) -> dict:
    """The unit of work an executor runs: plain data in, plain JSON data out."""
    return grade_submission(sub, opts).to_dict()


def _load_done(out: Path, sub: Submission, key: str | None) -> SubmissionResult | None:
    """The stored result of ``sub`` if it was graded under ``key`` (None: whatever its key)."""
    d = out / sub.student
    try:
        if key is not None and (d / KEY_FILE).read_text().strip() != key:
            return None
        return SubmissionResult.from_dict(json.loads((d / "record.json").read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_student(out: Path, r: SubmissionResult, key: str, *, presentation=None) -> None:
    d = out / r.student
    write_json(d / "record.json", r.to_dict())  # the full result: a resumed run rebuilds reports from it
    write_json(d / "results.json", r.to_gradescope(presentation=presentation))
    write_atomic(d / "feedback.md", render_feedback(r))
    write_atomic(d / KEY_FILE, key + "\n")  # last: its presence means the folder is complete


def resolve_secret(out: Path, secret: str | None) -> tuple[str, str]:
    """The run's secret: given, else from the environment, else the one of a previous run in ``out``
    (so the same command resumes), else a new random one. Returns (secret, where it came from)."""
    if secret:
        return secret, "--secret"
    if os.environ.get("GRADER_SECRET"):
        return os.environ["GRADER_SECRET"], "GRADER_SECRET"
    try:
        prev = json.loads((out / "run.json").read_text())
        if prev.get("secret"):
            return prev["secret"], f"reused from {out / 'run.json'}"
    except (OSError, ValueError):
        pass
    return pysecrets.token_hex(16), "generated (recorded in run.json)"


def grade_batch(path: str | Path, out: str | Path, opts: GradeOptions, *, jobs: int = 1,
                progress: Callable[[int, int, SubmissionResult, bool], None] | None = None,
                executor=None, regrade: Callable[[Submission], bool] | None = None) -> BatchOutcome:
    """``regrade`` (``--only``, ``--changed``, issue 19): grade exactly the submissions it selects and
    keep the stored result of every other one, whatever its key (graded anyway if it has none)."""
    subs, warnings = discover(path)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if opts.mnist and not opts.public_only and not opts.reference_mnist:
        opts = replace(opts, reference_mnist=reference_mnist(opts.secret, opts.data_root))
    ref_seconds = time.perf_counter() - t0
    results: dict[str, SubmissionResult] = {}
    todo = []
    keys = {}
    for sub in subs:
        keys[sub.student] = key = job_key(sub, opts)
        if regrade is None:
            done = _load_done(out, sub, key)
        else:
            done = None if regrade(sub) else _load_done(out, sub, None)
        if done is not None:
            results[sub.student] = done
        else:
            todo.append(sub)
    skipped = len(results)
    total = len(subs)
    for s in subs:
        if s.student in results and progress:
            progress(len(results), total, results[s.student], True)
    ex = executor or make_executor(min(jobs, max(len(todo), 1)))
    t1 = time.perf_counter()
    try:
        futures = {ex.submit(grade_job, sub, opts): sub for sub in todo}
        for fut in as_completed(futures):
            sub = futures[fut]
            try:
                r = SubmissionResult.from_dict(fut.result())
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # a pool process died: record it, go on
                r = grade_submission_failed(sub, opts, f"grading process failed: {exc!r}")
            write_student(out, r, keys[sub.student], presentation=opts.rubric.presentation)
            results[sub.student] = r
            if progress:
                progress(len(results), total, r, False)
    finally:
        if executor is None:
            ex.shutdown(wait=True, cancel_futures=True)
    ordered = [results[s.student] for s in subs]
    rubric = opts.rubric
    planned = plan(rubric, public_only=opts.public_only, mnist=opts.mnist)
    max_score = round(sum(p.max_score for p in planned), 4)
    write_atomic(out / "gradebook.csv", render_gradebook(ordered))
    write_atomic(out / "summary.md", render_summary(ordered, max_score))
    isolation = next((r.isolation for r in ordered if r.isolation and r.status != "rejected"), {})
    record = {
        "grader_version": __version__,
        "secret": opts.secret,
        "secret_id": hashlib.sha256(opts.secret.encode()).hexdigest()[:12],
        "rubric": {"name": rubric.name, "source": rubric.source, "sha256": rubric.digest, "total": rubric.total,
                   "public_share": rubric.public_share, "checks": rubric.checks,
                   "mnist": {k: v.__dict__ for k, v in rubric.mnist.items()}},
        "options": {"public_only": opts.public_only, "mnist": opts.mnist, "sandbox": opts.sandbox, "jobs": jobs},
        "isolation": isolation,
        "reference_mnist": opts.reference_mnist,
        "submissions": total, "graded_now": total - skipped, "skipped_as_already_graded": skipped,
        "warnings": warnings,
        "timings": {"reference_mnist": round(ref_seconds, 3), "grading": round(time.perf_counter() - t1, 3),
                    "per_submission": {r.student: r.timings for r in ordered}},
        "python": sys.version.split()[0],
    }
    write_json(out / "run.json", record)
    return BatchOutcome(ordered, skipped, warnings, record, out, graded=[s.student for s in todo])


def grade_submission_failed(sub: Submission, opts: GradeOptions, reason: str) -> SubmissionResult:
    from ..pipeline import _zero

    planned = plan(opts.rubric, public_only=opts.public_only, mnist=opts.mnist)
    return SubmissionResult(sub.student, "error", reason, [_zero(p, f"Not graded: {reason}") for p in planned],
                            source=sub.path.name)
