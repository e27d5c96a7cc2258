"""``grade_batch``: grade a folder, write every report, resume after an interruption.

Failure boundary (issue 21): everything done for one submission (keying, grading, cleaning its
text, rendering and writing its reports) happens inside :func:`_grade_all` / :func:`_finish`, which
never raise for one submission's sake; the worst a submission can cost is its own row. A failure of
the grader's own machinery (a grading process that died, memory running out in it, a bug of the
grader) is retried once in a fresh process and otherwise recorded with status ``infra``, which a
resumed run grades again instead of keeping.

Resume: each student's folder gets ``results.json`` and ``feedback.md`` first and a ``.grading-key``
last, all atomically. The key hashes the submission's bytes, the rubric, the secret, the options, the
assignment spec and the grader version, so a submission is skipped only when it would be graded
exactly the same way (a run over the results of another spec says so in a warning).
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
from typing import Callable, Iterator

from .. import __version__
from ..intake import Submission, UsageError, collect
from ..intake.discover import cap_id, folder_name, student_id
from ..intake.roster import Match, RosterSpec, load_roster, match as match_roster
from ..pipeline import GradeOptions, grade_submission, plan, reference_mnist, zero_test
from ..report import render_feedback, render_gradebook, render_summary, sweep_leftovers, write_atomic, write_json
from ..report.text import clean_name, clean_text, clean_tree, hash_bytes
from ..scoring import SubmissionResult
from ..scoring.results import FINAL_STATUSES
from .executor import InlineExecutor, run_fresh, run_isolated
from ..report.html import write_report_safely
from .shard import clear_stale_manifest, select, write_manifest
from .schedule import slowest_first
from .keys import safe_key

KEY_FILE = ".grading-key"


@dataclass
class BatchOutcome:
    results: list[SubmissionResult]
    skipped: int = 0
    warnings: list[str] = field(default_factory=list)
    record: dict = field(default_factory=dict)
    out: Path | None = None
    graded: list[str] = field(default_factory=list)  #: the students graded by this run (not resumed)


def grade_job(sub: Submission, opts: GradeOptions) -> dict:
    """The unit of work an executor runs: plain data in, plain JSON data out."""
    return grade_submission(sub, opts).to_dict()


def _needs_retry(value, exc) -> bool:
    """Whether an outcome is the grader's failure rather than a verdict (then it is retried once)."""
    return exc is not None or not isinstance(value, dict) or value.get("status") == "infra"


def _infra(sub: Submission, opts: GradeOptions, exc: BaseException | None, value, attempts: int) -> SubmissionResult:
    if isinstance(value, dict):  # the job ran and reported the grader's own failure: keep its record
        try:
            r = SubmissionResult.from_dict(value)
            r.attempts = attempts
            if attempts > 1:
                r.reason = f"{r.reason} (retried once in a fresh process; failed again)"
            return r
        except Exception:
            pass
    what = f"{type(exc).__name__}: {str(exc)[:200]}" if exc is not None else "no result"
    reason = (f"the grading process failed ({what}){' twice' if attempts > 1 else ''}; this is not a verdict "
              "on the submission, and a resumed run grades it again")
    r = grade_submission_failed(sub, opts, reason, status="infra")
    r.attempts = attempts
    return r


def _grade_all(todo: list[Submission], opts: GradeOptions, jobs: int, executor) -> Iterator[tuple[Submission, SubmissionResult]]:
    """Grade ``todo`` and yield (submission, result) as each finishes; never raises for one of them.

    Locally every grading process has a pool of its own (``run_isolated``); with ``--jobs 1`` the
    first attempt runs in this process. A retry always runs in a brand-new process."""
    def outcome(sub, value, exc, attempts) -> SubmissionResult:
        if _needs_retry(value, exc):
            return _infra(sub, opts, exc, value, attempts)
        r = SubmissionResult.from_dict(value)
        r.attempts = attempts
        return r

    if executor is None and jobs > 1:
        tasks = [(sub, (sub, opts)) for sub in todo]
        for sub, value, exc, attempt in run_isolated(grade_job, tasks, jobs, retry=_needs_retry):
            yield sub, outcome(sub, value, exc, attempt)
        return
    ex = executor or InlineExecutor()
    futures = {}
    for sub in todo:
        try:
            futures[ex.submit(grade_job, sub, opts)] = sub
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # InlineExecutor: the job itself raised (MemoryError, ...)
            value, exc2 = run_fresh(grade_job, sub, opts)
            yield sub, outcome(sub, value, exc2, 2)
    for fut in as_completed(futures):
        sub = futures[fut]
        value, exc = None, None
        try:
            value = fut.result()
        except KeyboardInterrupt:
            raise
        except BaseException as e:
            exc = e
        attempts = 1
        if _needs_retry(value, exc):
            value, exc = run_fresh(grade_job, sub, opts)
            attempts = 2
        yield sub, outcome(sub, value, exc, attempts)


