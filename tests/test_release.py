"""The student release: what it holds, what it must not hold, and that `grader check` works in it.

The install test needs pip to build the release (setuptools from the configured index or wheel
cache, as for any `pip install -e .`); everything else is local.
"""
from __future__ import annotations

import ast
import inspect
import os
import shutil
import site
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from grader.checks import REGISTRY, run_check
from grader.pipeline import reference_impl
from grader.release import ReleaseError, Shaker, build_release, reference_snippets, shake
from grader.sandbox.client import LocalImpl
from grader.sandbox.recorded import RecordedImpl, RecordingMissing

ROOT = Path(__file__).resolve().parent.parent
HIDDEN = sorted(s.func.__name__ for s in REGISTRY.values() if not s.public)
PUBLIC = sorted(s.func.__name__ for s in REGISTRY.values() if s.public)


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return build_release(tmp_path_factory.mktemp("rel") / "student-release")


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_layout(release):
    for rel in ("pyproject.toml", "README.md", ".github/workflows/check.yml", "assignment/__init__.py",
                "assignment/layers.py", "assignment/logistic_regression.py", "assignment/module.py",
                "notebooks/README.md", "notebooks/01_logistic_regression.ipynb", "data/mnist/SHA256SUMS",
                "data/mnist/README.md", "data/mnist/train-images-idx3-ubyte.gz", "data/mnist/t10k-labels-idx1-ubyte.gz",
                "grader/cli.py", "grader/student.py", "grader/checks/public_reference.npz",
                "grader/sandbox/worker.py", "grader/sandbox/isolation.py", "grader/sandbox/recorded.py",
                "grader/scoring/default_rubric.toml"):
        assert (release / rel).is_file(), rel
    for rel in ("solutions", "tests", "grader/batch", "grader/validate.py", "grader/release",
                "grader/checks/mnist.py", "grader/checks/hidden", "grader/templates", "data/examples",
                "data/mnist/.cache"):
        assert not (release / rel).exists(), rel
    assert not [p for p in release.rglob("__pycache__")]
    for a in ("layers.py", "logistic_regression.py", "module.py"):  # the skeleton, unchanged
        assert (release / "assignment" / a).read_bytes() == (ROOT / "assignment" / a).read_bytes()
    py = tomllib.loads((release / "pyproject.toml").read_text())
    assert py["project"]["scripts"] == {"grader": "grader.cli:main"}
    assert py["tool"]["setuptools"]["packages"]["find"]["include"] == ["assignment", "grader", "grader.*"]
    readme = (release / "README.md").read_text()
    assert "pip install -e ." in readme and "grader check" in readme and "notebooks" in readme
    assert (release / ".github/workflows/check.yml").read_text() == \
        (ROOT / "grader/templates/workflows/student-check.yml").read_text()


def test_templates_are_package_data():
    """Every template is declared package data, so a non-editable install of the grader has it too
    (checked by hand with `pip install . --target DIR`: importlib.resources lists all of them there)."""
    from fnmatch import fnmatch

    from grader.release.common import template_names

    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["grader"]
    names = template_names()
    assert {"setup.sh", "run_autograder.sh", "student-README.md", "student-pyproject.toml"} <= set(names)
    for n in names:
        assert any(fnmatch(f"release/templates/{n}", g) for g in globs), n


def test_no_reference_code(release):
    # whole lines of the reference's forward/backward bodies, anywhere in the release
    snippets = [s.encode() for s in reference_snippets()] + [b"grad_output @ self.W.T"]
    assert len(snippets) > 10
    for p in _files(release):
        data = p.read_bytes()
        for s in snippets:
            assert s not in data, f"{p.relative_to(release)} holds reference code {s!r}"
    # the stable loss term: notebook 01 teaches it on purpose (its "Step 1" identity, in a demo
    # cell), so the notebooks are exempt; no shipped code may hold it
    for p in _files(release):
        if p.parts[len(release.parts)] != "notebooks":
            assert b"np.logaddexp(0.0, z) - y * z" not in p.read_bytes(), p


