"""The assignment spec (issue 17): the grader knows the homework in one place, and a second homework
is a folder.

* the default spec describes the homework of CONTRACT.md;
* no grader module names a component, a student file or an end-to-end test outside the spec, the
  check modules the spec names, and a short allowlist (each entry with its reason);
* a second assignment built from scratch in a temporary folder (one ``Scale`` layer) is graded,
  validated, reported, released (with a working ``grader check``) and bundled for Gradescope (its
  ``run_autograder`` run) with no change to ``grader/``.
"""
from __future__ import annotations

import ast
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import scale_assignment
from grader.intake import Submission
from grader.pipeline import GradeOptions, grade_submission
from grader.release import build_gradescope_bundle, build_release, reference_snippets
from grader.report.gradebook import render_gradebook
from grader.spec import SpecError, current_spec, default_spec, load_spec, use_spec
from grader.validate import validate

ROOT = Path(__file__).resolve().parent.parent
GRADER = ROOT / "grader"

#: grader files that may name the default homework's components, files or tests, and why
ALLOWLIST: dict[str, str] = {}  # empty: every module reads the homework from the spec


def _files_named_by_spec(spec) -> set[str]:
    """The per-component check modules and the end-to-end protocols' modules: where a component's
    name belongs."""
    out = set()
    for name in spec.check_modules + tuple(e.protocol.partition(":")[0] for e in spec.end_to_end):
        out.add(name.replace(".", "/") + ".py" if not name.endswith(".py") else name)
    return out


def _hits(path: Path, spec) -> list[str]:
    """String literals (not docstrings) and imports in ``path`` that name the homework."""
    words = re.compile(r"\b(" + "|".join(map(re.escape, spec.component_ids)) + r")\b|MNIST-|"
                       + "|".join(map(re.escape, spec.end_to_end_ids + spec.student_files)))
    modules = {c.module for c in spec.components} | {spec.reference_package}
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs:
            if words.search(n.value) or n.value in modules:
                out.append(f"{n.lineno}: {n.value[:60]!r}")
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in n.names] + [getattr(n, "module", None) or ""]
            if any(set(x.split(".")) & modules for x in names):
                out.append(f"{n.lineno}: import of {', '.join(names)}")
    return out


def test_default_spec_is_the_contracts_homework() -> None:
    s = default_spec()
    assert s.test_ids == ("Linear", "ReLU", "LogSoftmax", "NLLLoss", "LogisticRegression", "MNIST-MLP", "MNIST-LogReg")
    assert s.student_files == ("layers.py", "logistic_regression.py")
    assert s.feedback_order[0] == "LogisticRegression"  # task 1
    assert s.trained_by["ReLU"] == "MNIST-MLP" and s.trained_by["LogisticRegression"] == "MNIST-LogReg"
    assert s.rubric.is_file() and s.buggy_dir.is_dir()
    ids = s.load_checks()
    assert ids and {c.split(".")[0] for c in ids} == set(s.component_ids)


def test_no_module_names_the_homework_outside_the_spec() -> None:
    spec = default_spec()
    own = _files_named_by_spec(spec)
    found = {}
    for p in sorted(GRADER.rglob("*.py")):
        rel = p.relative_to(ROOT).as_posix()
        if rel in own or rel in ALLOWLIST:
            continue
        hits = _hits(p, spec)
        if hits:
            found[rel] = hits
    assert not found, ("these modules name the homework's components, files or tests; read them from "
                       f"grader/spec.py instead (or allowlist with a reason): {json.dumps(found, indent=1)}")


def test_the_scan_finds_a_new_occurrence(tmp_path: Path) -> None:
    """Negative control: the scan does see a component named in code (and not in a docstring)."""
    p = tmp_path / "m.py"
    p.write_text('"""About Linear."""\nCOLS = ("score", "Linear")\nimport solutions.layers\nF = "layers.py"\n')
    hits = _hits(p, default_spec())
    assert len(hits) == 3 and not any(h.startswith("1:") for h in hits)


