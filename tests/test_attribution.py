"""A failing MNIST test names the cause the component checks found (issue 15)."""
from __future__ import annotations

from grader.diagnosis.attribution import attribute_mnist
from grader.scoring import SubmissionResult, TestResult


def _result(mnist_output: str, mnist_causes: tuple, *, comp_causes=("bias_not_summed",), mnist=None):
    bias = TestResult("Linear: backward: dL/db (hidden)", "Linear", "Linear.backward_bias", "hidden", 0.0, 2.25,
                      "shape (8, 4)", comp_causes)
    relu = TestResult("ReLU: forward (hidden)", "ReLU", "ReLU.forward", "hidden", 1.5, 1.5, "Passed")
    m = TestResult("MNIST-MLP: accuracy after training (hidden)", "MNIST-MLP", "MNIST-MLP", "hidden", 0.0, 25.0,
                   mnist_output, mnist_causes)
    return SubmissionResult("s", "ok", tests=[bias, relu, m], mnist=mnist or {})


def test_training_stop_names_the_component_and_its_cause():
    r = _result("wrong shape: training stopped at step 1: gradient b1 has shape (64, 100)", ("wrong_shape",),
                mnist={"MNIST-MLP": {"failure": {"component": "Linear", "method": "backward", "kind": "shape",
                                                 "step": 1}}})
    attribute_mnist(r)
    m = r.tests[-1]
    first = m.output.splitlines()[0]
    assert first.startswith("training stopped at step 1: in Linear, bias gradient not summed over the batch")
    assert "see the Linear checks" in first and m.causes == ("bias_not_summed",) and m.score == 0


def test_structured_fields_of_a_new_mnist_test_are_used():
    r = _result("training failed", ("exception",),
                mnist={"MNIST-MLP": {"failure": {"component": "Linear", "method": "backward", "kind": "shape", "step": 3}}})
    attribute_mnist(r)
    assert r.tests[-1].output.startswith("training stopped at step 3: in Linear")


def test_first_batch_disagreement_is_an_ordinary_bug_not_tampering():
    from grader.diagnosis.causes import CAUSES

    text = ("training run not reproducible: on the first MNIST batch your gradient of W1 does not point where "
            "backpropagation's does (cosine 0.12); a run that reached a good accuracy anyway is flagged for review\n"
            f"What to try: {CAUSES['inconsistent_training'].hint}\nProtocol: mlp 784-100-10")
    r = _result(text, ("inconsistent_training",), comp_causes=("softmax_jacobian",),
                mnist={"MNIST-MLP": {"failure": {"component": "LogSoftmax", "method": "backward",
                                                 "kind": "direction", "step": 1}}})
    r.tests[0] = TestResult("LogSoftmax: backward (hidden)", "LogSoftmax", "LogSoftmax.backward", "hidden", 0.0, 2.6,
                            "x", ("softmax_jacobian",))
    attribute_mnist(r)
    m = r.tests[-1]
    assert m.output.startswith("your gradients on the first MNIST batch disagree with backpropagation: in LogSoftmax")
    assert "see the LogSoftmax checks" in m.output
    assert "flagged" not in m.output and "not reproducible" not in m.output and "inconsistent_training" not in m.causes
    assert "Protocol" in m.output


def test_nothing_to_repeat_leaves_the_test_alone():
    """Negative control: no component check found a named cause (only a symptom), so nothing is claimed."""
    r = _result("training stopped at step 5: diverged", ("not_learning",), comp_causes=("wrong_values",))
    before = r.tests[-1]
    attribute_mnist(r)
    assert r.tests[-1] == before


def test_replay_mismatch_is_left_alone():
    """Negative control: a replay that does not reproduce (tampering, hidden state) keeps its message."""
    text = ("replaying SGD steps 1-25 with your layers gave different W1 than the training run reported. This "
            "happens when layers keep state in global or class variables, use randomness, or the run was "
            "tampered with; flagged for review")
    r = _result(text, ("inconsistent_training",))
    before = r.tests[-1]
    attribute_mnist(r)
    assert r.tests[-1] == before


def test_the_words_of_the_output_are_not_parsed():
    """Issue 17: what happened comes from the MNIST record's fields; an output that merely mentions a
    step and another component (student text can) changes nothing about which component is blamed."""
    r = _result("training stopped at step 4 in ReLU", ("exception",),
                mnist={"MNIST-MLP": {"failure": {"component": "Linear", "method": "forward", "kind": "exception",
                                                 "step": 2}}})
    attribute_mnist(r)
    assert r.tests[-1].output.startswith("training stopped at step 2: in Linear")
    plain = _result("on the first MNIST batch: training stopped at step 4", ("exception",))
    attribute_mnist(plain)
    assert plain.tests[-1].output.startswith("training failed: in Linear")
