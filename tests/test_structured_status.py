"""A row's status, its reason and an error's kind travel as fields, never parsed from text (issue 17).

The feedback a test shows is written for the student and may quote anything the student's code said;
what the grader decides from it must come from ``causes``, ``detail`` and the error's ``type``.
"""
from __future__ import annotations

from grader.checks.base import CaseResult, CheckResult, error_case
from grader.pipeline import Planned, row_status, score_check
from grader.sandbox.client import StudentError
from grader.scoring import load_rubric
from grader.scoring.results import SubmissionResult, TestResult

IMPORT_DETAIL = "layers.py could not be imported: SyntaxError: invalid syntax (layers.py, line 3) at layers.py, line 3"


def _test(output: str, causes=(), detail: str = "", name: str = "Linear: forward (public)") -> TestResult:
    return TestResult(name, "Linear", "Linear.forward", "public", 0.0 if causes else 1.0, 1.0, output,
                      tuple(causes), detail=detail)


def test_import_error_reason_is_the_detail_of_the_first_such_test():
    tests = [_test("Passed"), _test("- case: the file could not be imported. (cut)", ("import_error",), IMPORT_DETAIL)]
    assert row_status(tests) == ("error", IMPORT_DETAIL)


def test_text_that_looks_like_an_import_error_decides_nothing():
    """Negative control: a student's own message saying 'could not be imported' is only text."""
    said = "- N=6: raised ValueError: layers.py could not be imported: SyntaxError: a trick"
    assert row_status([_test(said, ("exception",), "raised ValueError: a trick")]) == ("ok", "")
    # and a real import error whose output was cut still names its file, from the field
    status, reason = row_status([_test("0 of 4 case(s) passed.", ("import_error",), IMPORT_DETAIL)])
    assert status == "error" and reason.startswith("layers.py could not be imported")


def test_timeout_reason_quotes_the_first_timed_out_test():
    tests = [_test("x", ("wrong_values",), "off by 2"),
             _test("y", ("timeout",), "no answer within 2 s", name="ReLU: forward (hidden)")]
    status, reason = row_status(tests)
    assert status == "timeout" and reason.endswith("first: ReLU: forward (hidden): no answer within 2 s")


def test_score_check_keeps_the_first_failing_case_detail():
    res = CheckResult("Linear.forward", "Linear", "forward", "public",
                      [CaseResult("a", True), CaseResult("b", False, "sign", "the sign is flipped\nsecond line"),
                       CaseResult("c", False, "wrong_values", "other")])
    p = Planned("Linear.forward", "Linear", "public", 2.0, "Linear: forward (public)")
    t = score_check(p, res, load_rubric())
    assert t.detail == "the sign is flipped second line" and t.causes == ("sign", "wrong_values")


def test_detail_survives_the_record_and_old_records_load():
    r = SubmissionResult("s", "error", "why", [_test("out", ("import_error",), IMPORT_DETAIL)])
    back = SubmissionResult.from_dict(r.to_dict())
    assert back.tests[0].detail == IMPORT_DETAIL
    old = r.to_dict()
    del old["tests"][0]["detail"]
    assert SubmissionResult.from_dict(old).tests[0].detail == ""
    assert "detail" not in r.to_gradescope()["tests"][0]  # results.json is unchanged (CONTRACT.md)


def test_a_skipped_call_is_named_by_the_earlier_failure_type_not_its_words():
    def skipped(type_: str, message: str) -> str:
        return error_case("c", StudentError({"kind": "skipped", "type": type_, "message": message})).cause

    assert skipped("Timeout", "not run: this call already crashed the worker") == "timeout"
    assert skipped("TimeBudget", "") == "timeout"
    assert skipped("WorkerDied", "not run: this call already timed out in an earlier check") == "crash"
    assert skipped("WorkerRestarted", "the worker was restarted after an earlier failure") == "crash"


def test_a_helper_module_of_the_students_own_is_named_as_not_part_of_a_submission():
    from grader.checks.base import error_case
    from grader.sandbox.oracle import StudentError

    def detail(message: str) -> str:
        info = {"kind": "import", "type": "ModuleNotFoundError", "message": message, "import_error": "layers",
                "where": "layers.py, line 4"}
        return error_case("c", StudentError(info)).detail

    assert "a module of your own such as utils.py is not" in detail("No module named 'assignment.utils'")
    for other in ("No module named 'cv2'", "No module named 'assignment.module'", "No module named 'scipy.x'"):
        assert "of your own" not in detail(other), other  # negative controls: a library, a provided file
