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
from grader.release import ReleaseError, Shaker, _reference_snippets, build_release
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
    for rel in ("solutions", "tests", "grader/batch", "grader/validate.py", "grader/release.py",
                "grader/checks/mnist.py", "grader/templates", "data/examples", "data/mnist/.cache"):
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


def test_no_reference_code(release):
    # whole lines of the reference's forward/backward bodies, anywhere in the release
    snippets = [s.encode() for s in _reference_snippets()] + [b"grad_output @ self.W.T"]
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
    text = "\n".join(p.read_text(errors="replace") for p in _files(release / "grader") if p.suffix in (".py", ".toml"))
    for name in HIDDEN:  # since issue 15 every check is public: HIDDEN may be empty
        assert name not in text, name
    # helpers of generic.py that only hidden checks use
    public_src = "\n".join(inspect.getsource(s.func) for s in REGISTRY.values() if s.public)
    for name in ("check_twice", "check_read_only", "check_float32", "check_upstream", "check_latest_forward"):
        if name not in public_src:
            assert name not in text, name
    for name in PUBLIC:
        assert f"def {name}(" in text, name
    # the shipped rubric names public checks only, so it loads against the shipped registry
    rubric = tomllib.loads((release / "grader/scoring/default_rubric.toml").read_text())
    assert sorted(rubric["checks"]) == sorted(s.id for s in REGISTRY.values() if s.public)
    assert "mnist" not in rubric
    # a mutant branch only hidden checks ask for is gone (LogisticRegression's dL/dX is hidden)
    logreg = (release / "grader/checks/logreg.py").read_text()
    if not REGISTRY["LogisticRegression.backward_input"].public:
        assert 'part == "input"' not in logreg
    cli = (release / "grader/cli.py").read_text()
    for gone in ("cmd_grade", "cmd_validate", "cmd_release", "cmd_gradescope", '"grade"', '"validate"'):
        assert gone not in cli


def test_shipped_modules_parse_and_cut_copies_are_smaller(release):
    for p in (release / "grader").rglob("*.py"):
        ast.parse(p.read_text())
    # since issue 15 every check is public, so the check modules ship whole; the grading machinery does not
    for mod in ("pipeline.py", "cli.py"):
        assert len((release / "grader" / mod).read_text()) < len((ROOT / "grader" / mod).read_text()), mod


def test_release_refuses_non_empty_folder(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(ReleaseError):
        build_release(tmp_path / "x")
    assert (tmp_path / "x" / "keep.txt").read_text() == "mine"


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
