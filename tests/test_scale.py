"""Beyond one machine (issue 18): a Dask executor, CI shards and their merge.

The same 40 mixed submissions are graded three ways (the local process pool, a Dask LocalCluster,
four shards merged) and must give byte-identical gradebooks and summaries, and identical results.json
and feedback apart from timing fields; a Dask run killed with SIGKILL half-way resumes to the same
gradebook. Merging refuses shards that do not belong together. ``--no-mnist`` keeps this quick: the
executor and the shards do not change what a task computes, only where it runs.
"""
from __future__ import annotations

import hashlib
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

SECRET = "scale-secret"
BUGS = {  # file, text of solutions/, buggy text
    "bias_sum": ("layers.py", "self.grad_b = grad_output.sum(axis=0)", "self.grad_b = grad_output"),
    "bias_mean": ("layers.py", "self.grad_b = grad_output.sum(axis=0)", "self.grad_b = grad_output.mean(axis=0)"),
    "relu_zero": ("layers.py", "return grad_output * (self._X > 0)", "return grad_output * (self._X >= 0)"),
    "dx_T": ("layers.py", "return grad_output @ self.W.T", "return (self.W @ grad_output.T).T * -1"),
    "lsm_unstable": ("layers.py", "m = T.max(axis=1, keepdims=True)", "m = 0.0"),
    "nll_sign": ("layers.py", "total = -picked.sum()", "total = picked.sum()"),
    "lr_nomean": ("logistic_regression.py", "r = (p - y) * (float(grad_output) / X.shape[0])",
                  "r = (p - y) * float(grad_output)"),
    "lr_sign": ("logistic_regression.py", "r = (p - y) * (float(grad_output) / X.shape[0])",
                "r = (y - p) * (float(grad_output) / X.shape[0])"),
    "gw_accum": ("layers.py", "self.grad_W = X.T @ grad_output", "self.grad_W = self.grad_W + X.T @ grad_output"),
    "inplace_relu": ("layers.py", "return np.maximum(X, 0)", "np.maximum(X, 0, out=X)\n        return X"),
}


def build_mixed(root: Path) -> Path:
    """40 submissions: correct in several styles, buggy, zipped, notebooks, hostile, malformed."""
    root.mkdir(parents=True)
    correct = sorted(p for p in (ROOT / "tests/fixtures/correct").iterdir() if p.is_dir())
    for i in range(11):
        shutil.copytree(correct[i % len(correct)], root / f"correct_{i:02d}_{correct[i % len(correct)].name}")
    make_submission(root / "Ivanova Анна")  # a non-ASCII name: hashed for its shard like any other
    for name, (f, old, new) in BUGS.items():
        make_submission(root / f"buggy_{name}", replace={f: (old, new)})
    for i, (name, (f, old, new)) in enumerate(list(BUGS.items())[:4]):
        d = make_submission(root / f"_zipsrc{i}" / "assignment", replace={f: (old, new)})
        with zipfile.ZipFile(root / f"zipped_{name}.zip", "w") as zf:
            for p in d.iterdir():
                zf.write(p, f"student/assignment/{p.name}")
        shutil.rmtree(d.parent)
    for i in range(2):
        shutil.copy(ROOT / "data/examples/carol_notebook.ipynb", root / f"notebook_{i}.ipynb")
    make_submission(root / "hostile_exit", layers="import sys\nsys.exit(0)\n")
    make_submission(root / "hostile_osexit", logreg="import os\nos._exit(0)\n")
    make_submission(root / "hostile_loop", replace={"layers.py": ("return grad_output @ self.W.T", "while True: pass")})
    make_submission(root / "hostile_print", replace={"layers.py": ("return X @ self.W + self.b",
                    "print('<script>x</script>::error::FULL'); return X @ self.W + self.b")})
    make_submission(root / "hostile_lying_eq", replace={"layers.py": ("return np.maximum(X, 0)",
                    "class A(np.ndarray):\n            def __eq__(self, o): return True\n        return np.maximum(X, 0).view(A)")})
    (root / "malformed_zip.zip").write_bytes(b"this is not a zip")
    (root / "malformed_nb.ipynb").write_text("{not json")
    (make_submission(root / "malformed_missing_file") / "logistic_regression.py").unlink()
    make_submission(root / "malformed_syntax", layers="def broken(:\n    pass\n")
    (make_submission(root / "malformed_binary") / "layers.py").write_bytes(b"\x00\xff\xfe binary")
    make_submission(root / "skeleton", layers=(ROOT / "assignment/layers.py").read_text(),
                    logreg=(ROOT / "assignment/logistic_regression.py").read_text())
    make_submission(root / "skeleton_copy", layers=(ROOT / "assignment/layers.py").read_text())
    assert len([p for p in root.iterdir() if not p.name.startswith("_")]) == 40
    return root