def test_no_hidden_checks(release):
    assert not (release / "grader/checks/hidden").exists()
    text = "\n".join(p.read_text(errors="replace") for p in _files(release / "grader") if p.suffix in (".py", ".toml"))
    for name in HIDDEN:  # since issue 15 every check is public: HIDDEN is empty in this grader
        assert f"def {name}(" not in text, name
    # check code is never cut: every component module ships as the check author wrote it
    for p in sorted((ROOT / "grader/checks").glob("*.py")):
        if p.name not in ("mnist.py", "mnist_protocol.py", "mnist_cache.py"):  # MNIST is not in the release
            assert (release / "grader/checks" / p.name).read_text() == p.read_text(), p.name
    for name in PUBLIC:
        assert f"def {name}(" in text, name
    # the shipped rubric names public checks only, so it loads against the shipped registry
    rubric = tomllib.loads((release / "grader/scoring/default_rubric.toml").read_text())
    assert sorted(rubric["checks"]) == sorted(s.id for s in REGISTRY.values() if s.public)
    assert "mnist" not in rubric
    cli = (release / "grader/cli.py").read_text()
    for gone in ("cmd_grade", "cmd_validate", "cmd_release", "cmd_gradescope", '"grade"', '"validate"'):
        assert gone not in cli


def test_shipped_modules_parse_and_cut_copies_are_smaller(release):
    for p in (release / "grader").rglob("*.py"):
        ast.parse(p.read_text())
    # the check modules ship whole (above); the grading machinery does not
    for mod in ("pipeline.py", "cli.py"):
        assert len((release / "grader" / mod).read_text()) < len((ROOT / "grader" / mod).read_text()), mod


def test_release_refuses_non_empty_folder(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(ReleaseError):
        build_release(tmp_path / "x")
    assert (tmp_path / "x" / "keep.txt").read_text() == "mine"


# --- hidden-only checks: a place, not a rule ------------------------------------------------------

HIDDEN_DEMO = '''"""A hidden-only check written for the test: Linear's forward on a tall batch."""
from ..base import check
from ..generic import VALUE_CAUSES, check_part
from .. import linear


def _tall_case(rng):
    return linear.make_case(rng, 40, 7, 3, "N=40, D=7, M=3")


@check("Linear", "forward on a tall batch", owns=VALUE_CAUSES)
def check_linear_tall_forward(ctx):
    """The output equals X @ W + b for a batch much larger than the layer."""
    return check_part(ctx, [_tall_case(ctx.rng)], "forward", linear.mutants)
'''


@pytest.fixture
def grader_with_hidden_check(tmp_path) -> Path:
    """A copy of this grader with one hidden-only check added, as a check author would add it:
    one file in grader/checks/hidden/ and its points in a rubric."""
    top = tmp_path / "pkg"
    shutil.copytree(ROOT / "grader", top / "grader", ignore=shutil.ignore_patterns("__pycache__"))
    (top / "grader/checks/hidden/linear_tall.py").write_text(HIDDEN_DEMO)
    rubric = (ROOT / "grader/scoring/default_rubric.toml").read_text()
    (tmp_path / "rubric.toml").write_text(rubric.replace("[checks]\n", '[checks]\n"Linear.tall_forward" = 2\n', 1))
    return top


def test_hidden_only_check_is_graded_hidden_and_never_shipped(grader_with_hidden_check, tmp_path):
    top = grader_with_hidden_check
    probe = """
import json, sys
import grader.checks as checks
from grader.pipeline import GradeOptions, plan, reference_impl, run_tests
from grader.scoring import SubmissionResult, load_rubric
spec = checks.REGISTRY["Linear.tall_forward"]
opts = GradeOptions(secret="s", rubric_path=sys.argv[1], mnist=False)
planned = [p for p in plan(opts.rubric, public_only=False, mnist=False) if p.check == spec.id]
public = [p.check for p in plan(load_rubric(sys.argv[1]), public_only=True, mnist=False)]
res = run_tests(reference_impl(), opts, planned, SubmissionResult("ref", "ok"))
print(json.dumps({"file": checks.__file__, "public": spec.public, "in_public_run": spec.id in public,
                  "planned": [[p.visibility, p.max_score] for p in planned], "score": res.score}))
"""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(top), str(ROOT)]))
    r = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "rubric.toml")], capture_output=True, text=True,
                       env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    got = __import__("json").loads(r.stdout.splitlines()[-1])
    assert got["file"].startswith(str(top))  # the copy with the hidden check, not this repository
    assert got["public"] is False and got["in_public_run"] is False
    assert got["planned"] == [["hidden", 2.0]] and got["score"] == 2.0

    shipped = shake(top / "grader")
    assert not [rel for rel in shipped if rel.startswith("grader/checks/hidden")]
    text = "\n".join(shipped.values())
    assert "check_linear_tall_forward" not in text and "_tall_case" not in text
    assert shipped["grader/checks/linear.py"] == (top / "grader/checks/linear.py").read_text()


