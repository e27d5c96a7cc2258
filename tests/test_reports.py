"""Reports: spreadsheet-safe gradebook, JUnit, GitHub output that student text cannot forge."""
from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET

from grader.diagnosis.explain import sanitize
from grader.report import github_annotations, github_summary, render_feedback, render_gradebook, render_junit
from grader.report.gradebook import safe_cell
from grader.scoring import SubmissionResult, TestResult


def _result(student="=HYPERLINK(\"x\")", output="bad\n::set-output name=x::1\x1b[31m") -> SubmissionResult:
    t1 = TestResult("Linear: forward (hidden)", "Linear", "Linear.forward", "hidden", 1.0, 3.0, output, ("wrong_values",))
    t2 = TestResult("ReLU: forward (hidden)", "ReLU", "ReLU.forward", "hidden", 2.0, 2.0, "Passed")
    return SubmissionResult(student, "ok", tests=[t1, t2])


def test_gradebook_neutralises_formulas():
    rows = list(csv.reader(io.StringIO(render_gradebook([_result(), _result("-2+3"), _result("@cmd")]))))
    cells = [r[0] for r in rows[1:]]
    assert all(c.startswith("'") for c in cells)
    assert safe_cell("alice") == "alice"


def test_junit_is_valid_xml_with_failures():
    root = ET.fromstring(render_junit([_result(output="x\x00\x07y")]))
    suite = root.find("testsuite")
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    assert suite.find("testcase/failure") is not None


def test_github_annotations_cannot_inject_commands():
    lines = github_annotations([_result()])
    assert lines and all(line.startswith("::error title=") for line in lines)
    for line in lines:
        assert "\n" not in line and line.count("::") == 2  # only the command's own delimiters
    assert "::set-output" not in github_summary([_result()])


def test_sanitize_strips_escapes_and_bounds_length():
    s = sanitize("\x1b[2J\x1b]0;title\x07ok\x00\u202e" + "x" * 5000, 100, one_line=True)
    assert "\x1b" not in s and "\x00" not in s and "\u202e" not in s and len(s) <= 100


def test_feedback_lists_components_and_causes():
    md = render_feedback(_result("alice"))
    assert "## Linear: 1 / 3" in md and "FAIL" in md and "Named causes: wrong values" in md
