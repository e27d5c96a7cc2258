"""The gradient checks and their diagnosis (issue 3)."""
from __future__ import annotations

import io

import numpy as np
import pytest

from conftest import ROOT
from grader.checks import REGISTRY
from grader.diagnosis import diagnose_array
from grader.intake import Submission, prepare
from grader.pipeline import GradeOptions, grade_submission, plan, run_tests
from grader.sandbox.client import LocalImpl
from grader.scoring import SubmissionResult, load_rubric
from grader.validate import load_variant, validate, variant_impl

CORRECT = sorted(p for p in (ROOT / "tests" / "fixtures" / "correct").iterdir() if p.is_dir())
BUGGY = sorted(p for p in (ROOT / "tests" / "fixtures" / "buggy").glob("*.py") if not p.name.startswith("_"))


def _checks_only(impl, secret: str) -> SubmissionResult:
    opts = GradeOptions(secret=secret, mnist=False)
    return run_tests(impl, opts, plan(opts.rubric, public_only=False, mnist=False), SubmissionResult("t", "ok"))


def test_grader_validate_passes():
    """Reference full marks, skeleton zero (not attempted), every buggy variant caught and named,
    MNIST tests included."""
    out = io.StringIO()
    assert validate(out=out) == 0, out.getvalue()
    assert f"({len(BUGGY)} known-buggy variants)" in out.getvalue()


def test_catalogue_is_large_and_covers_every_component():
    comps = [load_variant(p).COMPONENT for p in BUGGY]
    assert len(comps) >= 80
    for c in ("Linear", "ReLU", "LogSoftmax", "NLLLoss", "LogisticRegression"):
        assert comps.count(c) >= 5, c


def test_every_check_has_a_negative_control():
    """Each registered check is failed by at least one known-buggy variant."""
    failed = set()
    for path in BUGGY:
        r = _checks_only(variant_impl(load_variant(path)), "neg-control")
        failed |= {t.check for t in r.tests if t.score < t.max_score}
    missing = sorted(set(REGISTRY) - failed)
    assert not missing, f"checks no variant fails: {missing}"


@pytest.mark.parametrize("folder", CORRECT + [ROOT / "solutions"], ids=lambda p: p.name)
def test_correct_variants_get_full_marks_for_20_secrets(folder, tmp_path):
    prepared = prepare(Submission(folder.name, folder, "dir"), tmp_path)
    impl = LocalImpl.from_package_dir(prepared.package_dir)
    for i in range(20):
        r = _checks_only(impl, f"secret-{i}")
        lost = [(t.name, t.output) for t in r.tests if t.score < t.max_score]
        assert not lost, (i, lost[:2])


def test_at_least_five_differently_written_correct_variants():
    assert len(CORRECT) >= 5


def test_rubric_defaults_sum_to_100_and_cover_every_check():
    rubric = load_rubric()
    assert rubric.total == pytest.approx(100.0)
    assert set(rubric.checks) == set(REGISTRY)
    planned = plan(rubric, public_only=False, mnist=True)
    assert sum(p.max_score for p in planned) == pytest.approx(100.0)


def test_sandboxed_score_equals_in_process_score():
    folder = CORRECT[0]
    sub = Submission(folder.name, folder, "dir")
    opts = GradeOptions(secret="same", mnist=True)
    boxed = grade_submission(sub, opts)
    local = grade_submission(sub, GradeOptions(secret="same", mnist=True, sandbox=False))
    assert boxed.status == local.status == "ok"
    assert [(t.name, t.score) for t in boxed.tests] == [(t.name, t.score) for t in local.tests]
    assert boxed.score == boxed.max_score == 100
    assert boxed.isolation.get("landlock", "").startswith(("active", "unavailable"))


def test_buggy_variant_in_sandbox_scores_as_in_process(tmp_path):
    """The sandbox does not change a buggy submission's score either."""
    from conftest import make_submission

    folder = make_submission(tmp_path / "bob", replace={"layers.py": ("self.grad_b = grad_output.sum(axis=0)",
                                                                      "self.grad_b = grad_output.mean(axis=0)")})
    sub = Submission("bob", folder, "dir")
    a = grade_submission(sub, GradeOptions(secret="s", mnist=False))
    b = grade_submission(sub, GradeOptions(secret="s", mnist=False, sandbox=False))
    assert [(t.name, t.score, t.causes) for t in a.tests] == [(t.name, t.score, t.causes) for t in b.tests]
    assert any("scale_1_over_N" in t.causes for t in a.tests if t.component == "Linear")


# --- diagnosis units: each named cause against a negative control -----------------------------------

@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    return rng.standard_normal((5, 3)), rng.standard_normal((4, 4))


