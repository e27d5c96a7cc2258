"""Exit statuses and refusals of the command line (CONTRACT.md section 3)."""
from __future__ import annotations

import subprocess
import sys

from conftest import ROOT, make_submission


def grader(*args, **kw):
    return subprocess.run([sys.executable, "-m", "grader.cli", *args], capture_output=True, text=True, timeout=600, **kw)


def test_usage_errors_exit_2(tmp_path):
    assert grader("grade", str(tmp_path / "missing"), "--out", str(tmp_path / "o")).returncode == 2
    (tmp_path / "empty").mkdir()
    r = grader("grade", str(tmp_path / "empty"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "no submissions found" in r.stderr
    assert grader("grade").returncode == 2
    bad = tmp_path / "bad.toml"
    bad.write_text("[checks]\n'Nope.x' = 3\n")
    sub = make_submission(tmp_path / "s")
    r = grader("grade", str(sub), "--out", str(tmp_path / "o"), "--rubric", str(bad))
    assert r.returncode == 2 and "unknown checks" in r.stderr


def test_no_sandbox_refused_unless_forced(tmp_path):
    sub = make_submission(tmp_path / "s")
    r = grader("grade", str(sub), "--out", str(tmp_path / "o"), "--no-sandbox", "--no-mnist")
    assert r.returncode == 2 and "--force-unsafe" in r.stderr
    r = grader("grade", str(sub), "--out", str(tmp_path / "o"), "--no-sandbox", "--force-unsafe", "--no-mnist", "--quiet")
    assert r.returncode == 0


def test_fail_under_and_formats(tmp_path):
    sub = make_submission(tmp_path / "s", replace={"layers.py": ("self.grad_b = grad_output.sum(axis=0)", "self.grad_b = grad_output")})
    r = grader("grade", str(sub), "--out", str(tmp_path / "o"), "--no-mnist", "--fail-under", "99", "--quiet", "--format", "junit")
    assert r.returncode == 1 and r.stdout.startswith("<?xml")
    assert (tmp_path / "o" / "junit.xml").exists()
    r = grader("grade", str(sub), "--out", str(tmp_path / "o"), "--no-mnist", "--quiet", "--format", "json")
    assert r.returncode == 0 and '"score"' in r.stdout
    r = grader("grade", str(sub), "--out", str(tmp_path / "o2"), "--public-only", "--quiet")
    assert r.returncode == 0
    import json
    data = json.loads((tmp_path / "o2" / "s" / "results.json").read_text())
    assert all(t["tags"][1] == "public" for t in data["tests"])


def test_check_command_on_skeleton_and_reference():
    r = grader("check", str(ROOT / "assignment"))
    assert r.returncode == 0 and "TODO" in r.stdout and "hidden checks" in r.stdout
    r = grader("check", str(ROOT / "solutions"), "--component", "LogSoftmax")
    from grader.checks import REGISTRY

    n = sum(s.public for s in REGISTRY.values() if s.component == "LogSoftmax")  # every check is public (issue 15)
    assert r.returncode == 0 and "FAIL" not in r.stdout and f"LogSoftmax: {n}/{n}" in r.stdout
