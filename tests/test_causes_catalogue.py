"""Every cause id emitted anywhere is in the catalogue (issue 17).

A cause missing from ``grader/diagnosis/causes.py`` has no title and no hint: the student reads a bare
id. The ids are collected from the source with ``ast`` wherever the grader writes one: ``cause=`` /
``causes=`` / ``owns=`` arguments (and the constants they name), a ``CaseResult``'s or ``Finding``'s
cause argument, ``run.fail(cause, ...)``, assignments and comparisons of a ``cause``-named variable,
and the known wrong answers of ``mutants`` functions; and from every known-buggy variant's ``CAUSE``
and ``ALSO``.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from grader.diagnosis.causes import CAUSES, RUN_FAILURES, SYMPTOMS

ROOT = Path(__file__).resolve().parent.parent
ID = re.compile(r"^[a-z][A-Za-z0-9_]*$")
#: the cause argument's position in the calls that make a verdict
CAUSE_ARG = {"CaseResult": 2, "Finding": 1, "fail": 0, "zero_test": 2}


def _strings(node) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [s for e in node.elts for s in _strings(e)]
    if isinstance(node, ast.BinOp):
        return _strings(node.left) + _strings(node.right)
    if isinstance(node, ast.IfExp):
        return _strings(node.body) + _strings(node.orelse)
    return []


def _name(node) -> str:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""


def emitted_causes(source: str) -> set[str]:
    """The cause ids a module's source writes (see the module docstring for where they are looked for)."""
    tree = ast.parse(source)
    top = {t.id: st.value for st in tree.body if isinstance(st, ast.Assign) for t in st.targets
           if isinstance(t, ast.Name)}
    got: list[str] = []
    for n in ast.walk(tree):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and "mutants" in n.name:
            got += [t.elts[0].value for t in ast.walk(n) if isinstance(t, ast.Tuple) and t.elts
                    and isinstance(t.elts[0], ast.Constant) and isinstance(t.elts[0].value, str)]
        elif isinstance(n, ast.Call):
            pos = CAUSE_ARG.get(_name(n.func))
            if pos is not None and len(n.args) > pos:
                got += _strings(n.args[pos])
            for k in n.keywords:
                if k.arg in ("cause", "causes", "owns"):
                    got += _strings(k.value)
                    got += [s for x in ast.walk(k.value) if isinstance(x, ast.Name) and x.id in top
                            for s in _strings(top[x.id])]
        elif isinstance(n, ast.Assign) and any("cause" in _name(t).lower() for t in n.targets):
            got += _strings(n.value)
        elif isinstance(n, ast.Compare) and any("cause" in _name(s).lower() for s in [n.left, *n.comparators]):
            got += [s for side in [n.left, *n.comparators] for s in _strings(side)]
    return {s for s in got if ID.match(s)}


def test_the_collector_finds_every_form():
    """Negative control: each form of emission is seen (so a new unknown id cannot slip through)."""
    src = ('V = ("v_a",)\nCaseResult("l", False, "c_a", "d")\nFinding(False, "c_b")\nrun.fail("c_c", "x")\n'
           'check("X", "t", owns=V + ("c_d",))\ncause = "c_e" if x else "c_f"\nif t.cause == "c_g": pass\n'
           'def mutants(part, case, ref):\n    return [("c_h", 1, "why")]\nzero_test(p, "out", "c_i")\n'
           'f(label="not_a_cause")\n')
    assert emitted_causes(src) == {"v_a", "c_a", "c_b", "c_c", "c_d", "c_e", "c_f", "c_g", "c_h", "c_i"}


def test_every_cause_the_grader_emits_is_in_the_catalogue():
    where: dict[str, list[str]] = {}
    for path in sorted((ROOT / "grader").rglob("*.py")):
        if path.name != "causes.py":
            for c in emitted_causes(path.read_text(encoding="utf-8")):
                where.setdefault(c, []).append(str(path.relative_to(ROOT)))
    unknown = {c: w for c, w in where.items() if c not in CAUSES}
    assert not unknown, f"cause ids not in grader/diagnosis/causes.py: {unknown}"
    assert len(where) > 30  # the collector is reading the checks, not nothing


def test_symptom_and_run_failure_ids_are_catalogued():
    assert SYMPTOMS <= set(CAUSES) and RUN_FAILURES <= set(CAUSES)


@pytest.mark.parametrize("path", sorted((ROOT / "tests" / "fixtures" / "buggy").glob("*.py")), ids=lambda p: p.stem)
def test_every_buggy_variant_declares_catalogued_causes(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    decl = {t.id: st.value for st in tree.body if isinstance(st, ast.Assign) for t in st.targets
            if isinstance(t, ast.Name) and t.id in ("CAUSE", "ALSO")}
    assert "CAUSE" in decl, f"{path.name} declares no CAUSE"
    declared = _strings(decl["CAUSE"]) + _strings(decl.get("ALSO", ast.Tuple(elts=[])))
    assert declared and set(declared) <= set(CAUSES), f"{path.name}: {sorted(set(declared) - set(CAUSES))}"