def test_shipped_module_may_not_import_hidden_code(grader_with_hidden_check):
    top = grader_with_hidden_check
    linear = top / "grader/checks/linear.py"
    linear.write_text(linear.read_text() + "\nfrom .hidden.linear_tall import _tall_case  # noqa\n")
    with pytest.raises(ReleaseError, match="never holds"):
        shake(top / "grader")


def test_check_visibility_is_where_it_is_defined(monkeypatch):
    from grader.checks import base

    monkeypatch.setattr(base, "REGISTRY", {})

    def body(ctx):
        return []

    hidden = type(body)(body.__code__, body.__globals__, "check_relu_demo")
    hidden.__module__ = "grader.checks.hidden.relu_demo"
    base.check("ReLU", "demo", owns=())(hidden)
    assert base.REGISTRY["ReLU.demo"].public is False
    shown = type(body)(body.__code__, body.__globals__, "check_relu_shown")
    shown.__module__ = "grader.checks.relu"
    base.check("ReLU", "demo", owns=(), public=True)(shown)
    assert base.REGISTRY["ReLU.shown"].public is True
    with pytest.raises(ValueError, match="grader/checks/hidden/"):
        base.check("ReLU", "demo", owns=(), public=False)(shown)
    with pytest.raises(ValueError, match="grader/checks/hidden/"):
        base.check("ReLU", "demo", owns=(), public=True)(hidden)


# --- the recording ---------------------------------------------------------------------------------

def _outcome(res):
    return [(c.ok, c.cause) for c in res.cases]


def _variants():
    from grader.validate import load_variant, variant_impl

    import assignment.layers as SL
    import assignment.logistic_regression as SLR

    out = [("reference", lambda: LocalImpl.from_modules(*_solution_modules())),
           ("skeleton", lambda: LocalImpl.from_modules(SL, SLR))]
    for path in sorted((ROOT / "tests" / "fixtures" / "buggy").glob("*.py")):
        if not path.name.startswith("_"):
            out.append((path.stem, lambda path=path: variant_impl(load_variant(path))))
    return out


def _solution_modules():
    import solutions.layers
    import solutions.logistic_regression

    return solutions.layers, solutions.logistic_regression


def test_recording_answers_like_the_reference(release):
    """Every public check, on the reference, the skeleton and every known-buggy variant, gives the same
    outcome (case by case, with the same named cause) against the recording as against the reference."""
    recorded = RecordedImpl.load(release / "grader/checks/public_reference.npz")
    live = reference_impl()
    specs = [s for s in REGISTRY.values() if s.public]
    variants = _variants()
    assert len(variants) > 10
    for name, make in variants:
        for spec in specs:
            want = run_check(spec, make(), live, secret=None)
            got = run_check(spec, make(), recorded, secret=None)
            assert _outcome(got) == _outcome(want), (name, spec.id, got.cases)
            assert "grader_error" not in [c.cause for c in got.cases], (name, spec.id)


def test_recording_refuses_unknown_requests(release):
    recorded = RecordedImpl.load(release / "grader/checks/public_reference.npz")
    with pytest.raises(RecordingMissing, match="no answer"):
        recorded.new("Linear", 3, 99, 0)
    with pytest.raises(FileNotFoundError, match="solutions"):
        RecordedImpl.load(release / "nope.npz")


def test_recording_survives_last_bit_differences(release):
    """Inputs that differ in the last bit (another CPU's exp/log) still find the recorded answer."""
    import numpy as np

    from grader.checks.runs import LayerCase, execute
    from grader.sandbox.recorded import RecordingImpl

    rng = np.random.default_rng(0)
    X = rng.standard_normal((5, 7))
    case = LayerCase("LogSoftmax", (), {}, (X,), rng.standard_normal((5, 7)), "t", input_names=("T",))
    rec = RecordingImpl(LocalImpl.from_modules(*_solution_modules()))
    want = execute(rec, case)
    path = rec.save(release.parent / "tiny.npz")
    nudged = LayerCase("LogSoftmax", (), {}, (np.nextafter(X, np.inf),), np.nextafter(case.upstream, -np.inf), "t",
                       input_names=("T",))
    got = execute(RecordedImpl.load(path), nudged)
    assert np.array_equal(got.forward, want.forward) and np.array_equal(got.backward, want.backward)


