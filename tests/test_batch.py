"""Batch grading of a class: every submission a row, resumable after kill -9, deterministic (issue 6)."""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT, make_submission

BUGS = {
    "bias_sum": ("layers.py", "self.grad_b = grad_output.sum(axis=0)", "self.grad_b = grad_output"),
    "bias_mean": ("layers.py", "self.grad_b = grad_output.sum(axis=0)", "self.grad_b = grad_output.mean(axis=0)"),
    "relu_zero": ("layers.py", "return grad_output * (self._X > 0)", "return grad_output * (self._X >= 0)"),
    "dx_T": ("layers.py", "return grad_output @ self.W.T", "return (self.W @ grad_output.T).T * -1"),
    "lsm_unstable": ("layers.py", "m = T.max(axis=1, keepdims=True)", "m = 0.0"),
    "nll_sign": ("layers.py", "total = -picked.sum()", "total = picked.sum()"),
    "lr_nomean": ("logistic_regression.py", "r = (p - y) * (float(grad_output) / X.shape[0])", "r = (p - y) * float(grad_output)"),
    "lr_sign": ("logistic_regression.py", "r = (p - y) * (float(grad_output) / X.shape[0])", "r = (y - p) * (float(grad_output) / X.shape[0])"),
    "gw_accum": ("layers.py", "self.grad_W = X.T @ grad_output", "self.grad_W = self.grad_W + X.T @ grad_output"),
    "inplace_relu": ("layers.py", "return np.maximum(X, 0)", "np.maximum(X, 0, out=X)\n        return X"),
}


def build_class(root: Path, *, n_correct: int = 16) -> Path:
    """A folder of 40+ submissions: correct, buggy, hostile and malformed."""
    root.mkdir(parents=True)
    correct = sorted(p for p in (ROOT / "tests/fixtures/correct").iterdir() if p.is_dir())
    for i in range(n_correct):
        src = correct[i % len(correct)]
        shutil.copytree(src, root / f"correct_{i:02d}_{src.name}")
    for name, (f, old, new) in BUGS.items():
        make_submission(root / f"buggy_{name}", replace={f: (old, new)})
    for i, (name, (f, old, new)) in enumerate(list(BUGS.items())[:4]):
        d = make_submission(root / f"_zipsrc{i}" / "assignment", replace={f: (old, new)})
        with zipfile.ZipFile(root / f"zipped_{name}.zip", "w") as zf:
            for p in d.iterdir():
                zf.write(p, f"student/assignment/{p.name}")
        shutil.rmtree(d.parent)
    make_submission(root / "hostile_exit", layers="import sys\nsys.exit(0)\n")
    make_submission(root / "hostile_osexit", logreg="import os\nos._exit(0)\n")
    make_submission(root / "hostile_loop", replace={"layers.py": ("return grad_output @ self.W.T", "while True: pass")})
    make_submission(root / "hostile_print", replace={"layers.py": ("return X @ self.W + self.b",
                    "print('\\x1b[2J::error::FULL MARKS\\nscore,100'); return X @ self.W + self.b")})
    make_submission(root / "hostile_lying_eq", replace={"layers.py": ("return np.maximum(X, 0)",
                    "class A(np.ndarray):\n            def __eq__(self, o): return True\n        return np.maximum(X, 0).view(A)")})
    (root / "malformed_zip.zip").write_bytes(b"this is not a zip")
    (root / "malformed_nb.ipynb").write_text("{not json")
    d = make_submission(root / "malformed_missing_file")
    (d / "logistic_regression.py").unlink()
    make_submission(root / "malformed_syntax", layers="def broken(:\n    pass\n")
    d = make_submission(root / "malformed_binary")
    (d / "layers.py").write_bytes(b"\x00\xff\xfe binary")
    make_submission(root / "skeleton", layers=(ROOT / "assignment/layers.py").read_text(),
                    logreg=(ROOT / "assignment/logistic_regression.py").read_text())
    return root


def _run(args, **kw):
    return subprocess.run([sys.executable, "-m", "grader.cli", *args], capture_output=True, text=True, **kw)


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _strip_timing(d: dict) -> dict:
    d = json.loads(json.dumps(d))
    d.pop("execution_time", None)
    d.get("extra_data", {}).pop("timings", None)
    for k in ("used", "wall"):  # seconds of the time budget spent (issue 21): timing too
        d.get("extra_data", {}).get("budget", {}).pop(k, None)
    return d


