"""Grading one submission: the ordered list of steps a submission goes through.

intake → sandbox → checks (public, then hidden) → MNIST tests → scoring. ``grade_submission`` never
raises: whatever happens to a submission ends as a :class:`SubmissionResult` holding every planned
test, so a batch always has a row and a ``results.json`` for it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import shutil
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from .checks import REGISTRY, run_check
from .checks.base import CheckResult
from .checks.mnist import MnistRun, Protocol, datasets, flag_for_review, reference_cache, train_and_score
from .diagnosis.explain import explain, sanitize
from .diagnosis.attribution import attribute_mnist
from .diagnosis.causes import CAUSES
from .hidden_text import HiddenTextCap
from .intake import IntakeError, Submission, prepare
from .reference import reference_impl as _spec_reference_impl
from .sandbox.client import LocalImpl, SandboxConfig, SandboxImpl, StudentError
from .scoring import Rubric, SubmissionResult, TestResult, load_rubric
from .spec import AssignmentSpec, active_path, current_spec, default_spec, load_spec, spec_for, use_spec


def protocols(spec: AssignmentSpec | None = None) -> dict[str, Protocol]:
    """End-to-end test id -> its training protocol, for the assignment (default: the current one)."""
    return spec_for(None).protocols() if spec is None else spec.protocols()


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
    #: Wall-clock seconds one submission may take in the sandbox, all phases together (worker starts,
    #: calls, training data, training, replays). A correct submission takes 2-6 s on an idle core; the
    #: budget is ten times that and more, so load or a slow but correct style never comes near it.
    time_budget: float = 60.0
    #: Hidden cases drawn from the secret combined with the student id and ``attempt`` (issue 21):
    #: a probe submission then learns nothing about anyone else's hidden cases.
    per_student_secret: bool = False
    attempt: str = ""
    #: The assignment spec file (issue 17); None: the default homework. Defaults to the one activated
    #: in this process (``grader --assignment``), and travels with the options to other processes.
    assignment: str | None = field(default_factory=active_path)

    @property
    def spec(self) -> AssignmentSpec:
        return load_spec(self.assignment) if self.assignment else default_spec()

    @property
    def rubric(self) -> Rubric:
        return _rubric(self.rubric_path, self.spec)


@lru_cache(maxsize=4)
def _rubric(path, spec):
    return load_rubric(path, spec)


def reference_impl(spec: AssignmentSpec | None = None) -> LocalImpl:
    """The reference of the assignment (default: the current one); see :mod:`grader.reference`."""
    return _spec_reference_impl(spec)


@lru_cache(maxsize=2)
def mnist_data(root):
    """The MNIST training and test sets of each protocol kind (``datasets``), loaded once per process."""
    return datasets(root)


def reference_mnist(secret: str, data_root: str | None = None, spec: AssignmentSpec | None = None) -> dict:
    """Accuracy, time and per-step gradient norms of the reference under each protocol and this
    secret: computed once per secret and protocol, then read from a cache on disk (batches, resumes)."""
    from threadpoolctl import threadpool_limits

    out = {}
    for comp, p in protocols(spec).items():
        with reference_cache(secret, p, data_root) as cache:
            if cache.value is None:
                with threadpool_limits(1):  # the same single BLAS thread as a worker, and deterministic sums
                    run = train_and_score(reference_impl(spec), p, mnist_data(data_root)[p.kind], secret=secret)
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


def hidden_secret(opts: GradeOptions, student: str) -> str:
    """The secret the hidden checks of ``student`` are drawn from: the run's own, or (per-student
    secrets) a digest of it with the student id and the attempt, reproducible from ``run.json``.
    MNIST tests always use the run's secret (their reference accuracy is computed once per run)."""
    if not opts.per_student_secret:
        return opts.secret
    parts = ("per-student-v1", opts.secret, student, opts.attempt)
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def secret_record(opts: GradeOptions, student: str) -> dict:
    if not opts.per_student_secret:
        return {"scope": "run"}
    sid = hashlib.sha256(hidden_secret(opts, student).encode()).hexdigest()[:12]
    return {"scope": "per-student", "attempt": opts.attempt, "id": sid}


def zero_test(p: Planned, output: str, cause: str | None = None, *, detail: str = "") -> TestResult:
    """The planned test ``p`` scored 0 with feedback ``output`` (not graded, or failed as a whole).

    Used by every stage that must still give a row its full list of tests (intake refusals, the
    batch's infra and roster rows, the Gradescope bundle's fallback)."""
    return TestResult(p.name, p.component, p.check, p.visibility, 0.0, p.max_score, output,
                      (cause,) if cause else (), detail=detail)




def score_check(p: Planned, res: CheckResult, rubric: Rubric) -> TestResult:
    """The planned test ``p`` scored from a check's result under the rubric (also ``grader check``)."""
    frac = res.fraction if rubric.partial_credit else float(res.passed)
    first = next((c for c in res.cases if not c.ok), None)
    return TestResult(p.name, p.component, p.check, p.visibility, round(p.max_score * frac, 4), p.max_score,
                      explain(res), tuple(res.causes), res.not_attempted,
                      detail=sanitize(first.detail, 300, one_line=True) if first else "")


