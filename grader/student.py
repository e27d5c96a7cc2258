"""``grader check`` and ``check()`` for notebooks: the public checks, in the same sandbox as grading.

What a student sees here is what official grading shows for the public cases (same checks, same
diagnosis); hidden cases with other shapes and values, and the MNIST training tests, run on top.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from .checks import REGISTRY, CheckResult, run_check
from .diagnosis.causes import SYMPTOMS
from .diagnosis.explain import explain
from .report.feedback import cause_overview, summarize_causes
from .intake import Submission
from .intake.discover import is_submission_dir
from .intake.extract import prepare
from .sandbox.client import SandboxConfig, SandboxImpl
from .spec import current_spec

FOOTER = ("These were the public checks, on fixed inputs. When your submission is graded, hidden checks run "
          "the same checks again on other shapes and values, and the MNIST training tests run as well: every "
          "rule the hidden checks enforce is already checked here.")
#: the same, for an assignment without end-to-end (MNIST training) tests
FOOTER_CHECKS_ONLY = ("These were the public checks, on fixed inputs. When your submission is graded, hidden "
                      "checks run the same checks again on other shapes and values: every rule the hidden checks "
                      "enforce is already checked here.")


def footer() -> str:
    """The closing sentence of ``grader check``, for the current assignment."""
    return FOOTER if current_spec().end_to_end else FOOTER_CHECKS_ONLY


def _default_path() -> Path:
    """The student's folder: the assignment's package folder here or one up, this folder, else the
    installed package."""
    import importlib

    cwd, pkg = Path.cwd(), current_spec().student_package
    for cand in (cwd / pkg, cwd.parent / pkg, cwd):
        if cand.is_dir() and is_submission_dir(cand):
            return cand
    return Path(importlib.import_module(pkg).__file__).resolve().parent


def run_public(path: str | Path | None = None, component: str | None = None) -> list[CheckResult]:
    """Run the public checks on a student folder in the sandbox; returns the check results."""
    from .pipeline import reference_impl

    folder = Path(path) if path else _default_path()
    ids = current_spec().component_ids
    specs = [s for s in REGISTRY.values()
             if s.component in ids and s.public and (component is None or s.component == component)]
    scratch = Path(tempfile.mkdtemp(prefix="bpg-check-"))
    try:
        prepared = prepare(Submission("you", folder, "dir"), scratch)
        # The student's own code on the student's own machine (no reference here, only recorded public
        # answers): graded even where the machine lacks the layers official grading insists on.
        with SandboxImpl(prepared.package_dir, SandboxConfig(allow_weak=True)) as impl:
            return [run_check(s, impl, reference_impl(), secret=None) for s in specs]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def format_results(results: list[CheckResult]) -> str:
    """The causes found first (each once, with the checks it failed; the first is what to fix first),
    then each component's checks, a diagnosis already shown referred to instead of repeated."""
    items = [(r.component, f"{r.component}: {r.title}", tuple(r.causes), None) for r in results
             if not r.passed and not r.not_attempted and r.causes]
    lines = cause_overview(summarize_causes(items), md=False, points=False)
    shown: dict[tuple, str] = {}
    for comp in current_spec().component_ids:
        rs = [r for r in results if r.component == comp]
        if not rs:
            continue
        ok = sum(r.passed for r in rs)
        lines.append(f"{comp}: {ok}/{len(rs)} public checks passed")
        for r in rs:
            mark = "PASS" if r.passed else ("TODO" if r.not_attempted else "FAIL")
            lines.append(f"  [{mark}] {r.title}")
            if r.passed:
                continue
            key = tuple(r.causes)
            if key in shown and any(c not in SYMPTOMS for c in key):
                lines.append(f"         same cause as above: see {shown[key]}")
                continue
            shown.setdefault(key, f"{comp}: {r.title}")
            lines += ["         " + line for line in explain(r).splitlines()]
    lines += ["", footer()]
    return "\n".join(lines)


def check(component: str | None = None, path: str | Path | None = None) -> list[CheckResult]:
    """For notebooks: run the public checks of one component (or all) and print readable feedback."""
    if component is not None and component not in current_spec().component_ids:
        raise ValueError(f"unknown component {component!r}; choose one of {', '.join(current_spec().component_ids)}")
    pkg = current_spec().student_package
    if path is None and pkg in sys.modules and getattr(sys.modules[pkg], "__file__", None):
        path = Path(sys.modules[pkg].__file__).resolve().parent  # what the notebook imported
    results = run_public(path, component)
    print(format_results(results))
    return results


def check_path(path: str | None, *, component: str | None = None, fmt: str = "text") -> int:
    if component is not None and component not in current_spec().component_ids:
        print(f"error: unknown component {component!r}; choose one of {', '.join(current_spec().component_ids)}", file=sys.stderr)
        return 2
    folder = Path(path) if path else _default_path()
    if not folder.exists():
        print(f"error: {folder} does not exist", file=sys.stderr)
        return 2
    results = run_public(folder, component)
    if fmt in ("github", "classroom"):
        from .report import github_annotations, github_summary
        from .pipeline import Planned, score_check
        from .scoring import SubmissionResult, load_rubric

        rubric = load_rubric()
        tests = [score_check(Planned(r.id, r.component, "public", rubric.checks[r.id] * rubric.public_share,
                                      f"{r.component}: {r.title} (public)"), r, rubric) for r in results]
        sr = SubmissionResult("public-checks", "ok", tests=tests)
        if fmt == "classroom":  # GitHub Classroom's runner result and points notice (issue 19)
            from .instructor.classroom import emit

            return emit([sr], None)
        import os

        summary = github_summary([sr]) + "\n" + footer() + "\n"
        if os.environ.get("GITHUB_STEP_SUMMARY"):
            with open(os.environ["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as fh:
                fh.write(summary)
        print(format_results(results))
        for line in github_annotations([sr]):
            print(line)
        return 0
    print(f"Public checks of {folder}")
    print(format_results(results))
    return 0