@pytest.fixture(scope="module")
def klass(tmp_path_factory) -> Path:
    return build_class(tmp_path_factory.mktemp("class") / "submissions")


@pytest.fixture(scope="module")
def graded(klass, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "run1"
    res = _run(["grade", str(klass), "--out", str(out), "--secret", "class-secret", "--jobs", "2"], timeout=1500)
    assert res.returncode == 0, res.stderr[-3000:]
    return out, res


def test_forty_mixed_submissions_one_command(klass, graded):
    out, res = graded
    subs = sorted(p.name.removesuffix(".zip").removesuffix(".ipynb") for p in klass.iterdir())
    assert len(subs) >= 40
    rows = _rows(out / "gradebook.csv")
    assert sorted(r["student"] for r in rows) == subs  # one row each, no duplicates
    assert list(rows[0].keys())[:11] == ["student", "score", "max_score", "status", "Linear", "ReLU", "LogSoftmax",
                                        "NLLLoss", "LogisticRegression", "MNIST-MLP", "MNIST-LogReg"]
    by = {r["student"]: r for r in rows}
    for s in subs:
        data = json.loads((out / s / "results.json").read_text())
        assert len(data["tests"]) == len(json.loads((out / subs[0] / "results.json").read_text())["tests"])
        assert data["extra_data"]["student"] == s
    for s in subs:
        if s.startswith("correct_"):
            assert by[s]["score"] == "100" and by[s]["status"] == "ok", s
        if s.startswith(("hostile_", "malformed_", "skeleton")) and s != "hostile_print":
            assert float(by[s]["score"]) < 100, s
    assert by["hostile_exit"]["Linear"] == "0" and by["hostile_exit"]["status"] == "error"
    assert by["hostile_osexit"]["LogisticRegression"] == "0"
    assert float(by["hostile_osexit"]["Linear"]) == 18  # the rest of that submission is graded
    assert by["hostile_loop"]["status"] == "timeout"
    assert by["malformed_zip"]["status"] == "rejected" and "not a readable zip" in by["malformed_zip"]["reason"]
    assert by["malformed_nb"]["status"] == "rejected" and "not a valid Jupyter notebook" in by["malformed_nb"]["reason"]
    assert float(by["malformed_missing_file"]["LogisticRegression"]) == 0 and float(by["malformed_missing_file"]["Linear"]) == 18
    assert by["skeleton"]["score"] == "0" and by["skeleton"]["status"] == "ok"
    assert by["hostile_print"]["score"] == "100"  # printing is allowed; it just cannot forge anything
    text = (out / "hostile_print" / "results.json").read_text() + (out / "hostile_print" / "feedback.md").read_text()
    assert "\x1b" not in text and "\n::" not in text
    assert float(by["hostile_lying_eq"]["ReLU"]) < 9
    for name in BUGS:
        assert float(by[f"buggy_{name}"]["score"]) < 100, name
    run = json.loads((out / "run.json").read_text())
    assert run["secret"] == "class-secret" and run["rubric"]["total"] == 100
    assert set(run["isolation"]) >= {"rlimits", "network", "landlock", "user", "seccomp"}
    assert run["reference_mnist"]["MNIST-MLP"]["accuracy"] >= 0.90  # 1 epoch on 20k images, 784-64-10 (issue 22)
    assert "Score distribution" in (out / "summary.md").read_text()


def test_same_secret_gives_identical_outputs(klass, graded, tmp_path):
    out1, _ = graded
    out2 = tmp_path / "run2"
    res = _run(["grade", str(klass), "--out", str(out2), "--secret", "class-secret", "--jobs", "2", "--quiet"], timeout=1500)
    assert res.returncode == 0
    assert (out1 / "gradebook.csv").read_bytes() == (out2 / "gradebook.csv").read_bytes()
    for d in out1.iterdir():
        if d.is_dir():
            a = json.loads((d / "results.json").read_text())
            b = json.loads((out2 / d.name / "results.json").read_text())
            assert _strip_timing(a) == _strip_timing(b), d.name


def test_killed_run_resumes_to_the_same_gradebook(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    correct = sorted(p for p in (ROOT / "tests/fixtures/correct").iterdir() if p.is_dir())
    for i in range(8):
        shutil.copytree(correct[i % len(correct)], subs / f"s{i}")
    for name, (f, old, new) in list(BUGS.items())[:6]:
        make_submission(subs / f"b_{name}", replace={f: (old, new)})
    args = ["grade", str(subs), "--secret", "resume", "--jobs", "2", "--no-mnist", "--quiet"]
    full = tmp_path / "full"
    assert _run(args + ["--out", str(full)], timeout=900).returncode == 0
    part = tmp_path / "part"
    proc = subprocess.Popen([sys.executable, "-m", "grader.cli", *args, "--out", str(part)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline:
        done = len(list(part.glob("*/.grading-key"))) if part.exists() else 0
        if done >= 4:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list(part.glob("*/.grading-key")))
    assert 0 < done_before < 14, "the run should have been killed half-way"
    assert not (part / "gradebook.csv").exists()  # a file -9 caught mid-write may stay as a .tmp
    graded = next(part.glob("*/.grading-key")).parent
    (graded / f".results.json.{proc.pid}-x1y2z3.tmp").write_text('{"half')  # as -9 would leave one
    res = _run(args + ["--out", str(part)], timeout=900)
    assert res.returncode == 0
    assert not list(part.rglob("*.tmp")), "the resumed run should sweep what the killed one left half-written"
    run = json.loads((part / "run.json").read_text())
    assert run["skipped_as_already_graded"] >= done_before
    assert (part / "gradebook.csv").read_bytes() == (full / "gradebook.csv").read_bytes()


def test_half_written_files_of_a_dead_run_are_swept_and_a_live_writers_kept(tmp_path):
    from grader.report.atomic import sweep_leftovers, write_atomic

    student = tmp_path / "out" / "alice"
    student.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        left = student / f".results.json.{dead_pid}-ab12cd.tmp"   # kill -9 between create and rename
        older = tmp_path / "out" / ".gradebook.csv._68siiuc.tmp"  # the name before the pid was in it
        busy = student / f".feedback.md.{live.pid}-zz99yy.tmp"     # another run writing right now
        for f in (left, older, busy):
            f.write_text("half")
        (student / "notes.tmp").write_text("not hidden: not ours")
        removed = sweep_leftovers(tmp_path / "out")
        assert sorted(removed) == sorted([left, older])
        assert busy.exists() and (student / "notes.tmp").exists()
    finally:
        live.kill()
        live.wait()
    target = write_atomic(student / "results.json", "{}")
    assert target.read_text() == "{}" and not list(student.glob(".results.json.*"))


def test_no_student_can_take_a_name_the_grader_writes(tmp_path):
    """A student called like one of the batch's own files (history.jsonl, report.html, shard.json ...)
    gets a row under another folder name, and the run writes every file it writes for anyone else."""
    import re

    from grader.intake.discover import RESERVED

    written = set()  # file names in the code that writes the batch's folder
    sources = [ROOT / "grader/cli.py"] + [p for pkg in ("batch", "report", "instructor")
                                          for p in (ROOT / "grader" / pkg).rglob("*.py")]
    for path in sources:
        written |= set(re.findall(r'"([A-Za-z][\w-]*\.(?:csv|md|json|jsonl|html|xml|toml))"', path.read_text()))
    assert {"gradebook.csv", "history.jsonl", "report.html"} <= written  # the scan sees them
    per_student = {"results.json", "feedback.md", "record.json", "SPEC.toml"}
    assert written - per_student <= RESERVED, written - per_student - RESERVED
    subs = tmp_path / "subs"
    names = ["history.jsonl", "report.html", "shard.json", "classroom.json", "GRADEBOOK.csv"]
    for name in names:
        make_submission(subs / name)
    out = tmp_path / "out"
    res = _run(["grade", str(subs), "--out", str(out), "--no-mnist", "--public-only", "--shard", "1/1", "--quiet",
                "--secret", "reserved"], timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = _rows(out / "gradebook.csv")
    assert sorted(r["student"] for r in rows) == sorted(names) and all(r["status"] == "ok" for r in rows)
    for f in ("history.jsonl", "report.html", "shard.json"):
        assert (out / f).is_file(), f
    assert _run(["report", str(out)], timeout=300).returncode == 0
