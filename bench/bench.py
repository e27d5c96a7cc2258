"""Benchmark of the autograder: how long grading takes, where the time goes, how it scales, memory.

Run ``python bench/bench.py`` (``--repeat N``, ``--quick``, ``--out FILE``); it prints one JSON
document. Every timed figure is the median over the repeats, with min and max, its target and
whether the target was met. bench/README.md explains each figure and where its target comes from.

The submissions are built here from ``solutions/`` and ``tests/fixtures/correct/`` with small text
replacements (the same ideas as tests/test_batch.py, copied rather than imported: the benchmark does
not depend on the test suite).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret"
STUDENT_FILES = ("layers.py", "logistic_regression.py")

# --- targets ---------------------------------------------------------------------------------------
# Stated by the benchmark's brief: throughput of correct submissions with --jobs 2 (>= 20 per minute),
# `grader check` (<= 5 s), gradient checks alone (<= 1 s), peak memory of the parent (<= 400 MB) and
# of a worker (<= 1 GB), the cost of the sandbox (sandboxed / in-process <= 1.25).
# Derived here (see README): 20 submissions a minute on 2 processes leaves 6 s of one core per
# submission; the parts of one grading share those 6 s; a batch of N submissions with --jobs 2 must
# stay at or under 3 s of wall time per submission at any size.
# Issue 22 raised them: >= 90 correct submissions a minute with --jobs 2 (300 in under 4 minutes),
# sandboxed / in-process <= 1.1 (the whole grading and MNIST-MLP alone), --jobs 2 / --jobs 1 >= 1.8,
# CPU per correct submission within 1.5x of a plain numpy loop that only trains the reference.
SINGLE_BUDGET_S = 6.0
PART_TARGETS_S = {"intake": 0.2, "worker_start": 0.5, "checks": 1.0, "MNIST-MLP": 1.0, "MNIST-LogReg": 0.5,
                  "reports": 0.1}
RATIO_MAX = 1.1
MNIST_RATIO_MAX = 1.1
FLOOR_RATIO_MAX = 1.5
CORRECT_PER_MIN = 90.0
MIXED_PER_MIN = {1: 10.0, 2: 15.0}
SPEEDUP_MIN = 1.8
CHECK_MAX_S = 5.0
PARENT_MAX_MB = 400.0
WORKER_MAX_MB = 1024.0
LINEARITY_MAX = 1.2
PER_SUB_MAX_S = 60.0 / CORRECT_PER_MIN  # jobs 2: the same 20 per minute, as wall time per submission

# --- submissions ------------------------------------------------------------------------------------
BUGS = {  # file, original text of solutions/, buggy text (as in tests/test_batch.py)
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


def make_submission(dest: Path, *, layers: str | None = None, logreg: str | None = None,
                    replace: dict[str, tuple[str, str]] | None = None) -> Path:
    """A submission folder: the reference files, optionally edited (``{file: (old, new)}``)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in STUDENT_FILES:
        text = (ROOT / "solutions" / name).read_text()
        if replace and name in replace:
            old, new = replace[name]
            if old not in text:
                raise RuntimeError(f"bench: {old!r} is no longer in solutions/{name}; update BUGS")
            text = text.replace(old, new)
        (dest / name).write_text(text)
    if layers is not None:
        (dest / "layers.py").write_text(layers)
    if logreg is not None:
        (dest / "logistic_regression.py").write_text(logreg)
    return dest


def _correct_sources() -> list[Path]:
    return sorted(p for p in (ROOT / "tests/fixtures/correct").iterdir() if p.is_dir())


def add_correct(dest: Path, i: int) -> None:
    """The i-th correct submission: the reference, then each correct fixture in turn."""
    srcs = _correct_sources()
    k = i % (len(srcs) + 1)
    if k == 0:
        make_submission(dest)
    else:
        shutil.copytree(srcs[k - 1], dest)


def build_single(root: Path) -> Path:
    return make_submission(root / "reference_copy")