def test_shaker_keeps_what_student_check_imports():
    sh = Shaker()
    sh.run()
    shipped = {m.name for m in sh.shipped()}
    assert {"grader.student", "grader.pipeline", "grader.sandbox.recorded", "grader.sandbox.isolation",
            "grader.report.github"} <= shipped
    assert not {"grader.batch", "grader.validate", "grader.release", "grader.checks.mnist"} & shipped


# --- installed in a fresh environment -----------------------------------------------------------------

def _venv(tmp: Path) -> Path:
    """A virtual environment that sees the dependencies of this interpreter but not this repository.

    Not ``--system-site-packages``: the repository itself is installed (editable) in those
    site-packages, and its import hook would hand the release ``solutions`` from the repository.
    A ``.pth`` line naming the site-packages folders puts them on ``sys.path`` without running the
    ``.pth`` files inside them, so numpy and friends are importable and the repository is not.
    """
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    purelib = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    dirs = [d for d in site.getsitepackages() + [site.getusersitepackages()] if os.path.isdir(d)]
    Path(purelib, "_deps_of_the_test_interpreter.pth").write_text("\n".join(dirs) + "\n")
    return venv


def _pip_install_editable(venv: Path, project: Path) -> None:
    py = str(venv / "bin" / "python")
    base = [py, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check", "-q"]
    tries = [base + ["-e", str(project)], base + ["--no-build-isolation", "-e", str(project)]]
    errors = []
    for cmd in tries:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if r.returncode == 0:
            return
        errors.append(f"$ {' '.join(cmd)}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}")
    pytest.fail("pip could not install the release:\n" + "\n".join(errors))


def test_installed_release_runs_public_checks(release, tmp_path):
    project = tmp_path / "student"
    shutil.copytree(release, project)
    venv = _venv(tmp_path)
    _pip_install_editable(venv, project)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GITHUB_STEP_SUMMARY")}
    py, grader = str(venv / "bin" / "python"), str(venv / "bin" / "grader")

    probe = subprocess.run([py, "-c", "import grader, assignment\nprint(grader.__file__)\nprint(assignment.__file__)\n"
                                      "try:\n import solutions\nexcept ImportError:\n print('no solutions')"],
                           capture_output=True, text=True, env=env, cwd=tmp_path)
    lines = probe.stdout.split()
    assert probe.returncode == 0, probe.stderr
    assert lines[0].startswith(str(project)) and lines[1].startswith(str(project)) and "no solutions" in probe.stdout

    usage = subprocess.run([grader, "--help"], capture_output=True, text=True, env=env, cwd=project)
    assert usage.returncode == 0 and "check" in usage.stdout and "gradescope" not in usage.stdout

    # the untouched skeleton: every public check is reported as not attempted, nothing crashes
    r = subprocess.run([grader, "check"], capture_output=True, text=True, env=env, cwd=project, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    n_public = len(PUBLIC)
    assert r.stdout.count("[TODO]") == n_public, r.stdout
    assert "[PASS]" not in r.stdout and "[FAIL]" not in r.stdout and "internal error" not in r.stdout

    # the reference's two files: every public check passes, in the sandbox, against the recording
    for f in ("layers.py", "logistic_regression.py"):
        shutil.copyfile(ROOT / "solutions" / f, project / "assignment" / f)
    r = subprocess.run([grader, "check"], capture_output=True, text=True, env=env, cwd=project, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("[PASS]") == n_public, r.stdout
    assert "[FAIL]" not in r.stdout and "[TODO]" not in r.stdout

    # a bug is diagnosed from the recording as from the reference
    text = (project / "assignment" / "layers.py").read_text()
    assert "self.grad_b = grad_output.sum(axis=0)" in text
    (project / "assignment" / "layers.py").write_text(
        text.replace("self.grad_b = grad_output.sum(axis=0)", "self.grad_b = grad_output.mean(axis=0)"))
    summary = tmp_path / "summary.md"
    r = subprocess.run([grader, "check", "--component", "Linear", "--format", "github"], capture_output=True,
                       text=True, env=dict(env, GITHUB_STEP_SUMMARY=str(summary)), cwd=project, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[FAIL] backward: dL/db" in r.stdout and "N times too small" in r.stdout
    assert any(line.startswith("::error") for line in r.stdout.splitlines())
    assert "| Linear |" in summary.read_text()