def _run(args, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "grader.cli", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, **kw)


BASE = ["--secret", SECRET, "--jobs", "2", "--no-mnist", "--quiet"]


def _strip_timing(d: dict) -> dict:
    d = json.loads(json.dumps(d))
    d.pop("execution_time", None)
    d.get("extra_data", {}).pop("timings", None)
    for k in ("used", "wall"):  # seconds of the time budget spent (issue 21): timing too
        d.get("extra_data", {}).get("budget", {}).pop(k, None)
    return d


def _folders(out: Path) -> dict[str, Path]:
    """student id -> folder, from each folder's record.json (folder names are not ids)."""
    return {json.loads(p.read_text())["student"]: p.parent for p in out.glob("*/record.json")}


def assert_same_run(a: Path, b: Path) -> None:
    assert (a / "gradebook.csv").read_bytes() == (b / "gradebook.csv").read_bytes()
    assert (a / "summary.md").read_bytes() == (b / "summary.md").read_bytes()
    fa, fb = _folders(a), _folders(b)
    assert sorted(fa) == sorted(fb) and len(fa) == 40
    for s in fa:
        ra, rb = (json.loads((f[s] / "results.json").read_text()) for f in (fa, fb))
        assert _strip_timing(ra) == _strip_timing(rb), s
        assert (fa[s] / "feedback.md").read_bytes() == (fb[s] / "feedback.md").read_bytes(), s


@pytest.fixture(scope="module")
def klass(tmp_path_factory) -> Path:
    return build_mixed(tmp_path_factory.mktemp("scale") / "submissions")


@pytest.fixture(scope="module")
def local_run(klass, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "out"
    res = _run(["grade", str(klass), "--out", str(out), *BASE], timeout=1200)
    assert res.returncode == 0, res.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def dask_available():
    pytest.importorskip("distributed", reason='the optional extra: pip install -e ".[dask]"')


def test_the_local_run_is_a_real_mixed_class(local_run):
    rows = (local_run / "gradebook.csv").read_text().splitlines()[1:]
    statuses = {r.split(",")[3] for r in rows}
    assert len(rows) == 40 and {"ok", "error", "timeout", "rejected"} <= statuses
    assert (local_run / "report.html").stat().st_size > 10_000  # written at the end of every batch


def test_dask_local_gives_the_same_outputs(klass, local_run, dask_available, tmp_path):
    out = tmp_path / "dask"
    res = _run(["grade", str(klass), "--out", str(out), *BASE, "--executor", "dask-local"], timeout=1200)
    assert res.returncode == 0, res.stderr[-3000:]
    assert_same_run(local_run, out)
    assert (out / "report.html").exists()


def test_four_shards_merged_give_the_same_outputs(klass, local_run, tmp_path):
    shards = []
    for i in range(1, 5):
        d = tmp_path / f"shard{i}"
        res = _run(["grade", str(klass), "--out", str(d), *BASE, "--shard", f"{i}/4"], timeout=1200)
        assert res.returncode == 0, res.stderr[-3000:]
        m = json.loads((d / "shard.json").read_text())
        assert (m["shard"], m["of"]) == (i, 4) and SECRET not in json.dumps(m)
        assert 0 < len(m["students"]) < 40  # a real split
        shards.append(d)
    sizes = [len(json.loads((d / "shard.json").read_text())["students"]) for d in shards]
    assert sum(sizes) == 40
    merged = tmp_path / "merged"
    res = _run(["merge", str(merged), *map(str, shards)], timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert_same_run(local_run, merged)
    run = json.loads((merged / "run.json").read_text())
    assert run["submissions"] == 40 and [m["shard"] for m in run["merged_from"]] == [1, 2, 3, 4]
    assert (merged / "report.html").exists()


def test_killed_dask_run_resumes_to_the_same_gradebook(klass, local_run, dask_available, tmp_path):
    import psutil  # a dependency of distributed

    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "grader.cli", "grade", str(klass), "--out", str(out), *BASE,
                             "--executor", "dask-local"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=env, cwd=ROOT)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if out.exists() and len(list(out.glob("*/.grading-key"))) >= 15:
            break
        time.sleep(0.05)
    children = psutil.Process(proc.pid).children(recursive=True)
    os.kill(proc.pid, signal.SIGKILL)  # the grader itself, as `kill -9 PID` would
    proc.wait()
    done_before = len(list(out.glob("*/.grading-key")))
    assert 0 < done_before < 40, "the run should have been killed half-way"
    assert not (out / "gradebook.csv").exists()  # a file being written when -9 hit may stay as a .tmp
    gone, alive = psutil.wait_procs(children, timeout=60)
    assert not alive, f"processes left behind by the killed run: {[p.pid for p in alive]}"
    res = _run(["grade", str(klass), "--out", str(out), *BASE, "--executor", "dask-local"], timeout=1200)
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads((out / "run.json").read_text())["skipped_as_already_graded"] >= done_before
    assert not list(out.rglob("*.tmp")), "the resumed run should sweep what the killed one left half-written"
    assert_same_run(local_run, out)


# --- shards: the assignment and the checks of a merge ------------------------------------------------

def test_shard_assignment_is_the_documented_stable_hash():
    from grader.batch.shard import parse_shard, shard_of

    for sid in ("alice", "Ivanova Анна", "学生", "x" * 200):
        expected = int(hashlib.sha256(sid.encode("utf-8")).hexdigest()[:16], 16) % 4 + 1
        assert shard_of(sid, 4) == expected
    counts = [0] * 4
    for k in range(4000):
        counts[shard_of(f"s{k}", 4) - 1] += 1
    assert min(counts) > 900  # balanced enough for a CI matrix
    assert parse_shard("2/4") == (2, 4)
    for bad in ("0/4", "5/4", "1/0", "a/b", "3"):
        with pytest.raises(ValueError):
            parse_shard(bad)


@pytest.fixture(scope="module")
def small_shards(tmp_path_factory):
    """The seven bundled examples in two shards, public checks only (fast), plus odd ones out."""
    base = tmp_path_factory.mktemp("small")
    args = ["--jobs", "2", "--public-only", "--quiet"]
    dirs = {}
    for name, shard, extra in (("s1", "1/2", ["--secret", "A"]), ("s2", "2/2", ["--secret", "A"]),
                               ("s2_other_secret", "2/2", ["--secret", "B"]),
                               ("s2_other_rubric", "2/2", ["--secret", "A", "--rubric", str(base / "r.toml")]),
                               ("s1_of3", "1/3", ["--secret", "A"])):
        if name == "s2_other_rubric":
            text = (ROOT / "grader/scoring/default_rubric.toml").read_text()
            (base / "r.toml").write_text(text.replace("public_share = 0.25", "public_share = 0.3"))
        res = _run(["grade", str(ROOT / "data/examples"), "--out", str(base / name), "--shard", shard, *args, *extra],
                   timeout=600)
        assert res.returncode == 0, res.stderr[-2000:]
        dirs[name] = base / name
    full = base / "full"
    assert _run(["grade", str(ROOT / "data/examples"), "--out", str(full), "--secret", "A", *args]).returncode == 0
    dirs["full"] = full
    return dirs


def test_merge_of_two_shards_equals_the_unsharded_run(small_shards, tmp_path):
    res = _run(["merge", str(tmp_path / "m"), str(small_shards["s1"]), str(small_shards["s2"])])
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "m/gradebook.csv").read_bytes() == (small_shards["full"] / "gradebook.csv").read_bytes()
    assert (tmp_path / "m/summary.md").read_bytes() == (small_shards["full"] / "summary.md").read_bytes()