def build_mixed(root: Path, n: int = 40, *, quick: bool = False) -> Path:
    """``n`` submissions: buggy, hostile and malformed ones (as in tests/test_batch.py), the rest correct.

    The full class has 25 of those (10 buggy, 4 of them also zipped, 5 hostile including an endless
    loop in ``Linear.backward``, 5 malformed, the skeleton). ``quick`` keeps one or two of each kind and
    leaves out the endless loop, whose call timeout and training budget alone cost about 30 s.
    """
    root.mkdir(parents=True)
    bugs = list(BUGS.items())[:3] if quick else list(BUGS.items())
    for name, (f, old, new) in bugs:
        make_submission(root / f"buggy_{name}", replace={f: (old, new)})
    for i, (name, (f, old, new)) in enumerate(bugs[: 1 if quick else 4]):
        d = make_submission(root / f"_zipsrc{i}" / "assignment", replace={f: (old, new)})
        with zipfile.ZipFile(root / f"zipped_{name}.zip", "w") as zf:
            for p in d.iterdir():
                zf.write(p, f"student/assignment/{p.name}")
        shutil.rmtree(d.parent)
    make_submission(root / "hostile_exit", layers="import sys\nsys.exit(0)\n")
    make_submission(root / "hostile_print", replace={"layers.py": (
        "return X @ self.W + self.b", "print('\\x1b[2J::error::FULL MARKS\\nscore,100'); return X @ self.W + self.b")})
    (root / "malformed_zip.zip").write_bytes(b"this is not a zip")
    make_submission(root / "malformed_syntax", layers="def broken(:\n    pass\n")
    if not quick:
        make_submission(root / "hostile_osexit", logreg="import os\nos._exit(0)\n")
        make_submission(root / "hostile_loop", replace={"layers.py": ("return grad_output @ self.W.T", "while True: pass")})
        make_submission(root / "hostile_lying_eq", replace={"layers.py": (
            "return np.maximum(X, 0)",
            "class A(np.ndarray):\n            def __eq__(self, o): return True\n        return np.maximum(X, 0).view(A)")})
        (root / "malformed_nb.ipynb").write_text("{not json")
        d = make_submission(root / "malformed_missing_file")
        (d / "logistic_regression.py").unlink()
        d = make_submission(root / "malformed_binary")
        (d / "layers.py").write_bytes(b"\x00\xff\xfe binary")
    make_submission(root / "skeleton", layers=(ROOT / "assignment/layers.py").read_text(),
                    logreg=(ROOT / "assignment/logistic_regression.py").read_text())
    fixed = sum(1 for _ in root.iterdir())
    if n <= fixed:
        raise ValueError(f"a mixed class needs more than {fixed} submissions")
    for i in range(n - fixed):
        add_correct(root / f"correct_{i:02d}", i)
    return root


def build_correct(root: Path, n: int) -> Path:
    root.mkdir(parents=True)
    for i in range(n):
        add_correct(root / f"correct_{i:03d}", i)
    return root


