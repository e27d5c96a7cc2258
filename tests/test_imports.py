"""The import matrix: whatever runs in the student's notebook runs in the grader.

Each line below is spliced into the reference solution (after its ``from __future__`` line), once as a
``.py`` submission and once as an untagged notebook whose code cells are the two files; every one
must get full marks in the real sandbox, with every isolation layer this machine offers active.
The whole matrix is graded as one batch (two jobs), without MNIST; two lines are graded with MNIST.
Blocked imports, the ``assignment`` package forms and the path hygiene of every output file are
tested here too.
"""
from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

from grader.batch import grade_batch
from grader.pipeline import GradeOptions
from grader.sandbox.client import SandboxConfig

ROOT = Path(__file__).resolve().parent.parent
SECRET = "import-matrix-secret"

MATRIX = [
    "import signal", "import unittest", "import numpy.testing as npt", "import gzip", "import socket",
    "import matplotlib.pyplot as plt", "from tqdm import tqdm", "from scipy.special import logsumexp",
    "import os, sys, time, math", "import functools, itertools", "from typing import Optional, List",
    "from dataclasses import dataclass", "import abc", "import copy", "import warnings",
    "from pathlib import Path", "import collections", "import numbers", "import random", "import re",
    "import json", "import pickle", "import traceback", "import inspect", "import weakref", "import enum",
    "import operator", "import contextlib", "import numpy.linalg as la",
    "from numpy.lib.stride_tricks import sliding_window_view", "import numpy.random as npr",
    "import numpy.fft", "import matplotlib", "from tqdm.auto import tqdm",
    "from IPython.display import display, clear_output", "import scipy.special", "import logging",
    "import csv", "import struct", "import heapq, bisect, statistics", "import threading",
    "import tempfile", "import urllib.request", "import multiprocessing", "import sqlite3",
]
MNIST_LINES = ["import matplotlib.pyplot as plt", "from scipy.special import logsumexp"]
BLOCKED = ["import sympy", "import torch", "import autograd", "from jax import grad", "import numdifftools"]
PACKAGE_FORMS = {
    # file -> (old, new): each form of importing the student's own package, inside a student file
    "from_assignment": ("logistic_regression.py", "from .module import Module", "from assignment import Module, Linear"),
    "from_assignment_layers": ("logistic_regression.py", "from .module import Module",
                               "from .module import Module\nfrom assignment.layers import ReLU"),
    "import_assignment_module": ("logistic_regression.py", "from .module import Module",
                                 "import assignment.module as m\nModule = m.Module"),
    "relative_layers": ("logistic_regression.py", "from .module import Module",
                        "from .module import Module\nfrom .layers import Linear"),
    "relative_module": ("layers.py", "from .module import Module", "from .module import Module  # the provided base"),
    # every provided file is importable (CONTRACT section 1), train.py too: it imports the layers,
    # so only once they are defined (as on the student's machine: above them it is a circular import)
    "provided_data": ("logistic_regression.py", "from .module import Module",
                      "from .module import Module\nfrom .data import load_mnist, binary_pair"),
    "provided_data_absolute": ("layers.py", "from .module import Module",
                               "from .module import Module\nfrom assignment.data import load_mnist"),
    "provided_gradcheck": ("layers.py", "from .module import Module",
                           "from .module import Module\nimport assignment.gradcheck as gc"),
    "provided_train_in_a_function": ("logistic_regression.py", "from .module import Module",
                                     "from .module import Module\n\n\ndef _experiment():\n"
                                     "    from assignment.train import train_logistic\n    return train_logistic"),
}


