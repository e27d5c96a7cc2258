"""``grader validate``: the grader grades itself.

* the reference gets full marks (in-process, and through the sandbox with ``--sandbox``);
* the untouched skeleton gets zero, every test reported as not attempted, nothing crashes;
* every known-buggy variant in ``tests/fixtures/buggy/`` loses points on the component it declares
  (and only there, apart from the MNIST tests its layer takes part in), and is given the cause it
  declares (or one of its declared alternatives).
"""
from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

from .pipeline import GradeOptions, plan, reference_impl, reference_mnist, run_tests
from .sandbox.client import LocalImpl
from .scoring import SubmissionResult
from .sandbox.worker import STUDENT_MODULES

ROOT = Path(__file__).resolve().parent.parent
MNIST_OF = {"Linear": "MNIST-MLP", "ReLU": "MNIST-MLP", "LogSoftmax": "MNIST-MLP", "NLLLoss": "MNIST-MLP",
            "LogisticRegression": "MNIST-LogReg"}


@dataclass
class Row:
    name: str
    expect: str
    score: float
    max_score: float
    lost: dict[str, float]
    causes: list[str]
    ok: bool
    why: str = ""


def load_variant(path: Path):
    spec = importlib.util.spec_from_file_location(f"_bpg_variant_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def variant_impl(mod) -> LocalImpl:
    import solutions.layers as L
    import solutions.logistic_regression as LR

    classes = {name: getattr(L if STUDENT_MODULES[name] == "layers" else LR, name) for name in STUDENT_MODULES}
    for name in STUDENT_MODULES:
        if isinstance(getattr(mod, name, None), type):
            classes[name] = getattr(mod, name)
    return LocalImpl(classes, label=f"variant {mod.__name__}")


def _grade(impl, opts, *, mnist_only: str | None = None) -> SubmissionResult:
    """All tests; with ``mnist_only``, the other MNIST test is left out (a variant of one class
    cannot change a network it is not part of, and each training run costs about a second)."""
    planned = plan(opts.rubric, public_only=False, mnist=opts.mnist)
    if mnist_only:
        planned = [p for p in planned if not p.check.startswith("MNIST-") or p.check == mnist_only]
    return run_tests(impl, opts, planned, SubmissionResult("validate", "ok"))


def _lost(r: SubmissionResult) -> dict[str, float]:
    return {c: round(m - s, 4) for c, (s, m) in r.component_scores().items() if s < m - 1e-9}


def validate(*, secret: str = "validate", fixtures: str | None = None, sandbox: bool = False,
             verbose: bool = False, mnist: bool = True, out=sys.stdout) -> int:
    # The buggy variants overflow on purpose; their numpy warnings would bury the table.
    import numpy as np

    with np.errstate(all="ignore"):
        return _validate(secret=secret, fixtures=fixtures, sandbox=sandbox, verbose=verbose, mnist=mnist, out=out)


def _validate(*, secret: str, fixtures: str | None, sandbox: bool, verbose: bool, mnist: bool, out) -> int:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        refm = reference_mnist(secret) if mnist else {}
    opts = GradeOptions(secret=secret, reference_mnist=refm, mnist=mnist)
    rows: list[Row] = []

    ref = _grade(reference_impl(), opts)
    rows.append(Row("reference (in-process)", "full marks", ref.score, ref.max_score, _lost(ref),
                    sorted({c for t in ref.tests for c in t.causes}), ref.score == ref.max_score))
    if sandbox:
        from .intake import Submission
        from .pipeline import grade_submission

        sr = grade_submission(Submission("reference", ROOT / "solutions", "dir"), opts)
        rows.append(Row("reference (sandbox)", "full marks", sr.score, sr.max_score, _lost(sr),
                        sorted({c for t in sr.tests for c in t.causes}), sr.score == sr.max_score))

    import assignment.layers as SL
    import assignment.logistic_regression as SLR

    sk = _grade(LocalImpl.from_modules(SL, SLR), opts)
    not_att = all(t.not_attempted or "not_attempted" in t.causes for t in sk.tests)
    rows.append(Row("skeleton", "zero, not attempted", sk.score, sk.max_score, _lost(sk),
                    sorted({c for t in sk.tests for c in t.causes}), sk.score == 0 and not_att and sk.status == "ok",
                    "" if not_att else "some test not reported as not attempted"))

    folder = Path(fixtures) if fixtures else ROOT / "tests" / "fixtures" / "buggy"
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        try:
            mod = load_variant(path)
        except Exception as exc:
            rows.append(Row(path.stem, "?", 0, 0, {}, [], False, f"fixture does not load: {exc!r}"))
            continue
        comp, cause = mod.COMPONENT, mod.CAUSE
        accepted = {cause, *getattr(mod, "ALSO", ())}
        r = _grade(variant_impl(mod), opts, mnist_only=MNIST_OF[comp])
        lost = _lost(r)
        comp_causes = sorted({c for t in r.tests if t.component == comp for c in t.causes})
        allowed = {comp, MNIST_OF[comp]}
        why = []
        if comp not in lost:
            why.append(f"no points lost on {comp}")
        if set(lost) - allowed:
            why.append(f"points lost outside {comp}: {', '.join(sorted(set(lost) - allowed))}")
        if not accepted & set(comp_causes):
            why.append(f"cause {cause!r} not named (named: {', '.join(comp_causes) or 'none'})")
        rows.append(Row(path.stem, f"{comp}: {cause}", r.score, r.max_score, lost, comp_causes, not why, "; ".join(why)))

    width = max(len(r.name) for r in rows)
    print(f"{'implementation':<{width}}  {'score':>11}  {'ok':<4} expected / lost / named", file=out)
    for r in rows:
        lost = ", ".join(f"{k} -{v:g}" for k, v in r.lost.items()) or "-"
        print(f"{r.name:<{width}}  {r.score:>5g}/{r.max_score:<5g}  {'yes' if r.ok else 'NO':<4} "
              f"{r.expect} | lost: {lost} | named: {', '.join(r.causes) or '-'}", file=out)
        if r.why:
            print(f"{'':<{width}}  -> {r.why}", file=out)
    bad = [r for r in rows if not r.ok]
    n_var = len(rows) - (3 if sandbox else 2)
    print(f"\n{len(rows) - len(bad)} of {len(rows)} rows as expected ({n_var} known-buggy variants).", file=out)
    return 1 if bad else 0