def test_allowlisted_files_still_exist_and_still_need_it() -> None:
    for rel in ALLOWLIST:
        p = ROOT / rel
        assert p.is_file(), rel
        assert _hits(p, default_spec()), f"{rel} no longer names the homework: drop it from the allowlist"


def test_spec_errors_say_where(tmp_path: Path) -> None:
    bad = tmp_path / "spec.toml"
    bad.write_text('[student]\nfiles = ["a.py"]\n[reference]\npackage = "r"\n[checks]\nrubric = "r.toml"\n'
                   '[[component]]\nid = "A"\nmodule = "b"\n')
    with pytest.raises(SpecError, match="b.py, which is not a student file"):
        load_spec(bad)


# --- the proof of genericity -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def scale(tmp_path_factory) -> Path:
    return scale_assignment.build(tmp_path_factory.mktemp("scale"))


def _grade(spec_path: Path, student: str, *, sandbox: bool = True):
    with use_spec(spec_path) as spec:
        opts = GradeOptions(secret="scale-secret", sandbox=sandbox)
        assert opts.assignment == str(spec.path)
        sub = Submission(student, spec.root / "submissions" / student, "dir")
        r = grade_submission(sub, opts)
        return r, render_gradebook([r])


def test_second_assignment_correct_gets_full_marks(scale: Path) -> None:
    r, book = _grade(scale, "correct")
    assert r.status == "ok", r.reason
    assert r.max_score == 10 and r.score == r.max_score, [(t.name, t.score, t.output) for t in r.tests]
    assert {t.component for t in r.tests} == {"Scale"}
    assert {t.visibility for t in r.tests} == {"public", "hidden"}
    header = next(csv.reader(io.StringIO(book)))
    assert header[:6] == ["student", "score", "max_score", "status", "Scale", "reason"]
    assert current_spec() == default_spec()  # use_spec restored the default
    from grader.checks import REGISTRY

    assert not [c for c in REGISTRY if c.startswith("Scale.")]  # and left the registry as it was


def test_second_assignment_in_process_too(scale: Path) -> None:
    """``--no-sandbox`` (trusted code) imports the second homework's classes from its own files."""
    r, _ = _grade(scale, "correct", sandbox=False)
    assert r.status == "ok" and r.score == r.max_score == 10, [(t.name, t.score, t.output) for t in r.tests]
    b, _ = _grade(scale, "buggy", sandbox=False)
    assert b.score < b.max_score and any("sign" in t.causes for t in b.tests), [(t.name, t.causes) for t in b.tests]


def test_second_assignment_buggy_loses_points_on_the_owning_check_with_the_cause(scale: Path) -> None:
    r, _ = _grade(scale, "buggy")
    by_check = {(t.check, t.visibility): t for t in r.tests}
    assert all(by_check[("Scale.forward", v)].passed for v in ("public", "hidden"))
    for v in ("public", "hidden"):
        t = by_check[("Scale.backward", v)]
        assert t.score == 0 and "sign" in t.causes, (t.output, t.causes)
    assert r.score == 4


def test_second_assignment_words_its_own_causes(scale: Path) -> None:
    """The Scale spec's causes file replaces the generic wording of "sign" for its students; the default
    homework keeps its own; an assignment without a causes file gets the generic one (negative control)."""
    from grader.diagnosis.causes import CAUSES, GENERIC
    from grader.report import render_feedback

    r, _ = _grade(scale, "buggy", sandbox=False)
    with use_spec(scale):
        assert scale_assignment.SIGN_HINT in CAUSES["sign"].hint
        text = render_feedback(r)
    assert scale_assignment.SIGN_HINT in text and "log-likelihood" not in text, text
    assert "negative log-likelihood" in CAUSES["sign"].hint  # the default homework, current again
    bare = scale.with_name("spec-no-causes.toml")
    bare.write_text(scale.read_text().replace('causes = "causes.toml"\n', ""))
    with use_spec(bare):
        assert CAUSES["sign"] == GENERIC["sign"] and "relu_at_zero" not in CAUSES


