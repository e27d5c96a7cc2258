"""MNIST tests: reference accuracy, an independent check with scikit-learn, integrity (issue 5)."""
from __future__ import annotations

import numpy as np
import pytest

from grader.checks.mnist import LOGREG, MLP, datasets, train_and_score
from grader.pipeline import GradeOptions, plan, reference_impl, reference_mnist, run_tests
from grader.scoring import SubmissionResult, load_rubric
from grader.validate import load_variant, variant_impl
from conftest import ROOT


@pytest.fixture(scope="module")
def data():
    return datasets()


def test_reference_reaches_the_protocol_targets(data):
    ref = reference_mnist("mnist-test")
    assert ref["MNIST-MLP"]["accuracy"] >= 0.96  # its cost is measured in bench/, not asserted here
    assert ref["MNIST-LogReg"]["accuracy"] >= 0.94


def test_reference_logreg_agrees_with_scikit_learn(data):
    from sklearn.linear_model import LogisticRegression as SkLR

    d = data["logreg"]
    run = train_and_score(reference_impl(), LOGREG, d, secret="sk")
    X = d.X_train.astype(np.float32) / 255.0
    sk = SkLR(max_iter=300, C=1.0).fit(X, d.y_train)
    sk_acc = float(np.mean(sk.predict(d.X_test) == d.y_test))
    assert abs(run.accuracy - sk_acc) < 0.02, (run.accuracy, sk_acc)


def test_broken_training_loses_mnist_points_and_names_the_layer():
    rubric = load_rubric()
    opts = GradeOptions(secret="m", mnist=True, reference_mnist=reference_mnist("m"))
    planned = [p for p in plan(rubric, public_only=False, mnist=True) if p.check == "MNIST-MLP"]
    mod = load_variant(ROOT / "tests/fixtures/buggy/linear_ignores_upstream.py")
    r = run_tests(variant_impl(mod), opts, planned, SubmissionResult("x", "ok"))
    assert r.tests[0].score < r.tests[0].max_score
    mod = load_variant(ROOT / "tests/fixtures/buggy/linear_bias_not_summed.py")
    r = run_tests(variant_impl(mod), opts, planned, SubmissionResult("x", "ok"))
    assert r.tests[0].score == 0 and "b1" in r.tests[0].output


def test_skeleton_gets_zero_without_crash(data):
    import assignment.layers as SL
    import assignment.logistic_regression as SLR
    from grader.sandbox.client import LocalImpl

    run = train_and_score(LocalImpl.from_modules(SL, SLR), MLP, data["mlp"], secret="s")
    assert run.accuracy is None and run.error.cause == "not_attempted"


def test_tampered_checkpoints_are_caught(data):
    """A worker that reports weights it did not train (e.g. shipped pretrained ones) fails the replay."""
    from grader.sandbox.client import LocalImpl

    class Tamper(LocalImpl):
        def train(self, spec, params, order, timeout):
            reply, out = super().train(spec, params, order, timeout)
            for a in out:  # pretend the run ended somewhere else
                a += np.float32(0.01)
            return reply, out

    import solutions.layers as L, solutions.logistic_regression as LR
    impl = Tamper.from_modules(L, LR)
    run = train_and_score(impl, LOGREG, data["logreg"], secret="t")
    assert run.accuracy is None and run.error.cause == "inconsistent_training"
