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
    assert len(comps) >= 25
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
    assert diagnose_array(n * 2, n, tol=1e-9, what="x").cause == "accumulates"
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