def test_diagnosis_names_transpose_scale_sign(arrays):
    n, sq = arrays
    assert diagnose_array(n.T.copy(), n, tol=1e-9, what="x").cause == "transposed"
    assert diagnose_array(sq.T.copy(), sq, tol=1e-9, what="x").cause == "transposed"
    assert diagnose_array(-n, n, tol=1e-9, what="x").cause == "sign"
    assert diagnose_array(n * 5, n, tol=1e-9, what="x", batch=5).cause == "scale_N"
    assert diagnose_array(n / 5, n, tol=1e-9, what="x", batch=5).cause == "scale_1_over_N"
    # a factor 2 in a single call is not accumulation (that is the backward-twice check's finding)
    assert diagnose_array(n * 2, n, tol=1e-9, what="x").cause == "wrong_values"
    assert diagnose_array(n + 1e-13, n, tol=1e-9, what="x").ok  # negative control: within tolerance


def test_diagnosis_validates_type_dtype_shape_finiteness(arrays):
    n, _ = arrays
    assert diagnose_array(n.tolist(), n, tol=1e-9, what="x").cause == "wrong_type"
    assert diagnose_array(np.matrix(n), n, tol=1e-9, what="x").cause == "wrong_type"
    assert diagnose_array(n.astype(np.float32), n, tol=1e-9, what="x").cause == "wrong_dtype"
    assert diagnose_array(n[:, None, :], n, tol=1e-9, what="x").cause == "wrong_shape"
    bad = n.copy(); bad[0, 0] = np.nan
    assert diagnose_array(bad, n, tol=1e-9, what="x").cause == "not_finite"
    assert diagnose_array(bad, n, tol=1e-9, what="x", unstable_context=True).cause == "unstable"
    b = n.sum(axis=0)
    assert diagnose_array(n, b, tol=1e-9, what="b", bias_of=n.shape).cause == "bias_not_summed"
    assert diagnose_array(b[None, :], b, tol=1e-9, what="b", bias_of=n.shape).cause == "bias_keepdims"
    assert not diagnose_array(np.full_like(n, np.nan), n, tol=np.inf, what="x").ok  # NaN never passes


def test_hidden_feedback_never_reveals_expected_values():
    """The feedback of a failing hidden check holds no number of the expected array."""
    mod = load_variant(ROOT / "tests/fixtures/buggy/linear_bias_mean.py")
    r = _checks_only(variant_impl(mod), "reveal")
    text = "\n".join(t.output for t in r.tests if t.visibility == "hidden")
    assert "bias" in text and "N times too small" in text
    import re
    numbers = re.findall(r"-?\d+\.\d{4,}", text)
    assert not numbers, numbers  # only summaries (%, sizes, 3-digit error figures), never array entries


# --- one mistake, one deduction, one named cause (issue 15) ---------------------------------------

from grader.diagnosis.causes import CAUSES, SYMPTOMS  # noqa: E402
from grader.validate import DATA_DEPENDENT, hidden_only, owners_problems  # noqa: E402


@pytest.mark.parametrize("path", BUGGY, ids=lambda p: p.stem)
def test_variant_is_caught_named_and_charged_only_by_its_checks(path):
    """Points lost only on the declared component, only by checks that own one of the declared causes,
    no check reporting a cause it does not own, the declared cause named (never a symptom class), and
    a public check failed whenever hidden points are lost."""
    mod = load_variant(path)
    assert mod.CAUSE in CAUSES and mod.CAUSE not in SYMPTOMS, mod.CAUSE
    r = _checks_only(variant_impl(mod), "per-variant")
    lost = {t.component for t in r.tests if t.score < t.max_score - 1e-9}
    assert lost == {mod.COMPONENT}, lost
    named = {c for t in r.tests for c in t.causes} - SYMPTOMS
    assert ({mod.CAUSE, *mod.ALSO} - SYMPTOMS) & named, named
    assert not owners_problems(mod, r)
    assert path.stem in DATA_DEPENDENT or not hidden_only(r)


def test_every_data_dependent_variant_exists_and_says_why():
    stems = {p.stem for p in BUGGY}
    for name, reason in DATA_DEPENDENT.items():
        assert name in stems and len(reason) > 20


def test_owned_causes_are_known_and_property_checks_own_little():
    for spec in REGISTRY.values():
        assert spec.owns <= set(CAUSES), spec.id
    # the property checks do not own value causes: a wrong value is never charged there again
    for cid in ("Linear.read_only", "Linear.backward_twice", "Linear.upstream", "Linear.float32"):
        assert not REGISTRY[cid].owns & {"wrong_values", "bias_not_summed", "transposed", "sign"}, cid