def slug(line: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", line.lower()).strip("_")[:60]


def spliced(text: str, line: str) -> str:
    marker = "from __future__ import annotations\n"
    assert marker in text
    return text.replace(marker, marker + line + "\n", 1)


def reference(name: str) -> str:
    return (ROOT / "solutions" / name).read_text()


def write_py(folder: Path, line: str) -> None:
    folder.mkdir(parents=True)
    for name in ("layers.py", "logistic_regression.py"):
        (folder / name).write_text(spliced(reference(name), line))


def write_notebook(path: Path, line: str) -> None:
    """An untagged notebook as a student writes it: a setup cell, then the two files' code."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# My solution"),
                nbformat.v4.new_code_cell(f"%matplotlib inline\n{line}\nimport numpy as np"),
                nbformat.v4.new_code_cell(spliced(reference("layers.py"), line)),
                nbformat.v4.new_code_cell(spliced(reference("logistic_regression.py"), line))]
    nbformat.write(nb, str(path))


def isolation_ok(iso: dict[str, str]) -> None:
    """Every layer this machine offers is active; a missing one says why."""
    from grader.sandbox.isolation import landlock_abi

    assert iso, "no isolation report"
    for name in ("rlimits", "network", "seccomp"):
        assert iso[name].startswith("active"), (name, iso[name])
    if landlock_abi() >= 1:
        assert iso["landlock"].startswith("active"), iso["landlock"]
    import os

    if os.geteuid() == 0:
        assert iso["user"].startswith("active"), iso["user"]
        assert iso["view"].startswith("active"), iso["view"]
    for v in iso.values():
        assert v.startswith("active") or "unavailable:" in v or v.startswith(("process group", "every process")), v


def _full_marks(outcome, out: Path) -> list[str]:
    bad = []
    for r in outcome.results:
        tests = json.loads((out / r.student / "results.json").read_text())["tests"]
        lost = [t["name"] + ": " + t["output"][:300] for t in tests if t["score"] < t["max_score"]]
        if r.status != "ok" or lost:
            bad.append(f"{r.student}: {r.status} {r.reason} {lost[:2]}")
    return bad


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    base = tmp_path_factory.mktemp("matrix")
    subs = base / "subs"
    subs.mkdir()
    for line in MATRIX:
        write_py(subs / f"py_{slug(line)}", line)
        write_notebook(subs / f"nb_{slug(line)}.ipynb", line)
    outcome = grade_batch(subs, base / "out", GradeOptions(secret=SECRET, mnist=False), jobs=2)
    return outcome, base / "out"


def test_matrix_is_large_enough() -> None:
    assert len(MATRIX) >= 30 and len(set(MATRIX)) == len(MATRIX)


def test_every_line_gets_full_marks(matrix) -> None:
    outcome, out = matrix
    assert len(outcome.results) == 2 * len(MATRIX)
    assert _full_marks(outcome, out) == []


def test_every_layer_reported_active(matrix) -> None:
    outcome, _ = matrix
    for r in outcome.results:
        isolation_ok(r.isolation)


@pytest.mark.slow
def test_matrix_lines_with_mnist(tmp_path: Path) -> None:
    subs = tmp_path / "subs"
    subs.mkdir()
    for line in MNIST_LINES:
        write_py(subs / f"py_{slug(line)}", line)
        write_notebook(subs / f"nb_{slug(line)}.ipynb", line)
    outcome = grade_batch(subs, tmp_path / "out", GradeOptions(secret=SECRET, mnist=True), jobs=2)
    assert _full_marks(outcome, tmp_path / "out") == []
    assert all(r.mnist for r in outcome.results)


# --- blocked imports, the student's own package, and what the feedback shows --------------------------

def _hostile_bypass(line: str) -> str:
    """Clears every finder the grader added, then imports: the file system must still refuse."""
    return ("import sys\n"
            "sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != 'BlockedImport']\n"
            f"{line}\n")


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """Blocked imports (plain and after clearing sys.meta_path), package forms, buggy and crashing ones."""
    base = tmp_path_factory.mktemp("mixed")
    subs = base / "subs"
    subs.mkdir()
    for line in BLOCKED:
        write_py(subs / f"blocked_{slug(line)}", line)
        write_py(subs / f"bypass_{slug(line)}", _hostile_bypass(line).rstrip("\n"))
    for name, (fname, old, new) in PACKAGE_FORMS.items():
        d = subs / f"pkg_{name}"
        d.mkdir()
        for f in ("layers.py", "logistic_regression.py"):
            text = reference(f)
            if f == fname:
                assert old in text
                text = text.replace(old, new, 1)
            (d / f).write_text(text)
    d = subs / "buggy"
    write_py(d, "import numpy")
    assert "grad_output.sum(axis=0)" in reference("layers.py")
    (d / "layers.py").write_text(reference("layers.py").replace("grad_output.sum(axis=0)", "grad_output.mean(axis=0)", 1))
    d = subs / "crashing"
    write_py(d, "import numpy")
    (d / "layers.py").write_text(reference("layers.py") + "\nraise RuntimeError('crashed in ' + __file__)\n")
    d = subs / "missing_attr"
    write_py(d, "from scipy.special import does_not_exist")
    d = subs / "list_gradients"
    write_py(d, "import numpy")
    (d / "layers.py").write_text(reference("layers.py") + "\n\nLinear.gradients = lambda self: [self.grad_W, self.grad_b]\n")
    outcome = grade_batch(subs, base / "out", GradeOptions(secret=SECRET, mnist=False), jobs=2)
    return {r.student: r for r in outcome.results}, base / "out"


@pytest.mark.parametrize("line", BLOCKED)
def test_blocked_import_has_the_policy_message(mixed, line: str) -> None:
    results, out = mixed
    r = results[f"blocked_{slug(line)}"]
    pkg = line.split()[1].split(".")[0]
    assert r.status == "error"
    text = (out / r.student / "results.json").read_text()
    assert f"'{pkg}" in text and "blocked by the grader" in text and "Use numpy" in text, text[:2000]


@pytest.mark.parametrize("line", BLOCKED)
def test_clearing_meta_path_does_not_unblock(mixed, line: str) -> None:
    results, out = mixed
    r = results[f"bypass_{slug(line)}"]
    assert r.status == "error", r.reason
    layers = [t for t in r.tests if t.component in ("Linear", "ReLU", "LogSoftmax", "NLLLoss")]
    assert layers and all(t.score == 0 for t in layers)
    assert "No module named" in " ".join(t.output for t in layers) or "blocked" in r.reason


def test_installed_blocked_library_is_invisible(mixed) -> None:
    """sympy is installed on this machine (a scipy/matplotlib dependency elsewhere): not readable."""
    pytest.importorskip("sympy")
    results, _ = mixed
    assert "No module named 'sympy'" in results["bypass_import_sympy"].reason


@pytest.mark.parametrize("name", sorted(PACKAGE_FORMS))
def test_the_package_the_student_knows(mixed, name: str) -> None:
    results, out = mixed
    r = results[f"pkg_{name}"]
    assert r.status == "ok" and r.score == r.max_score, (r.reason, [t.output[:300] for t in r.tests if t.score < t.max_score])


def test_list_from_gradients_is_the_students_error(mixed) -> None:
    results, out = mixed
    r = results["list_gradients"]
    assert r.status != "error" or "internal" not in r.reason
    text = (out / "list_gradients" / "results.json").read_text()
    assert "gradients() returned a list" in text
    assert "AttributeError" not in text and "internal grader error" not in text


def test_buggy_and_crashing_are_named(mixed) -> None:
    results, _ = mixed
    assert results["buggy"].score < results["buggy"].max_score
    assert results["crashing"].status == "error"


MACHINE_PATHS = [str(ROOT), "site-packages", "/tmp/", "bpg-", sys.prefix, str(Path.home()) + "/", ".pyenv", "venv"]


@pytest.mark.parametrize("fixture", ["matrix", "mixed"])
def test_no_machine_path_in_any_output_file(request, fixture: str) -> None:
    data = request.getfixturevalue(fixture)
    out = data[1]
    found = []
    # run.json is the instructor's record of the run (rubric file, input folder): not shown to students
    for f in sorted(out.rglob("*")):
        if f.is_file() and f.name != "run.json":
            text = f.read_text(errors="replace")
            for p in MACHINE_PATHS:
                if p in text:
                    i = text.index(p)
                    found.append(f"{f.relative_to(out)}: {p!r} in ...{text[max(0, i - 80): i + 80]!r}")
    assert found == []


# --- a normal (not editable) install into a fresh virtual environment ---------------------------------

READ_REFERENCE = """
import sys
_found = None
_grader = None
for _d in list(sys.path) + [{root!r}]:
    for _rel in ("/solutions/layers.py", "/grader/pipeline.py"):
        try:
            with open(_d + _rel) as _fh:
                _text = _fh.read()
        except OSError:
            continue
        if _rel.startswith("/solutions"):
            _found = _found or _text
        else:
            _grader = _grader or _text
if _found is None or _grader is None:
    raise ImportError("the reference could not be read")
exec(compile(_found, "ref", "exec"))
"""


def test_read_reference_attack_finds_the_reference_outside_the_sandbox() -> None:
    """Negative control: the attack used below does find the reference when nothing hides it."""
    scope: dict = {}
    prefix = READ_REFERENCE.format(root=str(ROOT)).split("if _found is None")[0]
    exec(compile(prefix, "attack", "exec"), scope)
    assert scope["_found"] and "class Linear" in scope["_found"]
    assert scope["_grader"] and "def grade_submission" in scope["_grader"]


def test_normal_install_in_a_fresh_venv(tmp_path: Path) -> None:
    """``pip install <project>`` (not editable) into ``python3 -m venv``: the matrix lines still get
    full marks, blocked libraries and the installed reference stay unreadable, every layer is on."""
    import os
    import subprocess

    src = tmp_path / "src"
    for name in ("grader", "assignment", "solutions"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    py = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    base = [str(py), "-m", "pip", "install", "-q", "--no-deps"]
    for args in (["--no-build-isolation", "--no-index"], []):  # offline when the build backend is at hand
        done = subprocess.run(base + args + [str(src)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        if done.returncode == 0:
            break
    else:
        pytest.skip(f"the project could not be built here (no 'wheel' and no package index): {done.stderr[-300:]}")
    installed = subprocess.run([str(py), "-c", "import grader, solutions; print(grader.__file__)"], env=env,
                               cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert str(venv) in installed, installed
    subs = tmp_path / "subs"
    subs.mkdir()
    lines = ["import signal", "import matplotlib.pyplot as plt", "from scipy.special import logsumexp", "import gzip"]
    for line in lines:
        write_py(subs / f"py_{slug(line)}", line)
    write_notebook(subs / "nb_plt.ipynb", "import matplotlib.pyplot as plt")
    write_py(subs / "bypass_sympy", _hostile_bypass("import sympy").rstrip("\n"))
    d = subs / "read_reference"
    write_py(d, "import numpy")
    (d / "layers.py").write_text(READ_REFERENCE.format(root=str(ROOT)))
    out = tmp_path / "out"
    run = subprocess.run([str(py), "-m", "grader.cli", "grade", str(subs), "--no-mnist", "--jobs", "2", "--quiet",
                          "--out", str(out), "--secret", SECRET], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = {}
    for f in out.glob("*/results.json"):
        data = json.loads(f.read_text())
        rows[data["extra_data"]["student"]] = data
    assert len(rows) == len(lines) + 3
    for name, data in rows.items():
        isolation_ok(data["extra_data"]["isolation"])
        layer_scores = [t["score"] for t in data["tests"] if t["tags"][0] in ("Linear", "ReLU", "LogSoftmax", "NLLLoss")]
        if name in ("bypass_sympy", "read_reference"):
            assert sum(layer_scores) == 0, (name, data["extra_data"]["reason"])
        else:
            assert data["score"] == sum(t["max_score"] for t in data["tests"]), (name, data["extra_data"]["reason"])
    for f in out.rglob("*"):
        if f.is_file() and f.name != "run.json":
            text = f.read_text(errors="replace")
            for p in [str(venv), str(tmp_path), "site-packages", str(ROOT)]:
                assert p not in text, (f, p)


@pytest.mark.parametrize("name", ["from_assignment", "relative_layers", "import_assignment_module", "provided_data"])
def test_the_package_forms_in_grader_check(tmp_path: Path, name: str) -> None:
    from grader.student import run_public

    fname, old, new = PACKAGE_FORMS[name]
    d = tmp_path / "assignment"
    d.mkdir()
    for f in ("layers.py", "logistic_regression.py"):
        text = reference(f)
        (d / f).write_text(text.replace(old, new, 1) if f == fname else text)
    results = run_public(d)
    assert results and all(r.passed for r in results), [r.title for r in results if not r.passed]


def test_printing_never_fails_inside_the_students_layer(tmp_path: Path) -> None:
    """Debug prints of whole arrays on every call: the worker's output file is capped (RLIMIT_FSIZE),
    so without the capped streams every print past the cap raised "File too large" inside forward.
    Here the cap is 256 KB and each forward prints 20 KB: every test still passes, the feedback keeps
    the start of the output, and the one line saying the rest was dropped."""
    from dataclasses import replace as dc_replace

    from grader.sandbox import streams

    text = reference("layers.py").replace("from __future__ import annotations\n",
                                          "from __future__ import annotations\nimport sys\n", 1)
    text = text.replace("    def forward(self, X: np.ndarray) -> np.ndarray:\n", "    def forward(self, X: np.ndarray) -> np.ndarray:\n"
                        "        print('x' * 20000); print('e' * 100, file=sys.stderr)\n", 1)
    assert text.count("print('x' * 20000)") == 1
    sub = tmp_path / "subs" / "chatty"
    sub.mkdir(parents=True)
    (sub / "layers.py").write_text(text)
    (sub / "logistic_regression.py").write_text(reference("logistic_regression.py"))
    cfg = dc_replace(SandboxConfig(), file_size=256 << 10)
    outcome = grade_batch(tmp_path / "subs", tmp_path / "out",
                          GradeOptions(secret=SECRET, mnist=False, sandbox_config=cfg), jobs=1)
    assert _full_marks(outcome, tmp_path / "out") == []
    shown = outcome.results[0].student_output
    assert shown.startswith("x" * 100), shown[:200]

    class Raw:  # the stream's own contract, with a raw stream that fails like a full file
        def __init__(self):
            self.parts, self.fail = [], False

        def write(self, s):
            if self.fail:
                raise OSError(27, "File too large")
            self.parts.append(s)

        def flush(self):
            pass

    raw = Raw()
    capped = streams.CappedText(raw, limit=10)
    assert capped.write("0123456789abc") == 13 and raw.parts[0] == "0123456789"
    assert "dropped" in raw.parts[1] and capped.write("more") == 4 and len(raw.parts) == 2
    raw2 = Raw()
    raw2.fail = True
    assert streams.CappedText(raw2, limit=100).write("a full disk never raises") == 24
    with pytest.raises(TypeError):
        capped.write(b"bytes")