def build_correct_buggy(root: Path, n: int) -> Path:
    """Half correct, half buggy, alternating, so every size has the same mix."""
    root.mkdir(parents=True)
    bugs = list(BUGS.items())
    for i in range(n):
        if i % 2 == 0:
            add_correct(root / f"s{i:03d}_correct", i // 2)
        else:
            name, (f, old, new) = bugs[(i // 2) % len(bugs)]
            make_submission(root / f"s{i:03d}_buggy_{name}", replace={f: (old, new)})
    return root


# --- figures ----------------------------------------------------------------------------------------

def figure(values: list[float], unit: str, target: float | None = None, op: str = "<=", nd: int = 4,
           note: str | None = None) -> dict:
    """Median, min and max of ``values`` (``unit`` is the key suffix: s, per_min, mb, x), the target and
    whether the median meets it (``met`` is None when the figure has no target)."""
    vals = [float(v) for v in values]
    med = statistics.median(vals) if vals else None
    d: dict = {f"median_{unit}": None if med is None else round(med, nd),
               f"min_{unit}": round(min(vals), nd) if vals else None,
               f"max_{unit}": round(max(vals), nd) if vals else None, "runs": len(vals)}
    if target is not None:
        d[f"target_{unit}"] = target
        d["target"] = f"{op} {target:g}"
        d["met"] = None if med is None else bool(med <= target if op == "<=" else med >= target)
    else:
        d["target"], d["met"] = None, None
    if note:
        d["note"] = note
    return d


def collect_missed(doc, path: str = "") -> list[str]:
    out = []
    if isinstance(doc, dict):
        if doc.get("met") is False:
            out.append(path)
        for k, v in doc.items():
            out += collect_missed(v, f"{path}.{k}" if path else k)
    return out


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def children_cpu() -> float:
    """User + system CPU seconds of every reaped descendant so far (pool and sandbox workers included:
    each is waited for by its parent), and of this process's fork server with the workers it reaped
    (they reach RUSAGE_CHILDREN only when the server ends)."""
    from grader.sandbox import spawner

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + spawner.server_cpu()


def grader_cmd() -> list[str]:
    exe = shutil.which("grader")
    return [exe] if exe else [sys.executable, "-m", "grader.cli"]


def _env() -> dict:
    env = dict(os.environ)
    env.pop("GRADER_SECRET", None)
    return env


# --- 1. one submission, sandboxed and in-process ---------------------------------------------------

def bench_single(work: Path, repeat: int) -> dict:
    from threadpoolctl import threadpool_limits

    from grader.intake import Submission
    from grader.pipeline import GradeOptions, grade_submission, reference_mnist
    from grader.report import render_feedback, render_gradebook, write_atomic, write_json

    sub_dir = build_single(work / "single")
    sub = Submission("reference_copy", sub_dir, "dir")
    parts = ("intake", "worker_start", "checks", "MNIST-MLP", "MNIST-LogReg")
    with threadpool_limits(1):  # the worker uses one BLAS thread: so does the in-process run
        t = time.perf_counter()
        ref = reference_mnist(SECRET)  # once per batch in grade_batch; passed in, as grade_batch does
        ref_s = time.perf_counter() - t
        opts = {True: GradeOptions(secret=SECRET, sandbox=True, reference_mnist=ref),
                False: GradeOptions(secret=SECRET, sandbox=False, reference_mnist=ref)}
        for sb in (True, False):  # warm-up: imports, dataset load, first-call caches
            grade_submission(sub, opts[sb])
        wall = {True: [], False: []}
        cpu = {True: [], False: []}
        timings = {True: {p: [] for p in parts}, False: {p: [] for p in parts}}
        scores = {True: set(), False: set()}
        last = None
        for i in range(repeat):
            for sb in ((True, False) if i % 2 == 0 else (False, True)):  # alternate to cancel drift
                c0, t = time.process_time() + children_cpu(), time.perf_counter()
                r = grade_submission(sub, opts[sb])
                wall[sb].append(time.perf_counter() - t)
                cpu[sb].append(time.process_time() + children_cpu() - c0)
                scores[sb].add(r.score)
                for p in parts:
                    timings[sb][p].append(r.timings.get(p, float("nan")))
                if sb:
                    last = r
    ratios = [a / b for a, b in zip(wall[True], wall[False])]
    assert last is not None

    # reports of one result: render each, then render + atomic write of the three (as write_student does)
    rep = {"results.json": [], "feedback.md": [], "gradebook.csv": [], "total_with_writes": []}
    out = work / "reports"
    k = 20
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(k):
            json.dumps(last.to_gradescope(), indent=2, allow_nan=False)
        rep["results.json"].append((time.perf_counter() - t) / k)
        t = time.perf_counter()
        for _ in range(k):
            render_feedback(last)
        rep["feedback.md"].append((time.perf_counter() - t) / k)
        t = time.perf_counter()
        for _ in range(k):
            render_gradebook([last])
        rep["gradebook.csv"].append((time.perf_counter() - t) / k)
        t = time.perf_counter()
        for _ in range(k):
            write_json(out / "results.json", last.to_gradescope())
            write_atomic(out / "feedback.md", render_feedback(last))
            write_atomic(out / "gradebook.csv", render_gradebook([last]))
        rep["total_with_writes"].append((time.perf_counter() - t) / k)

    sand = {p: figure(timings[True][p], "s", PART_TARGETS_S[p]) for p in parts}
    sand["reports"] = figure(rep["total_with_writes"], "s", PART_TARGETS_S["reports"], nd=5,
                             note="render results.json + feedback.md + gradebook row and write each atomically "
                                  "(fsync); per item below, render only")
    sand["reports_render_only"] = {k2: figure(v, "s", nd=6) for k2, v in rep.items() if k2 != "total_with_writes"}
    return {
        "submission": "copy of solutions/layers.py + solutions/logistic_regression.py",
        "scores": {"sandboxed": sorted(scores[True]), "in_process": sorted(scores[False])},
        "reference_mnist_once_s": round(ref_s, 3),
        "full_grading_sandboxed": figure(wall[True], "s", SINGLE_BUDGET_S,
                                         note="all public + hidden checks and both MNIST tests; reference MNIST "
                                              "figures computed once beforehand, as grade_batch does"),
        "full_grading_in_process": figure(wall[False], "s", SINGLE_BUDGET_S,
                                          note="GradeOptions(sandbox=False), i.e. grade --no-sandbox --force-unsafe"),
        "cpu_sandboxed": figure(cpu[True], "s", note="CPU seconds (this process + the worker) of the same runs; "
                                                     "wall well above CPU means the machine was busy"),
        "cpu_in_process": figure(cpu[False], "s"),
        "cpu_ratio_sandboxed_over_in_process": figure([a / b for a, b in zip(cpu[True], cpu[False])], "x", nd=3,
                                                      note="the same ratio in CPU seconds: what the sandbox costs in "
                                                           "work, unaffected by other load on the machine"),
        "ratio_sandboxed_over_in_process": dict(figure(ratios, "x", RATIO_MAX, nd=3,
                                                       note="per repeat, paired runs"),
                                                ratio_of_medians=round(statistics.median(wall[True])
                                                                       / statistics.median(wall[False]), 3)),
        "gradient_checks_sandboxed": figure(timings[True]["checks"], "s", PART_TARGETS_S["checks"],
                                            note="all public + hidden gradient checks of one submission"),
        "parts_sandboxed": sand,
        "parts_in_process": {p: figure(timings[False][p], "s") for p in parts},
    }


# --- 1b. MNIST-MLP alone: sandboxed, in-process, and the floor --------------------------------------

def _worker_cpu(impl) -> float:
    from grader.checks.mnist import _layers_cpu

    return _layers_cpu(impl) if getattr(impl, "_proc", None) is not None else 0.0


def training_floor(kind: str = "mlp") -> float:
    """CPU seconds of a plain in-process numpy loop that trains the reference's own layers under the
    protocol (same steps, batches and initialisation; no harness, no checks): the floor."""
    import numpy  # noqa: F401  (loaded first: threadpool_limits only limits libraries already loaded)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # as the worker
        return _floor(kind)


def _floor(kind: str) -> float:
    import numpy as np
    import solutions.layers as L
    import solutions.logistic_regression as LR

    from grader.checks.base import seed_for
    from grader.checks.mnist import LOGREG, MLP, batch_order, initial_params
    from grader.pipeline import mnist_data

    p = MLP if kind == "mlp" else LOGREG
    d = mnist_data(None)[kind]
    rng = seed_for(SECRET, p.component)
    params = initial_params(p, rng)
    order = batch_order(p, len(d.X_train), rng)
    c0 = time.process_time()
    if kind == "mlp":
        l1, relu, l2, lsm, nll = L.Linear(784, p.hidden), L.ReLU(), L.Linear(p.hidden, 10), L.LogSoftmax(), L.NLLLoss()
    else:
        lr_ = LR.LogisticRegression(784)
    for s in range(0, len(order), p.batch_size):
        idx = order[s:s + p.batch_size]
        xb, yb = d.X_train[idx].astype(np.float32) / np.float32(255), d.y_train[idx]
        if kind == "mlp":
            l1.W, l1.b, l2.W, l2.b = params["W1"], params["b1"], params["W2"], params["b2"]
            nll.forward(lsm.forward(l2.forward(relu.forward(l1.forward(xb)))), yb)
            l1.backward(relu.backward(l2.backward(lsm.backward(nll.backward(1.0)))))
            grads = {"W1": l1.grad_W, "b1": l1.grad_b, "W2": l2.grad_W, "b2": l2.grad_b}
        else:
            lr_.w, lr_.b = params["w"], params["b"]
            lr_.forward(xb, yb)
            lr_.backward(1.0)
            grads = {"w": lr_.grad_w, "b": lr_.grad_b}
        params = {k: params[k] - np.float32(p.lr) * grads[k].astype(np.float32) for k in params}
    return time.process_time() - c0


def bench_mnist(work: Path, repeat: int) -> dict:
    """MNIST-MLP alone on a copy of the reference: sandboxed (worker started beforehand) and in-process,
    paired, with CPU of both processes; and the floor, in the same run."""
    from threadpoolctl import threadpool_limits

    from grader.checks.mnist import MLP
    from grader.intake import Submission, prepare
    from grader.pipeline import mnist_data, reference_mnist
    from grader.sandbox.client import LocalImpl, SandboxConfig, SandboxImpl
    from grader.checks.mnist import train_and_score

    sub_dir = build_single(work / "mnist")
    ref = reference_mnist(SECRET)["MNIST-MLP"]
    data = mnist_data(None)["mlp"]
    wall = {True: [], False: []}
    cpu = {True: [], False: []}
    floors = []
    with threadpool_limits(1):
        for i in range(repeat + 1):
            for sb in ((True, False) if i % 2 == 0 else (False, True)):
                scratch = Path(tempfile.mkdtemp(prefix="bench-mnist-"))  # not under work: the sandbox uid must reach it
                prepared = prepare(Submission("ref", sub_dir, "dir"), scratch)
                impl = SandboxImpl(prepared.package_dir, SandboxConfig()) if sb else LocalImpl.from_package_dir(prepared.package_dir)
                if sb:
                    impl.start()
                w0, c0, t = _worker_cpu(impl), time.process_time(), time.perf_counter()
                run = train_and_score(impl, MLP, data, secret=SECRET, reference=ref)
                dt, dc = time.perf_counter() - t, time.process_time() - c0 + _worker_cpu(impl) - w0
                impl.close()
                shutil.rmtree(scratch, ignore_errors=True)
                if run.error is not None:
                    raise RuntimeError(f"bench: the reference failed MNIST-MLP: {run.error}")
                if i > 0:  # the first pair warms caches
                    wall[sb].append(dt)
                    cpu[sb].append(dc)
            if i > 0:
                floors.append(training_floor("mlp"))
    return {
        "protocol": {k: v for k, v in MLP.__dict__.items()},
        "sandboxed": figure(wall[True], "s", PART_TARGETS_S["MNIST-MLP"]),
        "in_process": figure(wall[False], "s"),
        "cpu_sandboxed": figure(cpu[True], "s", note="parent + worker CPU seconds"),
        "cpu_in_process": figure(cpu[False], "s"),
        "ratio_sandboxed_over_in_process": figure([a / b for a, b in zip(wall[True], wall[False])], "x",
                                                  MNIST_RATIO_MAX, nd=3, note="wall, paired runs"),
        "cpu_ratio_sandboxed_over_in_process": figure([a / b for a, b in zip(cpu[True], cpu[False])], "x",
                                                      MNIST_RATIO_MAX, nd=3, note="CPU, paired runs: what the "
                                                      "sandbox costs in work, whatever else runs on the machine"),
        "floor_cpu": figure(floors, "s", note="plain numpy loop training the reference's layers, same protocol"),
        "cpu_sandboxed_over_floor": figure([a / f for a, f in zip(cpu[True], floors)], "x", nd=3,
                                           note="the harness (shared memory, validation, a direction check on "
                                                "every step) over the bare training"),
    }


# --- 2. batches through the CLI ---------------------------------------------------------------------

def run_batch(subs: Path, out: Path, jobs: int) -> dict:
    if out.exists():
        shutil.rmtree(out)
    cmd = grader_cmd() + ["grade", str(subs), "--out", str(out), "--secret", SECRET, "--jobs", str(jobs),
                          "--quiet", "--format", "json"]
    load = os.getloadavg()[0]
    c0, t = children_cpu(), time.perf_counter()
    res = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env(),
                         timeout=3600)
    wall = time.perf_counter() - t
    cpu = children_cpu() - c0
    if res.returncode != 0:
        raise RuntimeError(f"grader grade exited with {res.returncode}: {res.stderr[-2000:]}")
    run = json.loads((out / "run.json").read_text())
    per = run["timings"]["per_submission"]
    statuses: dict[str, int] = {}
    for d in out.iterdir():
        if d.is_dir() and (d / "results.json").exists():
            s = json.loads((d / "results.json").read_text())["extra_data"]["status"]
            statuses[s] = statuses.get(s, 0) + 1
    slowest = sorted(((sum(v.values()), k) for k, v in per.items()), reverse=True)[:3]
    shutil.rmtree(out, ignore_errors=True)
    return {"wall": wall, "cpu": cpu, "load": load, "n": run["submissions"], "reference_mnist": run["timings"]["reference_mnist"],
            "grading": run["timings"]["grading"], "statuses": statuses,
            "slowest": [{"student": k, "seconds": round(s, 2)} for s, k in slowest]}


def batch_figures(runs: list[dict], per_min_target: float | None, per_sub_target: float | None = None) -> dict:
    n = runs[0]["n"]
    walls = [r["wall"] for r in runs]
    d = {"submissions": n,
         "wall": figure(walls, "s", nd=2, note="the whole `grader grade` command, start to exit"),
         "throughput": figure([n / w * 60 for w in walls], "per_min", per_min_target, ">=", nd=2),
         "cpu_per_submission": figure([r["cpu"] / n for r in runs], "s", nd=3,
                                      note="user+sys CPU of the command and all its processes, divided by the "
                                           "number of submissions; insensitive to other load on the machine"),
         "loadavg_1min_at_start": [round(r["load"], 2) for r in runs],
         "reference_mnist_s": figure([r["reference_mnist"] for r in runs], "s", nd=2),
         "grading_loop_s": figure([r["grading"] for r in runs], "s", nd=2),
         "statuses": runs[-1]["statuses"], "slowest_submissions": runs[-1]["slowest"]}
    if per_sub_target is not None:
        d["per_submission"] = figure([w / n for w in walls], "s", per_sub_target, nd=3)
    return d


# --- 3. grader check ---------------------------------------------------------------------------------

def bench_check(work: Path, repeat: int) -> dict:
    folder = make_submission(work / "check" / "assignment")
    cmd = grader_cmd() + ["check", str(folder)]
    walls = []
    for i in range(repeat + 1):
        t = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)
        w = time.perf_counter() - t
        if res.returncode != 0:
            raise RuntimeError(f"grader check exited with {res.returncode}: {res.stderr[-2000:]}")
        if i > 0:  # the first run is a warm-up (file cache)
            walls.append(w)
    failed = res.stdout.count("[FAIL]") + res.stdout.count("[TODO]")
    return dict(figure(walls, "s", CHECK_MAX_S, nd=3, note="subprocess `grader check <folder>`, reference files"),
                failed_checks=failed)


# --- 4. memory ---------------------------------------------------------------------------------------

def _vm_hwm_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def memory_probe(sub: str, out: str) -> None:
    """Runs in a fresh process: one full grading as ``grader grade <sub> --jobs 1`` would, then prints
    this process's peak RSS and the peak of every sandbox worker read just before it was closed."""
    from grader.sandbox import client

    peaks: list[int] = []
    orig_close, orig_kill = client.SandboxImpl.close, client.SandboxImpl._kill

    def record(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            v = _vm_hwm_kb(self._proc.pid)
            if v is not None:
                peaks.append(v)

    def close(self):
        record(self)
        return orig_close(self)

    def _kill(self):
        record(self)
        return orig_kill(self)

    client.SandboxImpl.close, client.SandboxImpl._kill = close, _kill
    from grader.batch import grade_batch
    from grader.pipeline import GradeOptions

    outcome = grade_batch(sub, out, GradeOptions(secret=SECRET), jobs=1)
    print(json.dumps({"parent_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "worker_vmhwm_kb": max(peaks) if peaks else None, "workers_seen": len(peaks),
                      "score": outcome.results[0].score}))


def bench_memory(work: Path, repeat: int) -> dict:
    sub = build_single(work / "memory")
    parent, worker, seen = [], [], []
    for i in range(repeat):
        out = work / f"memory-out-{i}"
        res = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--memory-probe", str(sub), str(out)],
                             capture_output=True, text=True, env=_env(), timeout=900)
        if res.returncode != 0:
            raise RuntimeError(f"memory probe failed: {res.stderr[-2000:]}")
        d = json.loads(res.stdout.strip().splitlines()[-1])
        parent.append(d["parent_maxrss_kb"] / 1024)
        if d["worker_vmhwm_kb"] is not None:
            worker.append(d["worker_vmhwm_kb"] / 1024)
        seen.append(d["workers_seen"])
        shutil.rmtree(out, ignore_errors=True)
    return {
        "parent_peak": figure(parent, "mb", PARENT_MAX_MB, nd=1,
                              note="ru_maxrss of a process running grade_batch on one submission with --jobs 1 "
                                   "(reference MNIST, full grading, reports)"),
        "worker_peak": dict(figure(worker, "mb", WORKER_MAX_MB, nd=1,
                                   note="VmHWM of the sandbox worker (the largest if it was restarted), read from "
                                        "/proc just before it is closed. Not RUSAGE_CHILDREN: on Linux a child's "
                                        "ru_maxrss starts from its parent's RSS at fork, so it would report the "
                                        "parent's ~350 MB"), workers_seen=max(seen) if seen else 0),
    }


# --- main --------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Benchmark the autograder; prints one JSON document.")
    ap.add_argument("--repeat", type=int, default=None, help="repeats per figure (default 5; 1 with --quick)")
    ap.add_argument("--quick", action="store_true", help="smoke mode: repeat 1, scaling sizes 10 and 20 only")
    ap.add_argument("--out", help="also write the JSON document to this file")
    ap.add_argument("--batch-repeat", type=int, default=None,
                    help="repeats of the batch and scaling figures (default: min(repeat, 2), which keeps the "
                         "default run under ~15 minutes)")
    ap.add_argument("--class-size", type=int, default=None,
                    help="submissions in the mixed and the correct class (default 40; 11 and 8 with --quick)")
    ap.add_argument("--memory-probe", nargs=2, metavar=("SUB", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memory_probe:
        memory_probe(*args.memory_probe)
        return 0
    repeat = args.repeat if args.repeat is not None else (1 if args.quick else 5)
    if repeat < 1:
        ap.error("--repeat must be at least 1")
    batch_repeat = args.batch_repeat if args.batch_repeat is not None else min(repeat, 2)
    sizes = [10, 20] if args.quick else [10, 20, 40, 80]

    import numpy
    import grader

    t_start = time.perf_counter()
    load0 = os.getloadavg()
    doc: dict = {"benchmark": {
        "started": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "quick": args.quick, "repeat": repeat, "batch_repeat": batch_repeat, "scaling_sizes": sizes,
        "grader_version": grader.__version__, "python": platform.python_version(), "numpy": numpy.__version__,
        "cpus": os.cpu_count(), "machine": platform.machine(), "secret": SECRET,
        "statistic": "median over repeats (min, max alongside); `met` compares the median with the target"}}
    work = Path(tempfile.mkdtemp(prefix="bpg-bench-"))
    try:
        log(f"single submission, {repeat} repeat(s) sandboxed and in-process")
        doc["single_submission"] = bench_single(work, repeat)

        log(f"MNIST-MLP alone, {repeat} repeat(s) sandboxed and in-process, and the floor")
        doc["mnist_mlp"] = bench_mnist(work, repeat)

        log(f"grader check, {repeat} repeat(s)")
        doc["grader_check"] = bench_check(work, repeat)

        log(f"memory, {repeat} repeat(s)")
        doc["memory"] = bench_memory(work, repeat)

        n_mixed, n_correct = (11, 8) if args.quick else (40, 40)
        if args.class_size:
            n_mixed = n_correct = args.class_size
        mixed = build_mixed(work / "mixed", n_mixed, quick=args.quick and not args.class_size)
        correct = build_correct(work / "correct", n_correct)
        batch: dict = {}
        runs: dict[int, list] = {1: [], 2: []}
        for i in range(batch_repeat):
            for jobs in ((1, 2) if i % 2 == 0 else (2, 1)):
                log(f"batch: {n_mixed} mixed, --jobs {jobs} (repeat {i + 1}/{batch_repeat})")
                runs[jobs].append(run_batch(mixed, work / "out", jobs))
        for jobs in (1, 2):
            batch[f"mixed_{n_mixed}_jobs{jobs}"] = batch_figures(runs[jobs], MIXED_PER_MIN[jobs])
        batch["speedup_jobs2_over_jobs1"] = figure([a["wall"] / b["wall"] for a, b in zip(runs[1], runs[2])], "x",
                                                   SPEEDUP_MIN, ">=", nd=3, note=f"wall(jobs 1) / wall(jobs 2), "
                                                   f"paired runs, the {n_mixed} mixed submissions; 2 is ideal on 2 cores")
        cruns = []
        for i in range(batch_repeat):
            log(f"batch: {n_correct} correct, --jobs 2 (repeat {i + 1}/{batch_repeat})")
            cruns.append(run_batch(correct, work / "out", 2))
        batch[f"correct_{n_correct}_jobs2"] = batch_figures(cruns, CORRECT_PER_MIN, PER_SUB_MAX_S)
        floor = statistics.median(training_floor("mlp") + training_floor("logreg") for _ in range(3))
        batch["cpu_per_correct_over_floor"] = figure(
            [r["cpu"] / r["n"] / floor for r in cruns], "x", FLOOR_RATIO_MAX, nd=3,
            note=f"CPU per correct submission (whole `grader grade`, every check, both MNIST tests) over the floor: "
                 f"a plain numpy loop training the reference under both protocols, {floor:.3f} s, same run")
        doc["batch"] = batch

        scaling: dict = {"mix": "half correct, half buggy (alternating), --jobs 2, MNIST included", "sizes": {}}
        sruns: dict[int, list] = {}
        dirs = {n: build_correct_buggy(work / f"scale{n}", n) for n in sizes}
        for i in range(batch_repeat):
            for n in (sizes if i % 2 == 0 else sizes[::-1]):
                log(f"scaling: {n} submissions, --jobs 2 (repeat {i + 1}/{batch_repeat})")
                sruns.setdefault(n, []).append(run_batch(dirs[n], work / "out", 2))
        for n in sizes:
            scaling["sizes"][str(n)] = batch_figures(sruns[n], None, PER_SUB_MAX_S)
        lo, hi = sizes[0], sizes[-1]
        scaling[f"linearity_t{hi}_over_t{lo}_over_{hi // lo}"] = figure(
            [b["wall"] / a["wall"] / (hi / lo) for a, b in zip(sruns[lo], sruns[hi])], "x", LINEARITY_MAX, nd=3,
            note="1 = perfectly linear; below 1: fixed costs (start-up, reference MNIST) amortised; "
                 "above 1: cost per submission grows with the batch")
        doc["scaling"] = scaling
    finally:
        shutil.rmtree(work, ignore_errors=True)

    doc["benchmark"]["wall_s"] = round(time.perf_counter() - t_start, 1)
    doc["benchmark"]["loadavg_start_end"] = [[round(x, 2) for x in load0], [round(x, 2) for x in os.getloadavg()]]
    doc["targets_missed"] = collect_missed({k: v for k, v in doc.items() if k != "benchmark"})
    text = json.dumps(doc, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