#: Longest text kept of any one string of a result (a test's feedback is a few hundred characters).
TEXT_LIMIT = 20_000


def clean_result(r: SubmissionResult) -> SubmissionResult:
    """Every string of ``r`` encodable and bounded (the boundary of :mod:`grader.report.text`)."""
    d = clean_tree(r.to_dict(), TEXT_LIMIT)
    d["student"] = cap_id(clean_text(r.student))  # exact: the id the intake gave (discover.MAX_ID)
    d["source"] = clean_name(r.source)
    return SubmissionResult.from_dict(d)


def _finish(out: Path, sub: Submission, r: SubmissionResult, key: str, opts: GradeOptions,
            warnings: list[str]) -> SubmissionResult:
    """Clean ``r`` and write its reports; never raises. A result whose reports cannot be written
    (a full disk) still gets its gradebook row, and a warning says why its folder is incomplete."""
    try:
        r = clean_result(r)
    except Exception as exc:
        r = clean_result(grade_submission_failed(sub, opts, f"its result could not be cleaned "
                                                 f"({type(exc).__name__})", status="infra"))
    try:
        write_student(out, r, key, folder=sub.folder, presentation=opts.rubric.presentation)
    except Exception as exc:
        warnings.append(f"{clean_text(sub.student, 120)}: reports not written ({type(exc).__name__}: "
                        f"{clean_text(exc, 200)}); graded again on resume")
    return r


def load_done(out: Path, sub: Submission, key: str | None) -> SubmissionResult | None:
    """The stored result of ``sub`` if it was graded under ``key`` (None: whatever its key)."""
    d = out / sub.folder
    try:
        if key is not None and (d / KEY_FILE).read_text().strip() != key:
            return None
        r = SubmissionResult.from_dict(json.loads((d / "record.json").read_text()))
    except Exception:  # anything unreadable is simply graded again
        return None
    return r if r.status in FINAL_STATUSES else None  # an infra failure is never kept


def write_student(out: Path, r: SubmissionResult, key: str, folder: str | None = None, *, presentation=None) -> None:
    # never the raw id as a path: it may hold "/" or collide with another student's after normalisation
    d = out / (folder or r.intake.get("folder") or folder_name(r.student, set()))
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


def assignment_record(opts: GradeOptions) -> dict:
    """The assignment spec a run graded with: run.json's ``assignment``."""
    spec = opts.spec
    return {"name": spec.name, "path": str(spec.path), "sha256": spec.digest}


def spec_change_warning(out: Path, opts: GradeOptions) -> list[str]:
    """A warning when ``out`` holds a run graded with another assignment spec (or another version of
    it): the resume keys include the spec's digest, so every submission is graded again."""
    try:
        prev = json.loads((out / "run.json").read_text()).get("assignment")
    except (OSError, ValueError, AttributeError):
        return []
    now = assignment_record(opts)
    if not isinstance(prev, dict) or prev.get("sha256") == now["sha256"]:
        return []
    return [f"the assignment spec differs from the previous run's in {out} ({prev.get('name')!r}, {prev.get('path')}, "
            f"sha256 {str(prev.get('sha256'))[:12]} -> {now['name']!r}, {now['path']}, sha256 {now['sha256'][:12]}): "
            "every submission is graded again"]


def check_partial_regrade(out: Path, opts: GradeOptions, regrade) -> None:
    """``--only``/``--changed`` keep everyone else's stored rows: those new rows must be graded with
    the same tests (MNIST, public-only), or the gradebook would mix totals (65 for one, 100 for the
    rest) without a word. Refused with what to do instead."""
    if regrade is None or getattr(regrade, "__name__", "") == "regrade_everyone":
        return
    try:
        prev = json.loads((out / "run.json").read_text()).get("options") or {}
    except (OSError, ValueError, AttributeError):
        return
    now = {"mnist": opts.mnist, "public_only": opts.public_only}
    diff = [k for k in now if k in prev and bool(prev[k]) != now[k]]
    if diff:
        said = ", ".join(f"{k.replace('_', '-')} {'on' if prev[k] else 'off'} before, {'on' if now[k] else 'off'} now"
                         for k in diff)
        raise UsageError(f"{out} was graded with other tests ({said}): a partial regrade (--only, --changed) would "
                         "mix totals in one gradebook; use the same options as that run, add --regrade-all, or "
                         "write to another --out")