def _score_mnist(p: Planned, run: MnistRun, ref: dict, rubric: Rubric, proto: Protocol) -> TestResult:
    rule = rubric.mnist[p.component]
    desc = (f"Protocol: {proto.kind}{' 784-%d-10' % proto.hidden if proto.kind == 'mlp' else ' on digits %d vs %d' % proto.digits}, "
            f"{proto.epochs} epoch(s), batch {proto.batch_size}, learning rate {proto.lr}, SGD by the grader.")
    if run.error is not None:
        c = run.error
        title = CAUSES[c.cause].title if c.cause in CAUSES else c.cause
        hint = CAUSES[c.cause].hint if c.cause in CAUSES else ""
        what = f"{title}: {sanitize(c.detail, 600, one_line=True)}"
        return zero_test(p, f"{what}\nWhat to try: {hint}\n{desc}", c.cause, detail=what)
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


def _first_detail(tests: list[TestResult], causes: tuple[str, ...]) -> str:
    """The first affected test and what its first failing case says: the reason a row shows."""
    for t in tests:
        if any(c in causes for c in t.causes):
            return f"{t.name}: {t.detail}"[:300]
    return ""


def row_status(tests: list[TestResult]) -> tuple[str, str]:
    """Status and reason from the tests' causes and details (fields, never their rendered output)."""
    causes = [c for t in tests for c in t.causes]
    if "grader_error" in causes:
        return "infra", ("the grader itself failed in a check (not a verdict on the submission; a resumed "
                         "run grades it again): " + _first_detail(tests, ("grader_error",)))[:400]
    if "import_error" in causes:
        first = next((t.detail for t in tests if t.causes[:1] == ("import_error",) and t.detail), "")
        return "error", (first or "a student file could not be imported")[:300]
    slow = ("timeout", "too_slow", "prints_too_much")
    if any(c in causes for c in slow):
        return "timeout", ("some calls took too long or never returned; first: " + _first_detail(tests, slow))[:400]
    if "crash" in causes:
        return "error", ("the submission crashed the worker in some tests; first: "
                         + _first_detail(tests, ("crash",)))[:400]
    return "ok", ""


def run_tests(impl, opts: GradeOptions, planned: list[Planned], result: SubmissionResult, *,
              reference=None) -> SubmissionResult:
    """Checks, then MNIST tests, on an implementation (sandboxed or in-process), scored into ``result``."""
    rubric, spec = opts.rubric, opts.spec
    t = time.perf_counter()
    ref = reference or reference_impl(spec)
    secret = hidden_secret(opts, result.student)
    tests: dict[tuple[str, str], TestResult] = {}
    for p in planned:
        if p.check in REGISTRY:
            hidden = p.visibility != "public"
            res = run_check(REGISTRY[p.check], HiddenTextCap(impl) if hidden else impl, ref,
                            secret=secret if hidden else None)
            tests[(p.check, p.visibility)] = score_check(p, res, rubric)
    result.timings["checks"] = round(time.perf_counter() - t, 4)
    protos = protocols(spec) if any(p.check not in REGISTRY for p in planned) else {}
    trains = {e.id: e.trains for e in spec.end_to_end}
    for p in planned:
        if p.check not in protos:
            continue
        t = time.perf_counter()
        proto = protos[p.check]
        ref_stats = opts.reference_mnist.get(p.check) or reference_mnist(opts.secret, opts.data_root, spec)[p.check]
        budget = max(proto.min_budget, proto.time_factor * ref_stats["seconds"])
        run = train_and_score(impl, proto, mnist_data(opts.data_root)[proto.kind], secret=opts.secret, budget=budget,
                              reference=ref_stats)
        if run.error is not None and getattr(impl, "budget_exhausted", False) and run.error.cause in ("too_slow", "timeout"):
            run.error.cause = "timeout"
            run.error.detail = (f"not trained: the submission's total time budget of {opts.time_budget:g} s ran out "
                                "(every call, the training data and training draw from it)")
        own = [t for t in tests.values() if t.component in trains[p.check]]
        layers_ok = bool(own) and all(t.score >= t.max_score - 1e-9 for t in own)
        result.mnist[p.check] = flag_for_review(run, layers_ok).summary(ref_stats)
        result.timings[p.check] = round(time.perf_counter() - t, 4)
        tests[(p.check, p.visibility)] = _score_mnist(p, run, ref_stats, rubric, proto)
    result.tests = [tests[(p.check, p.visibility)] for p in planned]
    attribute_mnist(result, spec)  # a failing MNIST test names the component checks' cause (issue 15)
    result.status, result.reason = row_status(result.tests)
    return result