def test_no_hidden_only_check():
    """Every check also runs on the fixed public cases, so no rule is enforced by hidden cases only."""
    assert all(spec.public for spec in REGISTRY.values())


class _Zeros:
    """A do-nothing student: every method returns zeros of the right shape."""

    def __init__(self, *a, **k):
        self.W = self.b = self.w = None

    def forward(self, X, *rest):
        self._X = X
        return np.zeros((X.shape[0], self.W.shape[1])) if self.W is not None else np.zeros_like(X)

    def backward(self, G=1.0):
        self.grad_W, self.grad_b = np.zeros_like(self.W), np.zeros_like(self.b)
        return np.zeros_like(self._X)

    def parameters(self):
        return {"W": self.W, "b": self.b}

    def gradients(self):
        return {"W": self.grad_W, "b": self.grad_b}


def test_do_nothing_code_earns_no_property_points():
    """Negative control of the self-consistency checks: zeros are consistent with themselves, but
    there is nothing to judge, so read-only, twice, linearity and float32 give no credit."""
    import solutions.layers as L
    import solutions.logistic_regression as LR

    classes = {"Linear": _Zeros, "ReLU": L.ReLU, "LogSoftmax": L.LogSoftmax, "NLLLoss": L.NLLLoss,
               "LogisticRegression": LR.LogisticRegression}
    r = _checks_only(LocalImpl(classes), "zeros")
    for t in r.tests:
        if t.component == "Linear":
            assert t.score == 0, (t.name, t.output)
    assert any("untestable" in t.causes for t in r.tests if t.check == "Linear.upstream")


def test_scalar_loss_gets_no_least_squares_scale():
    loss = np.asarray(0.7)
    f = diagnose_array(np.asarray(0.3), loss, tol=1e-9, what="loss", scalar_ok=True, batch=5)
    assert f.cause == "wrong_values" and "times" not in f.detail and "differs" in f.detail
    assert diagnose_array(np.asarray(3.5), loss, tol=1e-9, what="loss", scalar_ok=True, batch=5).cause == "scale_N"
    assert diagnose_array(np.asarray(-0.7), loss, tol=1e-9, what="loss", scalar_ok=True, batch=5).cause == "sign"
    assert diagnose_array(np.asarray(0.7), loss, tol=1e-9, what="loss", scalar_ok=True, batch=5).ok


def test_bob_loses_only_the_bias_checks_and_mnist_names_the_bias(tmp_path):
    """The demo's bob: one mistake, Linear 15/18, MNIST-MLP names the bias gradient, and the cause
    is printed once at the top of the feedback."""
    from grader.report.feedback import render_feedback

    sub = Submission("bob", ROOT / "data/examples/bob_bias_bug.zip", "zip")
    r = grade_submission(sub, GradeOptions(secret="bob", sandbox=False))
    comps = r.component_scores()
    assert comps["Linear"] == (15.0, 18.0)
    lost = {t.check for t in r.tests if t.score < t.max_score}
    assert lost == {"Linear.backward_bias", "MNIST-MLP"}, lost
    mnist = next(t for t in r.tests if t.component == "MNIST-MLP")
    assert "bias_not_summed" in mnist.causes and "bias gradient" in mnist.output.splitlines()[0]
    assert "see the Linear checks" in mnist.output
    md = render_feedback(r)
    top = md.split("## LogisticRegression")[0]
    assert "## What to fix" in top and top.count("bias gradient not summed over the batch") == 1
    assert "Fix first:" in top
    assert md.count("gradient of b (grad_b) has shape") == 4  # the public check's cases only; hidden refers to it
    assert "Same cause as above" in md


def test_an_ambiguous_corner_case_takes_the_cause_its_check_names():
    """One mistake, one cause: for N = 1 a (1,) bias gradient is both "not summed" and "keepdims"; the
    case takes the cause the check's unambiguous cases name, and keeps its own when none does."""
    from grader.checks.base import CaseResult, reconcile

    G1 = np.ones((1, 3))
    f = diagnose_array(np.ones((1, 3)), G1.sum(axis=0), tol=1e-9, what="grad_b", bias_of=(1, 3))
    assert f.cause == "bias_not_summed" and f.also == ("bias_keepdims",)
    corner = CaseResult("N=1", False, f.cause, f.detail, f.also)
    firm = CaseResult("N=6", False, "bias_keepdims", "x")
    assert [c.cause for c in reconcile([firm, corner])] == ["bias_keepdims", "bias_keepdims"]
    other = CaseResult("N=6", False, "sign", "x")
    assert [c.cause for c in reconcile([other, corner])] == ["sign", "bias_not_summed"]
    assert reconcile([CaseResult("ok", True)])[0].ok