def grade_batch(path: str | Path, out: str | Path, opts: GradeOptions, *, jobs: int = 1,
                progress: Callable[[int, int, SubmissionResult, bool], None] | None = None,
                executor=None, layout: str = "auto", roster: RosterSpec | None = None,
                shard: tuple[int, int] | None = None, html_report: bool = True,
                regrade: Callable[[Submission], bool] | None = None) -> BatchOutcome:
    """``regrade`` (``--only``, ``--changed``, issue 19): grade exactly the submissions it selects and
    keep the stored result of every other one, whatever its key (graded anyway if it has none)."""
    out = Path(out)
    check_partial_regrade(out, opts, regrade)
    found, matched = intake_batch(path, out, layout, roster)
    subs, warnings = found.subs, found.warnings + matched.warnings + spec_change_warning(out, opts)
    out.mkdir(parents=True, exist_ok=True)
    sweep_leftovers(out)  # what a run killed mid-write left: its results are rewritten below
    everyone = subs
    clear_stale_manifest(out)  # written again at the end of a finished shard run (issue 18)
    if shard is not None:
        subs = select(subs, shard)
    t0 = time.perf_counter()
    if opts.mnist and not opts.public_only and not opts.reference_mnist:
        opts = replace(opts, reference_mnist=reference_mnist(opts.secret, opts.data_root))
    timings = {"reference_mnist": round(time.perf_counter() - t0, 3)}
    results, todo, keys = _resume(out, subs, opts, regrade, matched)
    todo = slowest_first(todo, out)  # from the previous run.json, if any: no core idles at the end
    skipped, total = len(results), len(subs)
    for s in subs:
        if s.student in results:
            _report_progress(progress, len(results), total, results[s.student], True)
    t1 = time.perf_counter()
    for sub, r in _grade_all(todo, opts, min(jobs, max(len(todo), 1)), executor):
        stamp(r, sub, matched)
        results[sub.student] = r = _finish(out, sub, r, keys[sub.student], opts, warnings)
        _report_progress(progress, len(results), total, r, False)
    warnings[:] = [clean_text(w, 1000) for w in warnings]
    planned = plan(opts.rubric, public_only=opts.public_only, mnist=opts.mnist)
    missing = missing_results(matched, planned, {s.folder.casefold() for s in subs})
    for r in missing:
        write_student(out, r, "missing", presentation=opts.rubric.presentation)
    ordered = [results[s.student] for s in subs] + missing
    accounting = reconcile(found, matched, ordered)
    max_score = round(sum(p.max_score for p in planned), 4)
    infra = [r.student for r in ordered if r.status == "infra"]
    if infra:
        warnings.append(f"{len(infra)} submission(s) not graded because the grader itself failed (status infra: "
                        f"{', '.join(infra[:5])}{' ...' if len(infra) > 5 else ''}); run the same command again "
                        "to grade them")
    write_atomic(out / "gradebook.csv", render_gradebook(ordered, roster=roster is not None))
    write_atomic(out / "summary.md", render_summary(ordered, max_score, reconciliation=accounting,
                                                    unmatched=matched.unmatched, missing=[r.student for r in missing]))
    timings["grading"] = round(time.perf_counter() - t1, 3)
    record = run_record(opts, ordered, jobs=jobs, skipped=skipped, warnings=warnings, accounting=accounting,
                        roster=roster, missing=missing, matched=matched, timings=timings)
    write_json(out / "run.json", record)
    if shard is not None:
        write_manifest(out, shard, subs, everyone, opts, max_score)
    if html_report:
        warnings += write_report_safely(out, ordered, record)
    return BatchOutcome(ordered, skipped, warnings, record, out, graded=[s.student for s in todo])


def _resume(out: Path, subs: list[Submission], opts: GradeOptions, regrade, matched: Match):
    """The stored results a run keeps (by student), the submissions it grades, and every job key."""
    results: dict[str, SubmissionResult] = {}
    todo, keys = [], {}
    for sub in subs:
        keys[sub.student] = key = safe_key(sub, opts)
        if regrade is None:
            done = load_done(out, sub, key)
        else:
            done = None if regrade(sub) else load_done(out, sub, None)
        if done is not None:
            results[sub.student] = stamp(done, sub, matched)
        else:
            todo.append(sub)
    return results, todo, keys