def _budget_record(impl, opts: GradeOptions, t0: float) -> dict:
    """The budget as charged (CPU waits not counted, see grader/sandbox/clock.py) and as wall time."""
    clock = getattr(impl, "clock", None)
    wall = time.monotonic() - t0
    used = clock() if callable(clock) else wall
    return {"seconds": opts.time_budget, "used": round(used, 2), "wall": round(wall, 2),
            "exhausted": bool(getattr(impl, "budget_exhausted", False))}


def _open_impl(package_dir: Path, opts: GradeOptions):
    """The student's implementation: a sandbox worker (started now, so that its start-up is timed
    on its own, and drawing on the submission's time budget) or, unsandboxed, in-process."""
    if not opts.sandbox:
        return LocalImpl.from_package_dir(package_dir, student_modules=opts.spec.student_modules)
    impl = SandboxImpl(package_dir, sandbox_config(opts))
    impl.set_budget(opts.time_budget)  # every request from now on draws from it
    try:
        impl.start()  # now, so that worker start-up is timed on its own
    except StudentError:
        pass  # recorded by the checks: each of them meets the same failure and names it
    except BaseException:  # the grader's own failure: no worker left behind
        _close_quietly(impl)
        raise
    return impl


def _close_quietly(impl) -> None:
    try:
        impl.close()
    except Exception:
        pass


def _grader_failed(result: SubmissionResult, planned: list[Planned], exc: Exception) -> SubmissionResult:
    """Status ``infra``: the grader's own failure; every planned test not scored yet is listed at 0."""
    result.status = "infra"
    result.reason = (f"the grader itself failed ({type(exc).__name__}: {str(exc)[:200]}); this is not a "
                     "verdict on the submission, and a resumed run grades it again")
    result.grader_trace = traceback.format_exc(limit=8)[-4000:]
    done = {(x.check, x.visibility) for x in result.tests}
    result.tests = [zero_test(p, "Not graded: the grader itself failed; it will be graded again")
                    for p in planned if (p.check, p.visibility) not in done] + list(result.tests)
    order = {(p.check, p.visibility): i for i, p in enumerate(planned)}
    result.tests.sort(key=lambda x: order.get((x.check, x.visibility), 0))
    return result
def sandbox_config(opts: GradeOptions) -> SandboxConfig:
    """The worker's limits, with the rubric's import policy and the assignment's classes and files
    unless the configuration sets them itself."""
    cfg = opts.sandbox_config
    if cfg.blocked_imports is None:
        cfg = dataclasses.replace(cfg, blocked_imports=opts.rubric.blocked_imports)
    if not cfg.student_modules:
        cfg = dataclasses.replace(cfg, student_modules=tuple(opts.spec.student_modules.items()))
    return cfg


def grade_submission(sub: Submission, opts: GradeOptions) -> SubmissionResult:
    """Grade one submission. Never raises; the result always holds every planned test.

    A failure of the grader itself (an exception here, memory running out) is status ``infra``:
    the runner retries it in a fresh process, and a resumed run grades it again.

    The grader's own numpy runs on one BLAS thread here, whoever calls (``grader check``, ``--jobs
    1``, Gradescope, a notebook): BLAS threads spinning next to the worker made MNIST training 10
    to 20 times slower on a busy 2-core machine, and one thread keeps the reference's sums the same
    on every machine."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        if opts.spec != current_spec():  # options shipped to a process where another assignment is current
            with use_spec(opts.assignment):
                return _grade_submission(sub, opts)
        return _grade_submission(sub, opts)


def _grade_submission(sub: Submission, opts: GradeOptions) -> SubmissionResult:
    rubric = opts.rubric
    planned = plan(rubric, public_only=opts.public_only, mnist=opts.mnist)
    result = SubmissionResult(student=sub.student, status="ok", source=sub.path.name,
                              secret=secret_record(opts, sub.student))
    scratch = Path(tempfile.mkdtemp(prefix="bpg-"))
    impl = None
    t = time.perf_counter()
    t_budget = time.monotonic()
    try:
        try:
            prepared = prepare(sub, scratch)
        except IntakeError as exc:
            result.status, result.reason = "rejected", str(exc)
            result.tests = [zero_test(p, f"Not graded: {exc}") for p in planned]
            return result
        result.digest = prepared.digest
        result.notes += prepared.notes + list(prepared.problems.values())
        result.timings["intake"] = round(time.perf_counter() - t, 4)

        t = time.perf_counter()
        impl = _open_impl(prepared.package_dir, opts)
        result.isolation = dict(impl.isolation)
        result.timings["worker_start"] = round(time.perf_counter() - t, 4)

        run_tests(impl, opts, planned, result)
        if isinstance(impl, SandboxImpl):
            impl.close()  # ends the worker, so its output is complete
            result.student_output = sanitize(impl.student_output(), 4000)
            result.isolation = dict(impl.isolation) or result.isolation
        return result
    except Exception as exc:  # MemoryError included: the grader's own failure, never the student's 0
        return _grader_failed(result, planned, exc)
    finally:
        if impl is not None:
            result.budget = _budget_record(impl, opts, t_budget) if opts.sandbox else {}
            _close_quietly(impl)
        shutil.rmtree(scratch, ignore_errors=True)
