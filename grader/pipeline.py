"""Grading one submission: the ordered list of steps a submission goes through.

intake → sandbox → checks (public, then hidden) → MNIST tests → scoring. ``grade_submission`` never
raises: whatever happens to a submission ends as a :class:`SubmissionResult` holding every planned
test, so a batch always has a row and a ``results.json`` for it.
"""
from __future__ import annotations

import shutil
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from .checks import REGISTRY, run_check
from .checks.base import CheckResult
from .checks.mnist import (LOGREG, MLP, NETWORK_CLASSES, MnistRun, Protocol, datasets, flag_for_review,
                           reference_cache, train_and_score)
from .diagnosis.explain import explain, sanitize
from .diagnosis.causes import CAUSES
from .intake import IntakeError, Submission, prepare
from .sandbox.client import LocalImpl, SandboxConfig, SandboxImpl
from .scoring import Rubric, SubmissionResult, TestResult, load_rubric

PROTOCOLS: dict[str, Protocol] = {MLP.component: MLP, LOGREG.component: LOGREG}


@dataclass(frozen=True)
class GradeOptions:
    """How to grade; plain data, so it can be shipped to another process or machine."""

    secret: str
    rubric_path: str | None = None
    public_only: bool = False
    sandbox: bool = True
    mnist: bool = True
    sandbox_config: SandboxConfig = SandboxConfig()
    reference_mnist: dict = field(default_factory=dict)  #: component -> {"accuracy", "seconds"}
    data_root: str | None = None

    @property
    def rubric(self) -> Rubric:
        return _rubric(self.rubric_path)


@lru_cache(maxsize=4)
def _rubric(path):
    return load_rubric(path)


@lru_cache(maxsize=1)
def reference_impl() -> LocalImpl:
    try:
        import solutions  # noqa: F401
    except ImportError:  # the student release: no solutions/, the public checks replay recorded answers
        from .sandbox.recorded import RecordedImpl

        return RecordedImpl.load(Path(__file__).resolve().parent / "checks" / "public_reference.npz")
    import solutions.layers
    import solutions.logistic_regression

    return LocalImpl.from_modules(solutions.layers, solutions.logistic_regression, label="reference")


@lru_cache(maxsize=2)
def _datasets(root):
    return datasets(root)


def reference_mnist(secret: str, data_root: str | None = None) -> dict:
    """Accuracy, time and per-step gradient norms of the reference under each protocol and this
    secret: computed once per secret and protocol, then read from a cache on disk (batches, resumes)."""
    from threadpoolctl import threadpool_limits

    out = {}
    for comp, p in PROTOCOLS.items():
        with reference_cache(secret, p, data_root) as cache:
            if cache.value is None:
                with threadpool_limits(1):  # the same single BLAS thread as a worker, and deterministic sums
                    run = train_and_score(reference_impl(), p, _datasets(data_root)[p.kind], secret=secret)
                if run.error is not None:
                    raise RuntimeError(f"the reference failed its own {comp} test: {run.error}")
                cache.value = {"accuracy": run.accuracy, "seconds": round(run.seconds, 3),
                               "protocol": {k: v for k, v in p.__dict__.items()}, "grad_norms": run.grad_norms}
            out[comp] = cache.value
    return out


# --- the plan: every test of a run, known before anything runs -------------------------------------

@dataclass(frozen=True)
class Planned:
    check: str
    component: str
    visibility: str
    max_score: float
    name: str


def plan(rubric: Rubric, *, public_only: bool, mnist: bool) -> list[Planned]:
    out = []
    for cid, points in rubric.checks.items():
        spec = REGISTRY[cid]
        share = rubric.public_share if spec.public else 0.0
        if spec.public:
            out.append(Planned(cid, spec.component, "public", round(points * share, 4),
                               f"{spec.component}: {spec.title} (public)"))
        if not public_only:
            out.append(Planned(cid, spec.component, "hidden", round(points * (1 - share), 4),
                               f"{spec.component}: {spec.title} (hidden)"))
    if mnist and not public_only:
        for comp, rule in rubric.mnist.items():
            out.append(Planned(comp, comp, "hidden", rule.points, f"{comp}: accuracy after training (hidden)"))
    return out


def _zero(p: Planned, output: str, cause: str | None = None) -> TestResult:
    return TestResult(p.name, p.component, p.check, p.visibility, 0.0, p.max_score, output,
                      (cause,) if cause else ())


def _score_check(p: Planned, res: CheckResult, rubric: Rubric) -> TestResult:
    frac = res.fraction if rubric.partial_credit else float(res.passed)
    return TestResult(p.name, p.component, p.check, p.visibility, round(p.max_score * frac, 4), p.max_score,
                      explain(res), tuple(res.causes), res.not_attempted)