def run_record(opts: GradeOptions, ordered: list[SubmissionResult], *, jobs: int, skipped: int, warnings: list[str],
               accounting: dict, roster: RosterSpec | None, missing: list[SubmissionResult], matched: Match,
               timings: dict) -> dict:
    """``run.json``: how the run graded (secret, rubric, options, isolation) and what it found."""
    rubric, total = opts.rubric, len(ordered) - len(missing)
    return {
        "grader_version": __version__,
        "secret": opts.secret,
        "secret_id": hashlib.sha256(hash_bytes(opts.secret)).hexdigest()[:12],
        "hidden_cases": ({"scope": "per-student", "attempt": opts.attempt,
                          "derivation": "sha256('per-student-v1' NUL secret NUL student NUL attempt)"}
                         if opts.per_student_secret else {"scope": "run"}),
        "time_budget": opts.time_budget,
        "assignment": assignment_record(opts),
        "rubric": {"name": rubric.name, "source": rubric.source, "sha256": rubric.digest, "total": rubric.total,
                   "public_share": rubric.public_share, "checks": rubric.checks,
                   "mnist": {k: v.__dict__ for k, v in rubric.mnist.items()}},
        "options": {"public_only": opts.public_only, "mnist": opts.mnist, "sandbox": opts.sandbox, "jobs": jobs},
        "isolation": next((r.isolation for r in ordered if r.isolation and r.status != "rejected"), {}),
        "reference_mnist": opts.reference_mnist,
        "submissions": total, "graded_now": total - skipped, "skipped_as_already_graded": skipped,
        "infra_failures": [r.student for r in ordered if r.status == "infra"],
        "warnings": warnings,
        "reconciliation": accounting,
        "roster": None if roster is None else {"path": str(roster.path), "students": accounting["roster_students"],
                                               "missing": [r.student for r in missing], "unmatched": matched.unmatched},
        "timings": {**timings, "per_submission": {r.student: r.timings for r in ordered}},
        "python": sys.version.split()[0],
    }


def intake_batch(path, out: Path, layout: str, roster: RosterSpec | None):
    """The submissions (every entry accounted for) and, with a roster, who matched whom."""
    exclude = (out,) + ((Path(roster.path),) if roster else ())
    found = collect(path, layout=layout, exclude=exclude)
    matched = match_roster(load_roster(roster), found.subs) if roster else Match()
    return found, matched


def stamp(r: SubmissionResult, sub: Submission, matched: Match) -> SubmissionResult:
    """Record in the row where the submission came from, its folder, lateness and roster columns."""
    r.intake = sub.record()
    r.intake.pop("alt_id", None)
    if sub.student in matched.matched:
        r.intake["roster"] = matched.matched[sub.student]
    return r


def missing_results(matched: Match, planned, taken: set[str]) -> list[SubmissionResult]:
    """A ``missing`` row (every test 0) for each roster student nobody's submission matched."""
    out, ids = [], set()
    for row in matched.missing:
        sid = student_id(row["id"] or row["name"] or row["email"] or row["lms_id"])
        base, n = sid, 2
        while sid in ids:
            sid, n = f"{base} ({n})", n + 1
        ids.add(sid)
        reason = "no submission was found for this roster student"
        r = SubmissionResult(sid, "missing", reason, [zero_test(p, f"Not graded: {reason}") for p in planned])
        r.intake = {"folder": folder_name(sid, taken), "source": "", "layout": "roster", "roster": row,
                    "lms_id": row["lms_id"], "late": None}
        out.append(r)
    return out


def reconcile(found, matched: Match, rows: list[SubmissionResult]) -> dict:
    """Entries found = rows written: recorded in run.json and summary.md, printed by the CLI."""
    rec = found.reconciliation()
    missing = sum(r.status == "missing" for r in rows)
    rec.update(rows_written=len(rows), missing_from_roster=missing, unmatched=list(matched.unmatched),
               roster_students=matched.rows, rejected=sum(r.status == "rejected" for r in rows),
               status={s: sum(r.status == s for r in rows) for s in sorted({r.status for r in rows})})
    rec["balanced"] = rec["balanced"] and rec["rows_written"] == rec["submissions"] + missing
    return rec


def _report_progress(progress, done: int, total: int, r: SubmissionResult, skipped: bool) -> None:
    if progress is None:
        return
    try:
        progress(done, total, r, skipped)
    except (OSError, ValueError):  # a closed or odd terminal must not stop the batch
        pass


def grade_submission_failed(sub: Submission, opts: GradeOptions, reason: str, *, status: str = "error") -> SubmissionResult:
    planned = plan(opts.rubric, public_only=opts.public_only, mnist=opts.mnist)
    return SubmissionResult(sub.student, status, reason, [zero_test(p, f"Not graded: {reason}") for p in planned],
                            source=sub.path.name)