def test_second_assignment_skeleton_and_missing_file(scale: Path, tmp_path: Path) -> None:
    empty = tmp_path / "nothing"
    empty.mkdir()
    (empty / "layers.py").write_text("x = 1\n")  # the default homework's file means nothing here
    with use_spec(scale):
        r = grade_submission(Submission("nothing", empty, "dir"), GradeOptions(secret="s"))
    assert r.status == "rejected" and "scale.py" in r.reason and r.score == 0 and len(r.tests) == 4


def test_second_assignment_validates(scale: Path) -> None:
    out = io.StringIO()
    with use_spec(scale):
        rc = validate(secret="scale-validate", out=out)
    text = out.getvalue()
    assert rc == 0, text
    assert re.search(r"scale_sign\s+4/10\s+yes\s+Scale: sign", text), text
    assert "Scale" in text and "1 known-buggy variants" in text and "LogisticRegression" not in text


def test_second_assignment_validate_catches_a_variant_that_is_not_caught(scale: Path, tmp_path: Path) -> None:
    """Negative control: a 'buggy' variant that is in fact correct is reported as not caught."""
    folder = tmp_path / "buggy"
    folder.mkdir()
    (folder / "scale_fine.py").write_text(scale_assignment.BUGGY.replace("-grad_output", "grad_output"))
    out = io.StringIO()
    with use_spec(scale):
        rc = validate(secret="scale-validate", fixtures=str(folder), out=out)
    assert rc == 1 and "no points lost on Scale" in out.getvalue()