def _score_mnist(p: Planned, run: MnistRun, ref: dict, rubric: Rubric) -> TestResult:
    proto = PROTOCOLS[p.component]
    rule = rubric.mnist[p.component]
    desc = (f"Protocol: {proto.kind}{' 784-%d-10' % proto.hidden if proto.kind == 'mlp' else ' on digits %d vs %d' % proto.digits}, "
            f"{proto.epochs} epoch(s), batch {proto.batch_size}, learning rate {proto.lr}, SGD by the grader.")
    if run.error is not None:
        c = run.error
        title = CAUSES[c.cause].title if c.cause in CAUSES else c.cause
        hint = CAUSES[c.cause].hint if c.cause in CAUSES else ""
        text = f"{title}: {sanitize(c.detail, 600, one_line=True)}\nWhat to try: {hint}\n{desc}"
        return _zero(p, text, c.cause)
    frac = rule.fraction(run.accuracy, ref["accuracy"], proto.chance)
    text = (f"Test accuracy {run.accuracy:.4f} (the reference reaches {ref['accuracy']:.4f} under the same "
            f"protocol; full marks within {rule.full_within:g}). {desc}")
    causes: tuple[str, ...] = ()
    if frac < 1.0:
        causes = ("not_learning",)
        text += "\nWhat to try: " + CAUSES["not_learning"].hint
    if run.notes:
        text += "\n" + "\n".join(run.notes)
    return TestResult(p.name, p.component, p.check, p.visibility, round(p.max_score * frac, 4), p.max_score,
                      text, causes)


def _status(tests: list[TestResult]) -> tuple[str, str]:
    causes = [c for t in tests for c in t.causes]
    if "import_error" in causes:
        lines = [ln for t in tests for ln in t.output.splitlines() if "could not be imported" in ln]
        first = lines[0].split(": import", 1)[0] if lines else ""
        return "error", (first.split(". ", 1)[-1] if first else "a student file could not be imported")[:300]
    if "timeout" in causes or "too_slow" in causes:
        return "timeout", "some calls took too long or never returned; see the affected tests"
    if "crash" in causes:
        return "error", "the submission crashed the worker in some tests; see the affected tests"
    return "ok", ""


def run_tests(impl, opts: GradeOptions, planned: list[Planned], result: SubmissionResult, *,
              reference=None) -> SubmissionResult:
    """Checks, then MNIST tests, on an implementation (sandboxed or in-process), scored into ``result``."""
    rubric = opts.rubric
    t = time.perf_counter()
    ref = reference or reference_impl()
    tests: dict[tuple[str, str], TestResult] = {}
    for p in planned:
        if p.check in REGISTRY:
            res = run_check(REGISTRY[p.check], impl, ref, secret=None if p.visibility == "public" else opts.secret)
            tests[(p.check, p.visibility)] = _score_check(p, res, rubric)
    result.timings["checks"] = round(time.perf_counter() - t, 4)
    for p in planned:
        if p.check not in PROTOCOLS:
            continue
        t = time.perf_counter()
        proto = PROTOCOLS[p.check]
        ref_stats = opts.reference_mnist.get(p.check) or reference_mnist(opts.secret, opts.data_root)[p.check]
        budget = max(proto.min_budget, proto.time_factor * ref_stats["seconds"])
        run = train_and_score(impl, proto, _datasets(opts.data_root)[proto.kind], secret=opts.secret, budget=budget,
                              reference=ref_stats)
        own = [t for t in tests.values() if t.component in NETWORK_CLASSES[proto.kind]]
        layers_ok = bool(own) and all(t.score >= t.max_score - 1e-9 for t in own)
        result.mnist[p.check] = flag_for_review(run, layers_ok).summary(ref_stats)
        result.timings[p.check] = round(time.perf_counter() - t, 4)
        tests[(p.check, p.visibility)] = _score_mnist(p, run, ref_stats, rubric)
    result.tests = [tests[(p.check, p.visibility)] for p in planned]
    result.status, result.reason = _status(result.tests)
    return result


def grade_submission(sub: Submission, opts: GradeOptions) -> SubmissionResult:
    """Grade one submission. Never raises; the result always holds every planned test."""
    rubric = opts.rubric
    planned = plan(rubric, public_only=opts.public_only, mnist=opts.mnist)
    result = SubmissionResult(student=sub.student, status="ok", source=sub.path.name)
    scratch = Path(tempfile.mkdtemp(prefix="bpg-"))
    impl = None
    t = time.perf_counter()
    try:
        try:
            prepared = prepare(sub, scratch)
        except IntakeError as exc:
            result.status, result.reason = "rejected", str(exc)
            result.tests = [_zero(p, f"Not graded: {exc}") for p in planned]
            return result
        result.digest = prepared.digest
        result.notes += prepared.notes + list(prepared.problems.values())
        result.timings["intake"] = round(time.perf_counter() - t, 4)

        t = time.perf_counter()
        if opts.sandbox:
            impl = SandboxImpl(prepared.package_dir, opts.sandbox_config)
            impl._start()  # now, so that worker start-up is timed on its own
        else:
            impl = LocalImpl.from_package_dir(prepared.package_dir)
        result.isolation = dict(impl.isolation)
        result.timings["worker_start"] = round(time.perf_counter() - t, 4)

        run_tests(impl, opts, planned, result)
        if isinstance(impl, SandboxImpl):
            impl.close()  # ends the worker, so its output is complete
            result.student_output = sanitize(impl.student_output(), 4000)
            result.isolation = dict(impl.isolation) or result.isolation
        return result
    except Exception as exc:  # the grader's own failure: recorded, and the batch goes on
        result.status = "error"
        result.reason = f"internal grader error: {exc!r}"
        result.notes.append(traceback.format_exc(limit=5)[-2000:])
        done = {(x.check, x.visibility) for x in result.tests}
        result.tests = [_zero(p, f"Not graded: {result.reason}") for p in planned if (p.check, p.visibility) not in done]
        return result
    finally:
        if impl is not None:
            impl.close()
        shutil.rmtree(scratch, ignore_errors=True)