@pytest.mark.parametrize("other, message", [
    ("s2_other_secret", "shards differ in secret"),
    ("s2_other_rubric", "shards differ in rubric"),
    ("s1_of3", "shards differ in shard count n"),
])
def test_merge_refuses_shards_that_do_not_belong_together(small_shards, tmp_path, other, message):
    res = _run(["merge", str(tmp_path / "m"), str(small_shards["s1"]), str(small_shards[other])])
    assert res.returncode == 2 and message in res.stderr, res.stderr
    assert not (tmp_path / "m" / "gradebook.csv").exists()


def test_merge_refuses_another_grader_version(small_shards, tmp_path):
    forged = tmp_path / "s2_old"
    shutil.copytree(small_shards["s2"], forged)
    m = json.loads((forged / "shard.json").read_text())
    m["grader_version"] = "0.9.0"
    (forged / "shard.json").write_text(json.dumps(m))
    res = _run(["merge", str(tmp_path / "m"), str(small_shards["s1"]), str(forged)])
    assert res.returncode == 2 and "shards differ in grader version" in res.stderr


def test_merge_reports_missing_and_duplicated_shards(small_shards, tmp_path):
    res = _run(["merge", str(tmp_path / "m"), str(small_shards["s1"])])
    assert res.returncode == 2 and "missing shard(s) 2/2" in res.stderr
    copy = tmp_path / "s1_again"
    shutil.copytree(small_shards["s1"], copy)
    res = _run(["merge", str(tmp_path / "m"), str(small_shards["s1"]), str(copy), str(small_shards["s2"])])
    assert res.returncode == 2 and "shard 1/2 given more than once" in res.stderr
    res = _run(["merge", str(tmp_path / "m"), str(small_shards["s1"]), str(small_shards["full"])])
    assert res.returncode == 2 and "no shard.json" in res.stderr
    res = _run(["merge", str(small_shards["s1"]), str(small_shards["s1"]), str(small_shards["s2"])])
    assert res.returncode == 2 and "is one of the shards" in res.stderr


