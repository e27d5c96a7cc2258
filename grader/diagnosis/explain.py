"""Feedback text: what a student reads about one check, written from its case results."""
from __future__ import annotations

import re

from .causes import CAUSES

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)?|\x1b.")
_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def sanitize(text: str, limit: int = 600, *, one_line: bool = False) -> str:
    """Student-derived text made safe for feedback, logs and CI: no escape sequences, no control
    characters, bounded length, and (``one_line``) no line breaks that could start a new record."""
    text = _ANSI.sub("", str(text))
    text = _CTRL.sub("", text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    "))
    if one_line:
        text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 15] + " ...[truncated]"
    return text


def explain(result) -> str:
    """Feedback for one check result (a ``CheckResult``): a line per failing case, then what to try."""
    n = len(result.cases)
    passed = sum(c.ok for c in result.cases)
    if result.passed:
        return f"Passed: {passed} of {n} case(s). {result.note}".strip()
    if result.not_attempted:
        return f"Not attempted: {sanitize(result.cases[0].detail, 300, one_line=True)}"
    lines = [f"{passed} of {n} case(s) passed. Checked: {result.note}"]
    for c in result.cases:
        if c.ok:
            continue
        title = CAUSES[c.cause].title if c.cause in CAUSES else (c.cause or "failed")
        lines.append(f"- {sanitize(c.label, 120, one_line=True)}: {title}. {sanitize(c.detail, 500, one_line=True)}")
    hints = [CAUSES[c].hint for c in result.causes if c in CAUSES]
    if hints:
        lines.append("What to try: " + " ".join(dict.fromkeys(hints)))
    if result.visibility == "hidden":
        lines.append("(Hidden cases: the expected values are not shown.)")
    return "\n".join(lines)
