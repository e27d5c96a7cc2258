"""JUnit XML: one testsuite per submission, one testcase per test, as CI systems display it."""
from __future__ import annotations

import xml.etree.ElementTree as ET

from ..scoring.results import SubmissionResult

_XML_BAD = dict.fromkeys(c for c in range(32) if c not in (9, 10, 13))


def _clean(s: str) -> str:
    return str(s).translate(_XML_BAD)


def render_junit(results: list[SubmissionResult]) -> str:
    root = ET.Element("testsuites", name="backprop-grader")
    for r in sorted(results, key=lambda r: r.student):
        failures = sum(1 for t in r.tests if not t.passed)
        suite = ET.SubElement(root, "testsuite", name=_clean(r.student), tests=str(len(r.tests)),
                              failures=str(failures), errors="0", skipped="0")
        props = ET.SubElement(suite, "properties")
        for k, v in (("score", f"{r.score:g}"), ("max_score", f"{r.max_score:g}"), ("status", r.status)):
            ET.SubElement(props, "property", name=k, value=v)
        for t in r.tests:
            case = ET.SubElement(suite, "testcase", classname=_clean(f"{r.student}.{t.component}"),
                                 name=_clean(t.name))
            if not t.passed:
                f = ET.SubElement(case, "failure", message=_clean(f"{t.score:g}/{t.max_score:g} " + ", ".join(t.causes)),
                                  type=_clean(t.causes[0] if t.causes else "failed"))
                f.text = _clean(t.output)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