def test_an_unsharded_rerun_removes_a_stale_manifest(small_shards, tmp_path):
    d = tmp_path / "reused"
    shutil.copytree(small_shards["s1"], d)
    assert _run(["grade", str(ROOT / "data/examples"), "--out", str(d), "--secret", "A", "--jobs", "2",
                 "--public-only", "--quiet"]).returncode == 0
    assert not (d / "shard.json").exists()  # the folder now holds the whole class, not shard 1/2


# --- the executor option -----------------------------------------------------------------------------

def test_missing_dask_extra_is_one_line_naming_it(tmp_path):
    fake = tmp_path / "nodask" / "distributed"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('not installed')\n")
    env = {**os.environ, "PYTHONPATH": f"{fake.parent}{os.pathsep}{ROOT}"}
    res = subprocess.run([sys.executable, "-m", "grader.cli", "grade", str(ROOT / "data/examples/alice"), "--out",
                          str(tmp_path / "o"), "--executor", "dask-local", "--quiet"], capture_output=True, text=True,
                         env=env, cwd=ROOT)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and '.[dask]' in lines[0] and "Traceback" not in res.stderr, res.stderr


@pytest.mark.parametrize("extra, message", [
    (["--executor", "dask://nohost"], "dask://HOST:PORT"),
    (["--executor", "spark"], "expected local, dask-local or dask://HOST:PORT"),
    (["--executor", "dask-local", "--no-sandbox", "--force-unsafe"], "inside the Dask worker process"),
    (["--shard", "0/4"], "numbered 1 to 4"),
])
def test_bad_scale_options_are_usage_errors(tmp_path, extra, message):
    res = _run(["grade", str(ROOT / "data/examples/alice"), "--out", str(tmp_path / "o"), "--quiet", *extra])
    assert res.returncode == 2 and message in res.stderr, res.stderr


def test_unreachable_scheduler_is_a_usage_error(tmp_path, dask_available):
    res = _run(["grade", str(ROOT / "data/examples/alice"), "--out", str(tmp_path / "o"), "--quiet",
                "--executor", "dask://127.0.0.1:9"], timeout=120)
    assert res.returncode == 2 and "cannot reach the Dask scheduler" in res.stderr, res.stderr


def test_a_remote_scheduler_grades_like_the_local_pool(tmp_path, dask_available):
    """``dask://HOST:PORT``: a scheduler and a worker started as separate commands, as on a cluster."""
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address="127.0.0.1:0")
    try:
        address = cluster.scheduler_address.replace("tcp://", "dask://")
        subs = tmp_path / "subs"
        for name in ("alice", "erin_unstable"):
            shutil.copytree(ROOT / "data/examples" / name, subs / name)
        shutil.copy(ROOT / "data/examples/bob_bias_bug.zip", subs)
        args = ["grade", str(subs), "--secret", "remote", "--public-only", "--quiet"]
        res = _run([*args, "--out", str(tmp_path / "d"), "--executor", address], timeout=600)
        assert res.returncode == 0, res.stderr[-2000:]
        assert _run([*args, "--out", str(tmp_path / "l"), "--jobs", "2"]).returncode == 0
        assert (tmp_path / "d/gradebook.csv").read_bytes() == (tmp_path / "l/gradebook.csv").read_bytes()
        assert len(cluster.scheduler_info["workers"]) == 1  # the cluster outlives the grader's client
    finally:
        cluster.close()


def test_preflight_refuses_workers_on_another_version_or_without_the_folder(tmp_path):
    from grader import __version__
    from grader.batch.dask_exec import ExecutorSpecError, preflight

    class FakeClient:  # the two calls preflight makes, answering as workers of a real cluster would
        def __init__(self, facts):
            self.facts = facts

        def wait_for_workers(self, n, timeout):
            if not self.facts:
                raise TimeoutError

        def run(self, fn, path):
            return {w: (f if f is not None else fn(path)) for w, f in self.facts.items()}

    preflight(FakeClient({"tcp://a:1": None, "tcp://b:1": None}), str(tmp_path))  # real facts: all good
    cases = [({"tcp://a:1": None, "tcp://b:1": {"version": "0.1", "sees": True}}, "runs grader 0.1"),
             ({"tcp://a:1": {"version": __version__, "sees": False}}, "cannot see"),
             ({}, "no workers")]
    for facts, message in cases:
        with pytest.raises(ExecutorSpecError, match=message):
            preflight(FakeClient(facts), str(tmp_path), wait_s=0.1)
