"""The instructor layer around ``grade_batch``: checked before grading, applied after it.

``prepare`` runs before anything is graded and refuses bad input with a usage error (an override or
extension naming an unknown student, an unknown component, a bad submission-times file, ``--only``
naming a student who is not in the folder); it also builds the selection for ``--only``,
``--only-file``, ``--changed`` and ``--regrade-all`` and snapshots the stored results. ``finish``
appends the run to ``history.jsonl`` and assembles the gradebook, the feedback and results.json from
the stored records.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .. import __version__
from ..intake import Submission, discover
from ..scoring.results import SubmissionResult
from . import history
from .assemble import Columns, compute_rows, feedback_section
from .late import LateError, LatePolicy, collect_times, load_extensions
from .overrides import Override, OverrideError, load_overrides, validate


class InstructorError(ValueError):
    """Bad instructor input (exit status 2); the message names the file and the entry."""


@dataclass
class Context:
    out: Path
    rubric: object
    subs: list[Submission]
    root: Path | None                               #: folder the submissions' sources are in
    overrides: list[Override] = field(default_factory=list)
    overrides_path: Path | None = None
    times_csv: str | None = None
    before: dict[str, SubmissionResult] = field(default_factory=dict)
    selection: dict = field(default_factory=dict)
    regrade: Callable[[Submission], bool] | None = None


def split_only(text: str, known: set[str]) -> set[str]:
    """``--only`` ids: comma-separated, but an id that holds commas (``Ivanova, Anna``) is matched
    whole: the longest run of comma-separated pieces that is a known id is taken as one."""
    import unicodedata

    parts = unicodedata.normalize("NFC", text).split(",")
    out, i = set(), 0
    while i < len(parts):
        for j in range(len(parts), i, -1):
            cand = ",".join(parts[i:j]).strip()
            if j == i + 1 or cand in known:
                if cand:
                    out.add(cand)
                i = j
                break
    return out


def _ids(args, known: set[str] = frozenset()) -> set[str] | None:
    ids: set[str] = set()
    if getattr(args, "only", None):
        ids |= split_only(args.only, known)
    if getattr(args, "only_file", None):
        try:
            text = Path(args.only_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise InstructorError(f"cannot read --only-file {args.only_file}: {exc}") from None
        ids |= {ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")}
    if (getattr(args, "only", None) or getattr(args, "only_file", None)) and not ids:
        raise InstructorError("--only/--only-file name no student")
    return ids or None


def _selection(args, ctx: Context, opts) -> None:
    from ..batch.keys import fingerprint, job_key
    from ..batch.runner import load_done
    from .late import did_you_mean

    known = {s.student for s in ctx.subs}
    ids = _ids(args, known)
    for sid in sorted(ids or ()):
        if sid not in known:
            raise InstructorError(f"--only: no submission of student {sid!r}{did_you_mean(sid, known)}")
    changed = bool(getattr(args, "changed", False))
    everything = bool(getattr(args, "regrade_all", False))
    ctx.selection = {"only": sorted(ids or ()), "changed": changed, "regrade_all": everything}
    if everything:
        ctx.regrade = regrade_everyone
    elif ids or changed:
        last = history.last_fingerprints(history.load_runs(ctx.out))

        def bytes_changed(sub: Submission) -> bool:
            if sub.student in last:
                return fingerprint(sub) != last[sub.student]
            return load_done(ctx.out, sub, job_key(sub, opts)) is None  # no history: stale or missing

        ctx.regrade = lambda sub: (sub.student in (ids or ())) or (changed and bytes_changed(sub))


def regrade_everyone(sub: Submission) -> bool:
    """--regrade-all: every row graded now (so the options may differ from the stored run's)."""
    return True


def prepare(args, out: Path, opts) -> Context:
    """Validate the instructor's files against the submissions and build the selection."""
    rubric = opts.rubric
    subs, _warnings = discover(args.submissions)
    path = Path(args.submissions)
    root = path.parent if len(subs) == 1 and subs[0].path == path else path
    ctx = Context(out, rubric, subs, root, times_csv=getattr(args, "submission_times", None))
    ov = getattr(args, "overrides", None)
    ctx.overrides_path = Path(ov) if ov else (out / "overrides.toml" if (out / "overrides.toml").is_file() else None)
    from ..pipeline import plan

    maxima: dict[str, float] = {}
    for p in plan(rubric, public_only=opts.public_only, mnist=opts.mnist):
        maxima[p.component] = round(maxima.get(p.component, 0.0) + p.max_score, 4)
    students = {s.student: s.meta.get("source") or s.path.name for s in subs}  # the entry given, not a staged copy
    try:
        ctx.overrides = load_overrides(ctx.overrides_path)
        validate(ctx.overrides, set(students), maxima, source=str(ctx.overrides_path))
        if rubric.late is not None:
            load_extensions(rubric.late, set(students))
            collect_times(students, root=root, policy=rubric.late, csv_path=ctx.times_csv)
        elif ctx.times_csv:
            raise InstructorError("--submission-times needs a [late] table in the rubric")
    except (OverrideError, LateError) as exc:
        raise InstructorError(str(exc)) from None
    ctx.before = {sid: r for sid, (_d, r) in history.scan_records(out).items()}
    _selection(args, ctx, opts)
    return ctx


def finish(ctx: Context, outcome, opts) -> list[str]:
    """History line, then the gradebook, feedback.md and results.json assembled from the records."""
    from ..batch.keys import fingerprint
    from ..report import render_feedback, render_gradebook, write_atomic, write_json

    results = outcome.results
    after = {r.student: r for r in results}
    subs = {s.student: s for s in ctx.subs}
    prints = {sid: fingerprint(subs[sid]) for sid in outcome.graded if sid in subs}
    history.append_run(ctx.out, rubric=ctx.rubric, secret_id=hashlib.sha256(opts.secret.encode()).hexdigest()[:12],
                       selection=ctx.selection, graded=outcome.graded, before=ctx.before, after=after,
                       fingerprints=prints, version=__version__)
    policy: LatePolicy | None = ctx.rubric.late
    warnings: list[str] = []
    handed, extensions = {}, {}
    if policy is not None:
        sources = {r.student: (subs[r.student].meta.get("source") if r.student in subs else None) or r.source
                   for r in results}  # the entry given (a student's folder), not the notebook in it or a staged copy
        ts = collect_times(sources, root=ctx.root, policy=policy, csv_path=ctx.times_csv)
        handed, warnings = ts.by_student, ts.warnings
        extensions = load_extensions(policy, set(sources))
    rows = compute_rows(results, ctx.overrides, policy, handed, extensions)
    warnings += [f"{sid!r}: {n}" for sid, row in sorted(rows.items()) for n in row.adjusted.notes]
    if ctx.overrides or policy is not None:
        cols = Columns(rows, overrides=bool(ctx.overrides), late=policy is not None)
        write_atomic(ctx.out / "gradebook.csv", render_gradebook(results, extra=cols))
    folders = history.scan_records(ctx.out)
    for r in results:
        folder = folders.get(r.student, (None,))[0]
        if folder is None:
            continue
        _write_if_changed(folder / "feedback.md", render_feedback(r) + feedback_section(r, rows[r.student], policy),
                          write_atomic)
        doc = r.to_gradescope(presentation=ctx.rubric.presentation)
        _write_if_changed(folder / "results.json", doc, write_json)
    return warnings


def _write_if_changed(path: Path, content, writer) -> None:
    import json

    try:
        old = path.read_text(encoding="utf-8")
        same = (json.loads(old) == content) if not isinstance(content, str) else old == content
    except (OSError, ValueError):
        same = False
    if not same:
        writer(path, content)
