"""GitHub Classroom: the runner result its autograding reporter reads, and the points notice.

The reporter action reads, for each runner id ``R`` it is given, the environment variable
``R_RESULTS`` holding base64 of a JSON document ``{"version": 1, "status": "pass"|"fail"|"error",
"max_score": M, "tests": [{"name", "status", "score", "message", "test_code", "filename",
"line_no", "execution_time"}]}``; it adds up the tests' ``score`` and the runners' ``max_score`` and
announces ``Points <total>/<max>`` as a notice titled "Autograding complete", plus
``{"totalPoints": ..., "maxPoints": ...}`` titled "Autograding report"; Classroom takes the points
from these notices. ``--format classroom`` writes the runner document to ``$GITHUB_OUTPUT`` as
``result`` (a step with ``id: backprop`` feeds ``BACKPROP_RESULTS`` of the reporter) and to
``classroom.json`` in the output folder, and prints the same two notices itself, so a workflow
without the reporter reports points too (set ``GRADER_CLASSROOM_NOTICE=0`` when the reporter runs,
so the points are not announced twice).

One test per component, with the component's points (to the grader's 4 decimals). The reporter adds
them up in doubles and may print float noise (``8.625000000000002``); the notices printed here round
the same sum to 4 decimals, so a correct submission is announced with exactly its maximum.
"""
from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path

from ..scoring.results import SubmissionResult



def _order() -> tuple[str, ...]:
    """The gradebook's column order, from the assignment spec."""
    from ..spec import current_spec

    return current_spec().test_ids


def _clean(text: str) -> str:
    """Message text: no line may start with ``::`` (a workflow command) and no control characters."""
    lines = []
    for line in text.splitlines():
        line = "".join(c if c.isprintable() else "?" for c in line)
        lines.append(("  " + line) if line.lstrip().startswith("::") else line)
    return "\n".join(lines)[:2000]


def runner_result(r: SubmissionResult) -> dict:
    comps = r.component_scores()
    columns = _order()
    order = sorted(comps, key=lambda c: columns.index(c) if c in columns else 99)
    tests = []
    for comp in order:
        score, top = comps[comp]
        mine = [t for t in r.tests if t.component == comp]
        failed = [t for t in mine if not t.passed]
        message = ("; ".join(f"{t.name.split(': ', 1)[-1]} {t.score:g}/{t.max_score:g}" for t in failed)
                   or "all checks passed")
        tests.append({"name": comp, "status": "fail" if failed else "pass", "score": score,
                      "message": _clean(message), "test_code": "", "filename": "", "line_no": 0,
                      "execution_time": f"{r.timings.get(comp, 0.0):.2f}s"})
    status = "error" if r.status != "ok" else ("fail" if any(t["status"] == "fail" for t in tests) else "pass")
    return {"version": 1, "status": status, "max_score": r.max_score, "tests": tests}


def js_number(x: float) -> str:
    """How JavaScript prints a Number (integers without a decimal point)."""
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def points(doc: dict) -> tuple[float, float]:
    """What the reporter adds up: the tests' scores, and max_score (in its order, in doubles)."""
    total = 0.0
    for t in doc["tests"]:
        total += t["score"]
    return total, 0.0 + doc["max_score"]


def notices(doc: dict) -> list[str]:
    total, top = points(doc)
    total, top = round(total, 4), round(top, 4)  # the grader's own precision: no float noise in the notice
    return [f"::notice title=Autograding complete::Points {js_number(total)}/{js_number(top)}",
            "::notice title=Autograding report::" + json.dumps({"totalPoints": total, "maxPoints": top},
                                                                 separators=(",", ":"))]


def emit(results: list[SubmissionResult], out: Path | None) -> int:
    """``--format classroom``: exactly one submission (a student repository) reports points."""
    if len(results) != 1:
        print(f"error: --format classroom reports one submission, got {len(results)}", file=sys.stderr)
        return 2
    doc = runner_result(results[0])
    encoded = base64.b64encode(json.dumps(doc).encode()).decode()
    if out is not None:
        from ..report import write_json

        write_json(out / "classroom.json", doc)
    gh_out = os.environ.get("GITHUB_OUTPUT")
    if gh_out:
        with open(gh_out, "a", encoding="utf-8") as fh:
            fh.write(f"result={encoded}\n")
    for t in doc["tests"]:
        mark = "PASS" if t["status"] == "pass" else "FAIL"
        print(f"[{mark}] {t['name']}: {t['score']:g} ({t['message']})")
    if os.environ.get("GRADER_CLASSROOM_NOTICE", "1") != "0":
        for line in notices(doc):
            print(line)
    return 0
