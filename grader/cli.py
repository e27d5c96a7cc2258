"""The ``grader`` command: a thin layer of subcommands, each forwarding to one function.

Exit status (CONTRACT.md): 0 grading ran, 1 ``--fail-under`` not met (or ``validate`` found a
problem), 2 usage error, 3 internal failure of the grader, 130 interrupted.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

from . import __version__
from .intake.collect import grouped_text
from .spec import SpecError, activate, current_spec

EXIT_OK, EXIT_FAIL_UNDER, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def _emit(results, fmt: str, out: Path | None) -> None:
    from .report import github_annotations, github_summary, render_junit, render_text, write_atomic

    if fmt == "text":
        sys.stdout.write(render_text(results))
    elif fmt == "json":
        json.dump([r.to_gradescope(include_timing=False) for r in results], sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif fmt == "junit":
        xml = render_junit(results)
        if out is not None:
            write_atomic(out / "junit.xml", xml)
            print(f"wrote {out / 'junit.xml'}", file=sys.stderr)
        sys.stdout.write(xml)
    elif fmt == "classroom":
        from .instructor.classroom import emit

        emit(results, out)
    elif fmt == "github":
        summary = github_summary(results)
        path = os.environ.get("GITHUB_STEP_SUMMARY")
        if path:
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(summary)
        else:
            sys.stdout.write(summary)
        for line in github_annotations(results):
            print(line)


def _grade_options(args, out: Path):
    """The run's options and where its secret came from; a bad combination raises ``UsageError``
    before anything is graded."""
    from .batch.runner import resolve_secret
    from .intake import UsageError
    from .pipeline import GradeOptions
    from .scoring.rubric import RubricError, load_rubric

    if args.no_sandbox and not args.force_unsafe:
        raise UsageError("--no-sandbox runs submissions inside the grader process with no isolation. It is meant "
                         "for the instructor's own trusted code (the reference, benchmarks); add --force-unsafe if "
                         "that is what you are grading.")
    try:
        load_rubric(args.rubric)
    except RubricError as exc:
        raise UsageError(str(exc)) from None
    secret, origin = resolve_secret(out, args.secret)
    opts = GradeOptions(secret=secret, rubric_path=args.rubric, public_only=args.public_only,
                        sandbox=not args.no_sandbox, mnist=not args.no_mnist, time_budget=args.time_budget,
                        per_student_secret=args.per_student_secret, attempt=args.attempt or "")
    if args.time_budget <= 0 or (args.attempt and not args.per_student_secret):
        raise UsageError("--time-budget must be positive, and --attempt needs --per-student-secret")
    if opts.sandbox:
        from .sandbox.client import SandboxRefused, preflight

        try:
            preflight(opts.sandbox_config)
        except SandboxRefused as exc:
            raise UsageError(str(exc)) from None
    return opts, origin


def cmd_grade(args) -> int:
    from .batch import grade_batch
    from .batch.progress import progress_printer
    from .instructor.run import InstructorError, finish, prepare
    from .intake import UsageError

    out = Path(args.out)
    try:
        opts, origin = _grade_options(args, out)
        ctx = prepare(args, out, opts)  # overrides, late policy, --only: refused before grading (issue 19)
    except (InstructorError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not args.quiet:
        print(f"grader {__version__}: secret {origin}; writing to {out}", file=sys.stderr)
    try:
        with _scale_options(args) as (executor, shard):
            outcome = grade_batch(args.submissions, out, opts, jobs=args.jobs, executor=executor, shard=shard,
                                  progress=progress_printer(not args.quiet), layout=args.layout,
                                  roster=_roster_spec(args), regrade=ctx.regrade)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\ninterrupted: finished submissions are saved; run the same command again to resume.",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    outcome.warnings.extend(finish(ctx, outcome, opts))
    _announce(outcome, args, out)
    if args.fail_under is not None:
        low = [r for r in outcome.results if r.score < args.fail_under]
        if low:
            print(f"fail-under {args.fail_under:g}: {len(low)} submission(s) below", file=sys.stderr)
            return EXIT_FAIL_UNDER
    return EXIT_OK


def _announce(outcome, args, out: Path) -> None:
    """Warnings, the console format, the exports and the reconciliation of a finished run."""
    for w in outcome.warnings:
        print(f"warning: {w}", file=sys.stderr)
    _emit(outcome.results, args.format, out)
    _exports(outcome, args, out)
    _print_reconciliation(outcome.record.get("reconciliation", {}))
    if not args.quiet:
        print(f"wrote {out / 'gradebook.csv'}, {out / 'summary.md'}, {out / 'run.json'} and one folder per "
              f"student ({len(outcome.results)} submissions, {outcome.skipped} already graded)", file=sys.stderr)


def _roster_spec(args):
    from .intake.roster import RosterSpec

    if not getattr(args, "roster", None):
        return None
    return RosterSpec(args.roster, args.roster_id, args.roster_name, args.roster_email, args.roster_lms_id)


def _exports(outcome, args, out: Path) -> None:
    from .report import write_atomic
    from .report.export import FILES, render_export

    for kind in dict.fromkeys(getattr(args, "export", None) or ()):
        text, skipped = render_export(kind, outcome.results, assignment=args.export_assignment)
        write_atomic(out / FILES[kind], text)
        print(f"wrote {out / FILES[kind]} ({len(outcome.results) - len(skipped)} rows)", file=sys.stderr)
        if skipped:
            print(f"warning: {kind} export: {len(skipped)} row(s) left out, nothing identifies them to "
                  f"{kind} (give --roster with --roster-lms-id): " + ", ".join(skipped[:10]), file=sys.stderr)


def _print_reconciliation(rec: dict) -> None:
    """Always printed, --quiet or not: entries found = rows written is the first thing to check."""
    if not rec:
        return
    ignored = f", {len(rec['ignored'])} ignored ({', '.join(rec['ignored'][:5])})" if rec.get("ignored") else ""
    missing = f" + {rec['missing_from_roster']} missing from the roster" if rec.get("missing_from_roster") else ""
    ok = "every entry accounted for" if rec.get("balanced") else f"NOT BALANCED: {rec.get('unaccounted')}"
    print(f"reconciliation ({rec.get('layout')}): {rec.get('entries_found')} entries found{ignored} -> "
          f"{rec.get('submissions')} submissions ({rec.get('rejected')} rejected){missing} = "
          f"{rec.get('rows_written')} rows written; {ok}{grouped_text(rec)}", file=sys.stderr)


@contextlib.contextmanager
def _scale_options(args):
    """``--executor`` and ``--shard`` (issue 18): a bad value of either is a one-line usage error."""
    from .batch.dask_exec import ExecutorSpecError, open_executor
    from .batch.shard import ShardError, parse_shard
    from .intake import UsageError

    try:
        shard = parse_shard(args.shard) if args.shard else None
        stack = contextlib.ExitStack()
        executor = stack.enter_context(open_executor(args.executor, jobs=args.jobs, sandbox=not args.no_sandbox,
                                                       submissions=args.submissions))
    except (ExecutorSpecError, ShardError) as exc:
        raise UsageError(str(exc)) from None
    with stack:
        yield executor, shard


def cmd_merge(args) -> int:
    from .batch.shard import ShardError, merge
    from .report.html import write_report

    try:
        outcome = merge(args.out, args.shards)
    except ShardError as exc:
        for line in str(exc).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return EXIT_USAGE
    write_report(outcome.out, outcome.results, json.loads((outcome.out / "run.json").read_text()))
    print(f"merged {outcome.shards} shards ({len(outcome.results)} submissions) into {outcome.out}: gradebook.csv, "
          "summary.md, run.json, report.html and one folder per student", file=sys.stderr)
    _emit(outcome.results, args.format, outcome.out)
    return EXIT_OK


def cmd_report(args) -> int:
    from .report.html import write_report

    try:
        path = write_report(args.out)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"wrote {path}", file=sys.stderr)
    return EXIT_OK


def cmd_diff(args) -> int:
    from .instructor.history import DiffError, diff, load_runs, render_diff

    try:
        a, b, changes = diff(load_runs(Path(args.out)), *(args.run or [None])[:2])
    except DiffError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    sys.stdout.write(render_diff(a, b, changes))
    return EXIT_OK


def cmd_check(args) -> int:
    from .student import check_path

    return check_path(args.path, component=args.component, fmt=args.format)


def cmd_validate(args) -> int:
    from .validate import validate

    return validate(secret=args.secret, fixtures=args.fixtures, sandbox=args.sandbox, verbose=args.verbose)


def cmd_demo(args) -> int:
    args.submissions = str(Path(__file__).resolve().parent.parent / "data" / "examples")
    return cmd_grade(args)


def cmd_release(args) -> int:
    from .release import build_release

    path = build_release(Path(args.out))
    print(f"wrote the student release to {path}")
    return EXIT_OK


def cmd_gradescope(args) -> int:
    from .release import ReleaseError, build_gradescope_bundle
    from .scoring.rubric import RubricError

    try:
        path = build_gradescope_bundle(Path(args.out), rubric=args.rubric)
    except (ReleaseError, RubricError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"wrote the Gradescope autograder bundle {path}")
    return EXIT_OK


def _add_grade_options(p: argparse.ArgumentParser, *, demo: bool = False) -> None:
    p.add_argument("--out", default="grading-out" if not demo else "demo-out",
                   help="folder for gradebook.csv, run.json, summary.md and one folder per student")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="submissions graded in parallel (default: cores)")
    p.add_argument("--secret", help="secret the hidden cases are drawn from (default: $GRADER_SECRET, the previous "
                                    "run's in --out, or a new random one; always recorded in run.json)")
    p.add_argument("--rubric", help="rubric TOML file (default: the built-in one, 100 points)")
    p.add_argument("--format", choices=("text", "json", "junit", "github", "classroom"), default="text",
                   help="console output (classroom: GitHub Classroom's runner result and points notice)")
    p.add_argument("--fail-under", type=float, help="exit with status 1 if any submission scores below this")
    p.add_argument("--public-only", action="store_true", help="only the public checks (no hidden cases, no MNIST)")
    p.add_argument("--no-mnist", action="store_true", help="skip the MNIST training tests")
    p.add_argument("--no-sandbox", action="store_true", help="instructor-only debugging: run code in-process")
    p.add_argument("--force-unsafe", action="store_true", help="allow --no-sandbox")
    p.add_argument("--quiet", action="store_true", help="no progress or summary lines on stderr")
    from .intake import LAYOUTS
    from .report.export import EXPORTS

    p.add_argument("--layout", choices=LAYOUTS, default="auto",
                   help="what the submissions folder (or .zip) is: a platform's bulk download or plain entries "
                        "(default: detected from the names)")
    p.add_argument("--roster", help="CSV of the students who should have submitted: adds its columns to the "
                                    "gradebook, 'missing' rows for who did not, and lists unmatched submissions")
    p.add_argument("--roster-id", help="roster column holding the student id (default: the first column)")
    p.add_argument("--roster-name", help="roster column holding the name (default: a column called 'name')")
    p.add_argument("--roster-email", help="roster column holding the email (default: a column called 'email')")
    p.add_argument("--roster-lms-id", help="roster column holding the LMS user id (Canvas user id, Moodle "
                                           "participant number; default: a column called 'lms_id')")
    p.add_argument("--export", action="append", choices=EXPORTS,
                   help="also write the grades for that platform's grade import (repeatable)")
    p.add_argument("--export-assignment", default="Backprop by hand",
                   help="assignment column name in the Canvas export, e.g. 'HW1 (12345)'")
    p.add_argument("--time-budget", type=float, default=60.0,
                   help="wall-clock seconds one submission may take in the sandbox, every phase together "
                        "(default 60; a correct submission takes a few seconds)")
    p.add_argument("--per-student-secret", action="store_true",
                   help="draw each student's hidden cases from the secret combined with the student id (and "
                        "--attempt), so that no submission learns another's hidden cases; recorded in run.json")
    p.add_argument("--attempt", help="with --per-student-secret: an attempt or submission id mixed in too")
    p.add_argument("--executor", default="local",
                   help="where to grade: local (a process pool of --jobs), dask-local (a Dask LocalCluster of --jobs "
                        "workers) or dask://HOST:PORT (a running Dask scheduler; needs the 'dask' extra)")
    p.add_argument("--shard", metavar="I/N", help="grade only shard I of N (1-based; by a stable hash of the id) and "
                                                  "write shard.json; join the shards with `grader merge`")
    p.add_argument("--only", help="regrade only these ids, keep other rows (comma-separated; an id with commas matches whole)")
    p.add_argument("--only-file", help="regrade only the students listed in this file, one id a line")
    p.add_argument("--changed", action="store_true", help="regrade only submissions whose bytes changed")
    p.add_argument("--regrade-all", action="store_true", help="regrade every submission, even if already graded")
    p.add_argument("--overrides", help="instructor overrides TOML (default: OUT/overrides.toml when present)")
    p.add_argument("--submission-times", help="CSV student,submitted_at (or a Moodle grading worksheet) for the "
                                              "rubric's [late] policy; 'mtime' uses file times (only when asked)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="grader", description="Grade backprop-by-hand submissions.")
    ap.add_argument("--version", action="version", version=f"grader {__version__}")
    ap.add_argument("--assignment", metavar="SPEC.toml",
                    help="the assignment spec to grade (default: $GRADER_ASSIGNMENT, else the built-in homework; "
                         "see README 'Assignment spec')")
    sub = ap.add_subparsers(dest="command", required=True)

    g = sub.add_parser("grade", help="grade one submission or a folder of them")
    g.add_argument("submissions", help="a submission (folder, .zip, .ipynb) or a folder of submissions")
    _add_grade_options(g)
    g.set_defaults(func=cmd_grade)

    d = sub.add_parser("demo", help="grade the bundled example submissions (data/examples)")
    _add_grade_options(d, demo=True)
    d.set_defaults(func=cmd_demo)

    m = sub.add_parser("merge", help="join the output folders of `grader grade --shard i/n` runs")
    m.add_argument("out", help="folder for the merged gradebook.csv, summary.md, run.json, report.html")
    m.add_argument("shards", nargs="+", help="the shards' --out folders")
    m.add_argument("--format", choices=("text", "json", "junit", "github"), default="text", help="console output")
    m.set_defaults(func=cmd_merge)

    rp = sub.add_parser("report", help="write report.html (the class report) for a graded folder")
    rp.add_argument("out", help="the --out folder of a grading run")
    rp.set_defaults(func=cmd_report)

    c = sub.add_parser("check", help="students: run the public checks on your assignment/ folder")
    c.add_argument("path", nargs="?", default=None, help="your assignment folder (default: ./assignment)")
    c.add_argument("--component", help=f"only this component ({', '.join(current_spec().component_ids)})")
    c.add_argument("--format", choices=("text", "github", "classroom"), default="text")
    c.set_defaults(func=cmd_check)

    v = sub.add_parser("validate", help="reference full marks, skeleton zero, every known-buggy variant caught")
    v.add_argument("--secret", default="validate", help="secret for the hidden cases")
    v.add_argument("--fixtures", default=None, help="folder of buggy variants (default: tests/fixtures/buggy)")
    v.add_argument("--sandbox", action="store_true", help="also grade the reference through the sandbox")
    v.add_argument("--verbose", action="store_true")
    v.set_defaults(func=cmd_validate)

    df = sub.add_parser("diff", help="students whose scores changed between runs (OUT/history.jsonl)")
    df.add_argument("out", help="the --out folder of grader grade")
    df.add_argument("--run", action="append", help="run id (or a unique prefix); once: that run's changes, "
                                                   "twice: from the first run's scores to the second's")
    df.set_defaults(func=cmd_diff)

    r = sub.add_parser("release", help="build the student distribution")
    r.add_argument("out", help="output folder")
    r.set_defaults(func=cmd_release)

    gs = sub.add_parser("gradescope", help="build a Gradescope autograder bundle")
    gs.add_argument("out", help="output .zip")
    gs.add_argument("--rubric", help="rubric TOML to bundle")
    gs.set_defaults(func=cmd_gradescope)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    try:
        args = ap.parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code not in (0, None) else EXIT_OK
    try:
        if args.assignment:
            activate(args.assignment)
    except (SpecError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:
        import traceback

        traceback.print_exc()
        print("internal error of the grader (exit status 3); please report it with the traceback above",
              file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
