"""What students see on Gradescope (issue 19): hidden tests after the due date, stdout and score
visibility from the rubric, Markdown output that cannot inject, and the optional leaderboard; every
results.json validated against a schema written from Gradescope's documented fields."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, make_submission

from grader.instructor.visibility import markdown, most_restrictive
from grader.scoring import SubmissionResult, TestResult
from grader.scoring.rubric import RubricError, load_rubric

jsonschema = pytest.importorskip("jsonschema")
SCHEMA = json.loads((ROOT / "grader/instructor/gradescope_results.schema.json").read_text())
RELU_AT_ZERO = ("layers.py", "return grad_output * (self._X > 0)", "return grad_output * (self._X >= 0)")


def validate(doc: dict) -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.validate(doc, SCHEMA, cls=jsonschema.Draft202012Validator)


def _grade(sub: Path, out: Path, *extra: str) -> dict:
    r = subprocess.run([sys.executable, "-m", "grader.cli", "grade", str(sub), "--out", str(out), "--no-mnist",
                        "--quiet", "--secret", "vis", *extra], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(next(out.glob("*/results.json")).read_text())


@pytest.fixture(scope="module")
def hidden_failing(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vis")
    return make_submission(tmp / "relu_at_zero", replace={RELU_AT_ZERO[0]: RELU_AT_ZERO[1:]}), tmp


def test_hidden_failing_submission_defaults(hidden_failing):
    sub, tmp = hidden_failing
    doc = _grade(sub, tmp / "default")
    validate(doc)
    failed = [t for t in doc["tests"] if t["status"] == "failed"]
    # Since issue 15 every rule a hidden test enforces has a public test too, so the bug fails both;
    # what matters here is how the failing hidden test is shown.
    assert any("hidden" in t["tags"] for t in failed)
    assert any(t["name"] == "ReLU: derivative 0 at exactly 0 (hidden)" for t in failed)
    for t in doc["tests"]:
        assert t["visibility"] == ("visible" if t["tags"][1] == "public" else "after_due_date"), t["name"]
        assert t["output_format"] == "md"
    assert doc["output_format"] == "md" and doc["stdout_visibility"] == "hidden"
    assert doc["visibility"] == "after_due_date"   # the total includes hidden points: not before the due date
    assert "leaderboard" not in doc


def test_rubric_sets_visibility(hidden_failing):
    sub, tmp = hidden_failing
    rubric = tmp / "rubric.toml"
    rubric.write_text((ROOT / "grader/scoring/default_rubric.toml").read_text()
                      + '\n[visibility]\npublic = "after_published"\nhidden = "hidden"\nstdout = "visible"\n')
    doc = _grade(sub, tmp / "custom", "--rubric", str(rubric))
    validate(doc)
    assert {t["visibility"] for t in doc["tests"] if t["tags"][1] == "public"} == {"after_published"}
    assert {t["visibility"] for t in doc["tests"] if t["tags"][1] == "hidden"} == {"hidden"}
    assert doc["visibility"] == "hidden" and doc["stdout_visibility"] == "visible"
    # changing only the visibility re-renders results.json without grading again
    rubric.write_text(rubric.read_text().replace('hidden = "hidden"', 'hidden = "visible"')
                      .replace('public = "after_published"', 'public = "visible"') + 'score = "visible"\n')
    key = next((tmp / "custom").glob("*/.grading-key")).read_bytes()
    doc = _grade(sub, tmp / "custom", "--rubric", str(rubric))
    assert {t["visibility"] for t in doc["tests"]} == {"visible"} and doc["visibility"] == "visible"
    assert next((tmp / "custom").glob("*/.grading-key")).read_bytes() == key


@pytest.mark.parametrize("table, message", [
    ('[visibility]\nhidden = "secret"', "hidden must be one of"),
    ('[visibility]\nscore = "sometimes"', "score must be one of"),
    ('[visibility]\nstudents = "visible"', "unknown keys students"),
    ('[leaderboard]\nenabled = "yes"', "enabled must be true or false"),
    ('[leaderboard]\nenabled = true\ncomponent = "Linear"', "component must be"),
])
def test_invalid_visibility_is_refused(tmp_path, table, message):
    p = tmp_path / "r.toml"
    p.write_text((ROOT / "grader/scoring/default_rubric.toml").read_text() + "\n" + table + "\n")
    with pytest.raises(RubricError, match=message):
        load_rubric(p)


def _result(**kw) -> SubmissionResult:
    tests = [TestResult("Linear: forward (public)", "Linear", "Linear.forward", "public", 1.0, 1.0, "ok"),
             TestResult("MNIST-MLP: accuracy after training (hidden)", "MNIST-MLP", "MNIST-MLP", "hidden", 20.0, 25.0,
                        "Test accuracy 0.9512")]
    return SubmissionResult("s", "ok", tests=tests, **kw)


def test_leaderboard(tmp_path):
    p = tmp_path / "r.toml"
    p.write_text((ROOT / "grader/scoring/default_rubric.toml").read_text() + "\n[leaderboard]\nenabled = true\n")
    pres = load_rubric(p).presentation
    r = _result(mnist={"MNIST-MLP": {"accuracy": 0.95123, "reference_accuracy": 0.96}},
                timings={"MNIST-MLP": 12.345, "checks": 1.0})
    doc = r.to_gradescope(presentation=pres)
    validate(doc)
    assert doc["leaderboard"] == [{"name": "MNIST-MLP accuracy", "value": 0.9512},
                                  {"name": "MNIST-MLP training time (s)", "value": 12.35, "order": "asc"}]
    assert "leaderboard" not in _result().to_gradescope(presentation=pres)       # MNIST did not run: no entry
    assert "leaderboard" not in r.to_gradescope()                                # not enabled: none


def test_markdown_output_cannot_inject():
    text = "expected <img src=x onerror=alert(1)> [click](javascript:alert(1)) *bold* grad_b\n# big\n1. list\nhttp://evil.example"
    md = markdown(text)
    for bad in ("<img", "*bold*", "\n# ", "\n1. ", "http://"):
        assert bad not in md, bad
    assert not re.search(r"(?<!\\)\]\(", md) and "\\[click\\]" in md   # no link: its brackets are escaped
    assert "&lt;img" in md and "grad\\_b" in md and md.count("  \n") == 3
    assert markdown("What to try: sum over the batch").startswith("**What to try:**")


def test_score_visibility_follows_the_most_restrictive_test():
    assert most_restrictive(["visible", "after_due_date"]) == "after_due_date"
    assert most_restrictive(["visible", "hidden", "after_published"]) == "hidden"
    assert most_restrictive(["visible"]) == "visible"
    doc = _result().to_gradescope()
    validate(doc)
    assert doc["visibility"] == "after_due_date"


def test_schema_rejects_what_gradescope_would_not_read():
    doc = _result().to_gradescope()
    for broken in ({**doc, "visibility": "later"},
                   {**doc, "tests": [{**doc["tests"][0], "status": "ok"}]},
                   {**doc, "output_format": "markdown"},
                   {**doc, "leaderboard": [{"name": "x"}]}):
        with pytest.raises(jsonschema.ValidationError):
            validate(broken)


def test_gradescope_bundle_refuses_a_late_table(tmp_path):
    # on Gradescope, lateness is the assignment's setting; a bundled [late] would only break grading
    rubric = tmp_path / "r.toml"
    rubric.write_text((ROOT / "grader/scoring/default_rubric.toml").read_text()
                      + '\n[late]\ndeadline = 2026-12-01T12:00:00Z\nper_day = 10\n')
    r = subprocess.run([sys.executable, "-m", "grader.cli", "gradescope", str(tmp_path / "ag.zip"), "--rubric",
                        str(rubric)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 2 and "[late]" in r.stderr and not (tmp_path / "ag.zip").exists()
