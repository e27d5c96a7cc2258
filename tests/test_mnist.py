"""MNIST tests: reference accuracy, an independent check with scikit-learn, integrity (issues 5, 20),
the structured failure record (issue 15 reads it), the reference cache and the protocol (issue 22)."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from grader.checks import mnist as M
from grader.checks.mnist import LOGREG, MLP, datasets, train_and_score
from grader.pipeline import GradeOptions, plan, reference_impl, reference_mnist, run_tests
from grader.intake import Submission
from grader.report import render_summary
from grader.sandbox.client import LocalImpl
from grader.scoring import SubmissionResult, load_rubric
from grader.validate import load_variant, variant_impl
from conftest import ROOT


@pytest.fixture(scope="module")
def data():
    return datasets()


def test_reference_reaches_the_protocol_targets(data):
    ref = reference_mnist("mnist-test")
    assert ref["MNIST-MLP"]["accuracy"] >= 0.90  # its cost is measured in bench/, not asserted here
    assert ref["MNIST-LogReg"]["accuracy"] >= 0.94
    steps = -(-len(data["mlp"].y_train) * MLP.epochs // MLP.batch_size)
    assert len(ref["MNIST-MLP"]["grad_norms"]) == steps and all(len(s) == 4 for s in ref["MNIST-MLP"]["grad_norms"])


def test_reference_logreg_agrees_with_scikit_learn(data):
    from sklearn.linear_model import LogisticRegression as SkLR

    d = data["logreg"]
    run = train_and_score(reference_impl(), LOGREG, d, secret="sk")
    X = d.X_train.astype(np.float32) / 255.0
    sk = SkLR(max_iter=300, C=1.0).fit(X, d.y_train)
    sk_acc = float(np.mean(sk.predict(d.X_test) == d.y_test))
    assert abs(run.accuracy - sk_acc) < 0.02, (run.accuracy, sk_acc)


def test_trusted_backprop_matches_the_reference_layers(data):
    """The parent's own gradient (what every step is compared with) is the reference's."""
    from grader.sandbox.channel import GradientChannel

    d = data["mlp"]
    params = M.initial_params(MLP, np.random.default_rng(3))
    idx = np.arange(64) * 7
    _, got = GradientChannel(reference_impl(), "mlp", M.network(MLP), params, d.X_train, d.y_train, 64).gradient(
        params, idx, timeout=10)
    want = M.backprop("mlp", params, d.X_train[idx].astype(np.float32) / np.float32(255), d.y_train[idx])
    for k in params:
        assert np.allclose(got[k], want[k], rtol=1e-4, atol=1e-6), k
        assert M.cosine(got[k], want[k]) > 0.99999


def _mlp_only(secret="m"):
    opts = GradeOptions(secret=secret, mnist=True, reference_mnist=reference_mnist(secret))
    # the layer checks too: whether they passed decides between "a bug" and "flagged for review"
    return opts, [p for p in plan(load_rubric(), public_only=False, mnist=True) if p.check != "MNIST-LogReg"
                  and p.component not in ("LogisticRegression",)]


def test_broken_training_loses_mnist_points_and_names_the_layer():
    opts, planned = _mlp_only()
    mod = load_variant(ROOT / "tests/fixtures/buggy/linear_ignores_upstream.py")
    r = run_tests(variant_impl(mod), opts, planned, SubmissionResult("x", "ok"))
    t = next(t for t in r.tests if t.check == "MNIST-MLP")
    assert t.score < t.max_score
    mod = load_variant(ROOT / "tests/fixtures/buggy/linear_bias_not_summed.py")
    r = run_tests(variant_impl(mod), opts, planned, SubmissionResult("x", "ok"))
    t = next(t for t in r.tests if t.check == "MNIST-MLP")
    assert t.score == 0 and "b1" in t.output
    f = r.mnist["MNIST-MLP"]["failure"]
    assert f["component"] == "Linear" and f["kind"] == "wrong_shape" and f["step"] == 1, f


def test_skeleton_gets_zero_without_crash(data):
    import assignment.layers as SL
    import assignment.logistic_regression as SLR

    run = train_and_score(LocalImpl.from_modules(SL, SLR), MLP, data["mlp"], secret="s")
    assert run.accuracy is None and run.error.cause == "not_attempted"
    assert run.failure["component"] == "Linear" and run.failure["method"] == "forward" and run.failure["step"] == 1


def test_failure_record_names_component_method_and_step(data):
    """An exception at step 3 (issue 15's structure): component, method, kind, 1-based step, message;
    the step number in the student's text is the same."""
    import solutions.layers as L

    class Flaky(L.ReLU):
        calls = 0

        def backward(self, grad_output):
            Flaky.calls += 1
            if Flaky.calls == 3:
                raise ValueError("boom at the third call")
            return super().backward(grad_output)

    impl = variant_impl(type("mod", (), {"ReLU": Flaky, "__name__": "flaky"}))
    run = train_and_score(impl, MLP, data["mlp"], secret="f")
    assert run.accuracy is None
    assert run.failure == {"component": "ReLU", "method": "backward", "kind": "exception", "step": 3,
                           "message": "boom at the third call"}, run.failure
    assert "step 3" in run.error.detail and run.error.cause == "exception", run.error


def test_ordinary_direction_bug_is_not_called_tampering():
    """A first-batch disagreement from a real bug: worded as such, never 'flagged for review'."""
    opts, planned = _mlp_only()
    mod = load_variant(ROOT / "tests/fixtures/buggy/logsoftmax_backward_diagonal.py")
    r = run_tests(variant_impl(mod), opts, planned, SubmissionResult("x", "ok"))
    t = next(t for t in r.tests if t.check == "MNIST-MLP")
    out = t.output
    assert t.score == 0
    assert "your gradients on the first MNIST batch disagree with backpropagation" in out, out
    assert "flagged" not in out and "reproducible" not in out, out
    assert r.mnist["MNIST-MLP"]["review"] is None and r.mnist["MNIST-MLP"]["failure"]["kind"] == "direction"


class _Forging(LocalImpl):
    """Trusted stand-in for a worker that forges the gradient at chosen steps (what the sandbox
    version does through sys.modules: tests/test_forgery.py). Instance-level, so nothing global."""

    def __init__(self, steps, how):
        import solutions.layers as L
        import solutions.logistic_regression as LR

        super().__init__(LocalImpl.from_modules(L, LR)._d.classes, label="forging")
        self.steps, self.how, self.n = set(steps), how, 0
        trainer = self._d.trainer
        original = trainer._grad

        def grad(n):
            reply, out = original(n)
            self.n += 1
            if self.n in self.steps and reply.get("ok"):
                for k, e in trainer.layout["grads"].items():
                    d = reply["grads"][k]
                    v = trainer._view(e[0], d["dtype"], d["shape"])
                    v[...] = self.how(v, trainer._view(*trainer.layout["params"][k][:3]))
            return reply, out

        trainer._grad = grad


@pytest.mark.parametrize("step", [1, 137])
def test_forged_step_is_caught_and_flagged(data, step):
    """Correct layers, one step's gradient replaced by a jump towards other weights: no credit, and
    (the layers pass their checks) flagged with evidence; the batch summary lists it."""
    jump = lambda g, p: (p - 0.5 * p[::-1]) / np.float32(MLP.lr)  # noqa: E731
    run = train_and_score(_Forging([step], jump), MLP, data["mlp"], secret="j",
                          reference=reference_mnist("j")["MNIST-MLP"])
    assert run.accuracy is None and run.failure["step"] == step and run.failure["kind"] in ("direction", "norm")
    M.flag_for_review(run, checks_passed=True)
    assert run.review and run.error.cause == "inconsistent_training" and "flagged for review" in run.error.detail
    r = SubmissionResult("mallory", "ok", mnist={"MNIST-MLP": run.summary({"accuracy": 0.9})})
    text = render_summary([r, SubmissionResult("alice", "ok")], 100)
    section = text.split("## Flagged for review", 1)[-1].split("\n## ", 1)[0]  # up to the next section
    assert "## Flagged for review" in text and "| mallory | MNIST-MLP |" in section and "alice" not in section


def test_scale_error_is_scored_not_flagged(data):
    """A gradient 64 times too large at every step (a mean taken as a sum) is an ordinary bug."""
    run = train_and_score(_Forging(range(1, 10**6), lambda g, p: g * np.float32(64)), MLP, data["mlp"],
                          secret="s64", reference=reference_mnist("s64")["MNIST-MLP"])
    assert run.review is None and (run.error is None or run.error.cause != "inconsistent_training"), run.error


def test_wrong_gradient_shape_fails_never_skips(data):
    """A gradient of the wrong shape on a step the worker might think is a check: a failure."""
    run = train_and_score(_Forging([5], lambda g, p: g), LOGREG, data["logreg"], secret="w")
    assert run.error is None  # control: writing the same values back changes nothing

    impl = _Forging([], None)
    trainer = impl._d.trainer
    original = trainer._grad

    def grad(n):
        reply, out = original(n)
        if impl.n == 5:
            reply["grads"]["w"]["shape"] = [1, 784]
        return reply, out

    trainer._grad = grad
    run = train_and_score(impl, LOGREG, data["logreg"], secret="w")
    assert run.accuracy is None and run.error.cause == "wrong_shape" and run.failure["step"] == 5, run.failure


def test_reference_is_cached_on_disk_without_naming_the_secret(tmp_path):
    secret = "cache-test-secret-123"
    first = reference_mnist(secret)
    with M.reference_cache(secret, MLP) as c:
        assert c.value == json.loads(json.dumps(first["MNIST-MLP"]))
        assert secret not in c.path.name and c.path.is_file()
    with M.reference_cache(secret + "x", MLP) as c:
        assert c.value is None  # another secret is another entry


def test_protocol_study_sample_keeps_the_verdicts(data):
    """A sample of the protocol study (bench/protocol_study.py; the whole table is in bench/README.md):
    under the adopted protocol each of these keeps the verdict it had under the 3-epoch run."""
    before = json.loads((ROOT / "bench/protocol_study_before.json").read_text())
    rule = load_rubric().mnist["MNIST-MLP"]
    sample = ["linear_bias_mean", "linear_dx_sign", "nllloss_sum_divides_by_n", "relu_backward_wrong_mask",
              "logsoftmax_no_max_subtraction", "linear_grad_w_divided_by_n"]
    for secret in ("study-0", "study-1"):
        ref = reference_mnist(secret)["MNIST-MLP"]
        for name in sample:
            run = train_and_score(variant_impl(load_variant(ROOT / f"tests/fixtures/buggy/{name}.py")), MLP,
                                  data["mlp"], secret=secret, reference=ref)
            frac = rule.fraction(run.accuracy, ref["accuracy"], MLP.chance)
            verdict = "full" if frac == 1 else "partial" if frac > 0 else "zero"
            assert verdict == before["mlp"][f"buggy/{name}"][secret], (name, secret, frac, run.error)


def test_float64_style_student_keeps_full_marks(data):
    """A correct student who computes in float64 (returns float64 gradients for float32 parameters):
    the gradient slots have room for float64, the parent casts; full marks, nothing flagged."""
    import solutions.layers as L

    class Linear64(L.Linear):
        def forward(self, X):
            self._X = np.asarray(X, dtype=np.float64)
            return self._X @ self.W.astype(np.float64) + self.b

        def backward(self, grad_output):
            G = np.asarray(grad_output, dtype=np.float64)
            self.grad_W, self.grad_b = self._X.T @ G, G.sum(axis=0)
            return G @ self.W.T.astype(np.float64)

    ref = reference_mnist("f64")["MNIST-MLP"]
    run = train_and_score(variant_impl(type("mod", (), {"Linear": Linear64, "__name__": "f64"})), MLP, data["mlp"],
                          secret="f64", reference=ref)
    frac = load_rubric().mnist["MNIST-MLP"].fraction(run.accuracy, ref["accuracy"], MLP.chance)
    assert run.error is None and run.review is None and frac == 1.0, (run.error, run.accuracy, ref["accuracy"])


def test_the_graders_numpy_runs_on_one_blas_thread_whoever_calls(submission_factory, monkeypatch) -> None:
    """``grader check``, ``--jobs 1`` and Gradescope call grade_submission in a process whose BLAS
    may use every core: its threads spinning next to the worker made MNIST training 10-20x slower
    on a busy machine. grade_submission itself runs the grader's numpy on one thread."""
    from threadpoolctl import threadpool_info, threadpool_limits

    import grader.pipeline as pl

    def blas_threads() -> list[int]:
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    seen: list[list[int]] = []
    real = pl.run_tests

    def spy(*a, **kw):
        seen.append(blas_threads())
        return real(*a, **kw)

    monkeypatch.setattr(pl, "run_tests", spy)
    sub = Submission("threads", submission_factory("threads"), "dir")
    with threadpool_limits(2):
        before = blas_threads()
        if not before or set(before) != {2}:
            pytest.skip(f"the BLAS libraries here cannot be set to two threads: {before}")
        pl.grade_submission(sub, GradeOptions(secret="t", mnist=False, sandbox=False))
        assert blas_threads() == before  # the caller's setting is given back
    assert len(seen) == 1 and set(seen[0]) == {1}, seen


@pytest.mark.parametrize("kind", ["per_sample", "nan", "list"])
def test_a_loss_only_bug_costs_no_mnist_point(data, kind):
    """The parent trains on the gradients and never uses the loss value: a forward that returns the
    per-sample losses, NaN or a list (charged by the loss's own checks) is not charged again here.
    Negative control: the same class with a backward bug as well loses the run."""
    import solutions.layers as L

    class LooseLoss(L.NLLLoss):
        def forward(self, log_probs, target):
            value = super().forward(log_probs, target)
            per = -log_probs[np.arange(len(target)), target]
            return {"per_sample": per, "nan": float("nan"), "list": [value]}[kind]

    class AlsoWrongBackward(LooseLoss):
        def backward(self, grad_output=1.0):
            return -super().backward(grad_output)

    ref = reference_mnist("loose")["MNIST-MLP"]
    rule = load_rubric().mnist["MNIST-MLP"]
    run = train_and_score(variant_impl(type("mod", (), {"NLLLoss": LooseLoss, "__name__": "loose"})), MLP,
                          data["mlp"], secret="loose", reference=ref)
    assert run.error is None and rule.fraction(run.accuracy, ref["accuracy"], MLP.chance) == 1.0, run.error
    if kind == "nan":
        assert run.final_loss is None  # nothing finite to report, and nothing that breaks the JSON
    bad = train_and_score(variant_impl(type("mod", (), {"NLLLoss": AlsoWrongBackward, "__name__": "bad"})), MLP,
                          data["mlp"], secret="loose", reference=ref)
    assert bad.accuracy is None and bad.failure["kind"] == "direction", bad.failure