def test_second_assignment_through_the_cli(scale: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("GRADER_ASSIGNMENT", None)
    p = subprocess.run([sys.executable, "-m", "grader.cli", "--assignment", str(scale), "grade",
                        str(scale.parent / "submissions"), "--out", str(out), "--secret", "cli", "--jobs", "2",
                        "--quiet"], capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr
    rows = list(csv.DictReader((out / "gradebook.csv").open(encoding="utf-8")))
    assert {r["student"]: (r["score"], r["Scale"]) for r in rows} == {"correct": ("10", "10"), "buggy": ("4", "4")}
    res = json.loads((out / "buggy" / "results.json").read_text())
    assert {t["tags"][0] for t in res["tests"]} == {"Scale"}
    assert "Scale" in (out / "buggy" / "feedback.md").read_text()
    for name in ("summary.md", "report.html", "gradebook.csv"):  # nothing of the default homework shows
        assert not re.search(r"MNIST|Linear|LogSoftmax|layers\.py", (out / name).read_text(encoding="utf-8")), name


def test_an_unreadable_spec_is_a_usage_error(tmp_path: Path, capsys) -> None:
    from grader.cli import main

    assert main(["--assignment", str(tmp_path / "missing.toml"), "validate"]) == 2
    assert "cannot read assignment spec" in capsys.readouterr().err
    assert current_spec() == default_spec()


# --- released and bundled ---------------------------------------------------------------------------

DEFAULT_WORDS = re.compile(r"\b(Linear|ReLU|LogSoftmax|NLLLoss|LogisticRegression|MNIST)\b|layers\.py|solutions")


@pytest.fixture(scope="module")
def scale_release(scale: Path, tmp_path_factory) -> Path:
    with use_spec(scale):
        return build_release(tmp_path_factory.mktemp("scale-rel") / "release")


@pytest.fixture(scope="module")
def scale_bundle(scale: Path, tmp_path_factory) -> Path:
    with use_spec(scale):
        return build_gradescope_bundle(tmp_path_factory.mktemp("scale-gs") / "autograder.zip", rubric=None)


def test_second_assignment_release_holds_its_skeleton_and_public_checks(scale: Path, scale_release: Path) -> None:
    rel, src = scale_release, scale.parent
    for f in ("__init__.py", "scale.py", "module.py", "gradcheck.py"):  # the skeleton, as the student package
        assert (rel / "assignment" / f).read_bytes() == (src / "skeleton" / f).read_bytes(), f
    assert (rel / "checks/scale_checks.py").read_bytes() == (src / "checks/scale_checks.py").read_bytes()
    assert (rel / "grader/checks/public_reference.npz").is_file()
    shipped = load_spec(rel / "grader/assignments" / default_spec().path.name)  # the release's default spec
    assert shipped.root == rel.resolve() and shipped.component_ids == ("Scale",)
    assert shipped.student_files == ("scale.py",) and shipped.reference_dir is None and shipped.buggy_dir is None
    assert tomllib.loads((rel / "rubric.toml").read_text())["checks"] == {"Scale.forward": 4.0, "Scale.backward": 6.0}
    py = tomllib.loads((rel / "pyproject.toml").read_text())
    assert py["project"]["name"] == "scale-by-hand-homework"
    assert py["tool"]["setuptools"]["packages"]["find"]["include"] == ["assignment", "grader", "grader.*"]
    readme = (rel / "README.md").read_text()
    assert "# Scale by hand" in readme and "`assignment/scale.py`" in readme and "--component Scale" in readme
    for p in [rel / "README.md", rel / "pyproject.toml", rel / "rubric.toml", *rel.glob("grader/assignments/*")]:
        assert not DEFAULT_WORDS.search(p.read_text()), p  # nothing of the default homework
    assert not (rel / "data").exists() and not (rel / "notebooks").exists()  # the spec names none


def test_second_assignment_release_leaks_no_reference_nor_hidden_code(scale: Path, scale_release: Path) -> None:
    rel = scale_release
    for gone in ("reference", "scale_reference", "buggy", "submissions", "solutions", "grader/checks/hidden",
                 "grader/checks/linear.py", "grader/release", "grader/batch", "grader/validate.py"):
        assert not (rel / gone).exists(), gone
    with use_spec(scale):
        snippets = reference_snippets()
    assert "return X * np.asarray(self.factor, dtype=X.dtype)" in snippets  # the reference's own lines
    for p in (p for p in rel.rglob("*") if p.is_file()):
        data = p.read_bytes()
        assert not [s for s in snippets if s.encode() in data], p.relative_to(rel)
        assert b"scale_reference" not in data or p.name.endswith(".toml"), p.relative_to(rel)


def _student_check(project: Path, *args: str) -> str:
    """``grader check`` as a student runs it in the release: the release's own grader, nothing else."""
    env = {k: v for k, v in os.environ.items() if k not in ("GRADER_ASSIGNMENT", "GITHUB_STEP_SUMMARY")}
    env["PYTHONPATH"] = str(project)
    p = subprocess.run([sys.executable, "-m", "grader.cli", "check", *args], capture_output=True, text=True,
                       env=env, cwd=project, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "internal error" not in p.stdout
    return p.stdout


def test_second_assignment_release_runs_its_public_checks(scale: Path, scale_release: Path, tmp_path: Path) -> None:
    project = tmp_path / "student"
    shutil.copytree(scale_release, project)
    out = _student_check(project)
    assert f"Public checks of {project / 'assignment'}" in out and out.count("[TODO]") == 2, out
    shutil.copyfile(scale.parent / "submissions/buggy/scale.py", project / "assignment/scale.py")
    out = _student_check(project, "--component", "Scale")
    assert "[PASS] forward: factor * X" in out and "[FAIL] backward: factor * G" in out and "sign flipped" in out, out
    assert scale_assignment.SIGN_HINT in out and "log-likelihood" not in out, out  # its own causes ship too
    shutil.copyfile(scale.parent / "submissions/correct/scale.py", project / "assignment/scale.py")
    out = _student_check(project)
    assert out.count("[PASS]") == 2 and "[FAIL]" not in out and "[TODO]" not in out, out
    assert not DEFAULT_WORDS.search(out), out  # no MNIST tests promised: this assignment has none


def test_second_assignment_bundle_holds_its_spec_and_files(scale: Path, scale_bundle: Path, tmp_path: Path) -> None:
    from grader.release import extract_bundle

    with zipfile.ZipFile(scale_bundle) as zf:
        names = set(zf.namelist())
        assert zf.read("rubric.toml") == (scale.parent / "rubric.toml").read_bytes()
        run = zf.read("run_autograder").decode()
    for n in ("spec/assignment.toml", "spec/assignment/scale.py", "spec/scale_reference/scale.py",
              "spec/checks/scale_checks.py", "grader/cli.py", "setup.sh", "grader-secret.txt"):
        assert n in names, n
    assert not [n for n in names if n.startswith(("solutions/", "assignment/", "data/", "spec/submissions", "spec/buggy"))]
    assert "STUDENT_FILES=('scale.py')" in run and "layers.py" not in run
    root = extract_bundle(scale_bundle, tmp_path / "ag")
    spec = load_spec(root / "source/spec/assignment.toml")
    assert spec.component_ids == ("Scale",) and spec.reference_dir == (root / "source/spec/scale_reference").resolve()
    assert spec.student_dir.is_dir() and (spec.root / spec.check_modules[0]).is_file()


def test_second_assignment_bundle_grades_correct_and_buggy(scale: Path, scale_bundle: Path, tmp_path: Path) -> None:
    from test_gradescope import _layout, _run

    got = {}
    for student in ("correct", "buggy"):
        code = (scale.parent / "submissions" / student / "scale.py").read_text()
        d = _run(_layout(scale_bundle, tmp_path / student, {"assignment/scale.py": code}))
        assert d["extra_data"]["status"] == "ok", d["output"]
        assert {t["tags"][0] for t in d["tests"]} == {"Scale"} and len(d["tests"]) == 4
        assert sum(t["max_score"] for t in d["tests"]) == pytest.approx(10)
        got[student] = d
    assert got["correct"]["score"] == pytest.approx(10)
    buggy = got["buggy"]["tests"]
    assert all(t["status"] == "passed" for t in buggy if "forward" in t["name"])
    back = [t for t in buggy if "backward" in t["name"]]
    assert len(back) == 2 and all(t["score"] == 0 and "sign" in t["tags"] for t in back), back
    assert got["buggy"]["score"] == pytest.approx(4)


def test_second_assignment_bundle_rejects_the_wrong_files(scale: Path, scale_bundle: Path, tmp_path: Path) -> None:
    """The default homework's file is not this assignment's: rejected, every planned test listed with the reason."""
    from test_gradescope import _layout, _run

    d = _run(_layout(scale_bundle, tmp_path, {"layers.py": "x = 1\n"}))
    assert d["extra_data"]["status"] == "rejected" and d["score"] == 0
    assert len(d["tests"]) == 4 and all("upload assignment/scale.py" in t["output"] for t in d["tests"]), d


# --- run.json records the spec; a resume with another spec grades again --------------------------------

def test_run_json_records_the_spec_and_a_changed_spec_regrades(scale: Path, tmp_path: Path) -> None:
    from grader.batch.runner import grade_batch

    out = tmp_path / "out"
    subs = scale.parent / "submissions"

    def run(spec_path: Path):
        with use_spec(spec_path) as spec:
            opts = GradeOptions(secret="resume-spec", sandbox=False, mnist=False)
            return spec, grade_batch(subs, out, opts, html_report=False)

    spec, first = run(scale)
    rec = json.loads((out / "run.json").read_text())["assignment"]
    assert rec == {"name": "Scale by hand", "path": str(spec.path), "sha256": spec.digest}
    assert spec.digest == __import__("hashlib").sha256(scale.read_bytes()).hexdigest()
    _, again = run(scale)  # the same spec: everything kept
    assert again.skipped == 2 and not [w for w in again.warnings if "assignment spec" in w]
    changed = scale.with_name("spec-v2.toml")  # the same assignment, edited: another digest
    changed.write_text(scale.read_text() + "# edited\n")
    spec2, third = run(changed)
    assert third.skipped == 0 and sorted(third.graded) == ["buggy", "correct"]
    warning = [w for w in third.warnings if "assignment spec differs" in w]
    assert warning and spec.digest[:12] in warning[0] and spec2.digest[:12] in warning[0], third.warnings
    assert json.loads((out / "run.json").read_text())["assignment"]["sha256"] == spec2.digest
    assert {r.student: r.score for r in third.results} == {"correct": 10, "buggy": 4}


# --- the sandbox hides the second assignment's reference too -----------------------------------------

def test_second_assignment_reference_is_hidden_from_student_code(scale: Path, tmp_path: Path, monkeypatch) -> None:
    """A site folder of the worker holding the Scale reference installed as a package: hidden (with its
    dist-info) while the Scale assignment is graded; with the default homework current it is an
    ordinary package (negative control: the spec, not a fixed list, hides it)."""
    from grader.sandbox import policy

    site = tmp_path / "site-packages"
    for entry in ("scale_reference", "scale_reference-1.0.dist-info", "numpy_helpers"):
        (site / entry).mkdir(parents=True)
    real = policy._worker_sys_path(sys.executable)
    monkeypatch.setattr(policy, "_worker_sys_path", lambda exe: (str(site), *real))
    blocked = (f"not-a-package-{tmp_path.name}",)  # a key of its own in the policy's cache
    with use_spec(scale):
        hidden = set(policy.read_policy(blocked).hidden)
        assert "scale_reference" in policy.grader_packages()
    assert {str(site / "scale_reference"), str(site / "scale_reference-1.0.dist-info")} <= hidden
    assert str(site / "numpy_helpers") not in hidden
    default = set(policy.read_policy(blocked).hidden)
    assert str(site / "scale_reference") not in default
    assert "solutions" in policy.grader_packages() and "grader" in policy.grader_packages()


# --- the spec's release and causes tables ----------------------------------------------------------------

def test_rendered_spec_is_the_same_assignment(tmp_path: Path) -> None:
    """What a release or a bundle writes loads as the same assignment (paths where that layout puts them)."""
    from grader.release.common import render_spec

    s = default_spec()
    p = tmp_path / "nested" / "spec.toml"
    p.parent.mkdir()
    p.write_text(render_spec(s, root=os.path.relpath(ROOT, p.parent), student_dir=None, reference_dir=None,
                             recorded="grader/checks/public_reference.npz", rubric="grader/scoring/default_rubric.toml",
                             header="test"))
    r = load_spec(p)
    assert (r.components, r.end_to_end, r.student_files, r.provided_files, r.provided_names) == \
        (s.components, s.end_to_end, s.student_files, s.provided_files, s.provided_names)
    assert (r.root, r.rubric, r.causes, r.check_modules, r.reference_package) == \
        (s.root, s.rubric, s.causes, s.check_modules, s.reference_package)
    assert r.buggy_dir is None and r.digest != s.digest


@pytest.mark.parametrize("table, message", [
    ('[release]\ndata = ["../outside.gz"]\n', "inside the assignment's root"),
    ('[release]\nreadme = "/etc/motd"\n', "inside the assignment's root"),
    ('[release]\ndata = "one.gz"\n', "list of non-empty strings"),
])
def test_release_table_errors_say_where(tmp_path: Path, table: str, message: str) -> None:
    bad = tmp_path / "spec.toml"
    bad.write_text('[student]\nfiles = ["a.py"]\n[reference]\npackage = "r"\n[checks]\nrubric = "r.toml"\n'
                   '[[component]]\nid = "A"\nmodule = "a"\n' + table)
    with pytest.raises(SpecError, match=message):
        load_spec(bad)


def test_an_invalid_causes_file_is_refused(tmp_path: Path) -> None:
    from grader.diagnosis.causes import CausesError, load_causes

    p = tmp_path / "causes.toml"
    p.write_text('[sign]\ntitle = "sign flipped"\n')  # no hint
    with pytest.raises(CausesError, match=r"\[sign\] needs"):
        load_causes(p)
    p.write_text('[Bad-Id]\ntitle = "t"\nhint = "h"\n')
    with pytest.raises(CausesError, match="Bad-Id"):
        load_causes(p)


def test_release_refuses_a_check_module_it_cannot_ship(scale: Path, tmp_path: Path) -> None:
    """A check module named by import name outside grader/ cannot be shipped: the release says so."""
    from grader.release import ReleaseError, shake

    odd = scale.with_name("spec-dotted.toml")
    odd.write_text(scale.read_text().replace('modules = ["checks/scale_checks.py"]', 'modules = ["json"]'))
    with use_spec(odd), pytest.raises(ReleaseError, match="check module json is not in grader/"):
        shake()
