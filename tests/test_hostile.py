"""Hostile submissions: every attack in ``tests/fixtures/hostile/`` scores nothing on what it attacked,
with a clear reason, while honest submissions graded in the same batch are graded normally; and
afterwards the project, the other submissions and the process table are as they were.

Each fixture declares what it must get, in ``expect.json`` inside its folder (the grader never copies
it: only ``layers.py`` and ``logistic_regression.py`` are taken) or in a ``<name>.expect.json`` beside a
.zip / .ipynb::

    {"attack": "...",                     # what it tries
     "component": ["Linear", ...] | "all", # where it must score max_score_on_attacked
     "checks": ["Linear.backward", ...],   # optional: check-id prefixes, instead of or with component
     "max_score_on_attacked": 0 | null,    # null: the attack is not after points (a DoS, a daemon, ...)
     "status": ["ok", "error", "timeout", "rejected"],
     "reason_contains": ["..."],           # each in the reason, the notes or an attacked test's output
     # optional:
     "full_marks": [...] | "all",          # components graded normally next to the attack
     "reason_absent": [...], "absent_files": [...], "no_reference_text": true,
     "max_seconds": 45, "max_output_chars": 4100, "max_disk_mb": 128, "mnist": true}

The attacks on training (``tests/fixtures/hostile_training/``) need MNIST and run in a second, small
batch. ``tests/fixtures/make_hostile_containers.py`` rebuilds the .zip / .ipynb fixtures.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from grader.batch import grade_batch
from grader.intake import discover, prepare, student_id
from grader.pipeline import GradeOptions, grade_submission, plan, run_tests
from grader.report import github_annotations, github_summary, render_junit, render_text
from grader.sandbox.client import SandboxConfig, SandboxImpl
from grader.scoring import SubmissionResult

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = ROOT / "tests" / "fixtures" / "hostile"
TRAINING = ROOT / "tests" / "fixtures" / "hostile_training"
SECRET = "hostile-suite-secret"
CONFIG = SandboxConfig(call_timeout=3.0)
SANDBOX_UIDS = range(850_000, 950_000)
TREE_EXCLUDE = {".git", "__pycache__", ".pytest_cache"}
LAYERS = ["Linear", "ReLU", "LogSoftmax", "NLLLoss"]

# Submissions made at test time: names and file types git cannot (or should not) hold.
WEIRD_ZIP = "evil\x1b[31m\n::error::pwned.zip"
WEIRD_DIR = "tab\there\n::warning file=x::student"
WEIRD_FILE = "notes\n::error::from a file name.txt"
GENERATED = {
    "honest_correct": {"attack": "none: a copy of the reference solution", "component": [],
                       "max_score_on_attacked": None, "status": ["ok"], "reason_contains": [],
                       "full_marks": "all"},
    "honest_buggy": {"attack": "none: honest, with two bugs (grad_b averaged, ReLU derivative 1 at 0)",
                     "component": [], "max_score_on_attacked": None, "status": ["ok"], "reason_contains": [],
                     "full_marks": ["LogSoftmax", "NLLLoss", "LogisticRegression"],
                     "loses_points": ["Linear", "ReLU"]},
    "fifo_layers": {"attack": "layers.py is a named pipe (reading it would block the grader)",
                    "component": LAYERS, "max_score_on_attacked": 0, "status": ["error"],
                    "reason_contains": ["not a regular file"], "full_marks": ["LogisticRegression"]},
    # Ids are exact but for characters no report can show (issue 16): each becomes "?".
    student_id(WEIRD_ZIP[:-4]): {"attack": "a file name with an escape sequence and a newline + workflow "
                                           "command (the content is not a zip)",
                                 "component": "all", "max_score_on_attacked": 0, "status": ["rejected"],
                                 "reason_contains": ["not a readable zip archive"]},
    student_id(WEIRD_DIR): {"attack": "a folder name with a tab, a newline and a workflow "
                                                     "command (honest content)",
                                           "component": [], "max_score_on_attacked": None, "status": ["ok"],
                                           "reason_contains": [], "full_marks": "all"},
    # Every entry is a row (issue 16): what is not a submission is rejected, saying what it is.
    "symlinked_submission": {"attack": "a symbolic link to an honest submission folder", "component": "all",
                             "max_score_on_attacked": 0, "status": ["rejected"], "reason_contains": ["symbolic link"]},
    student_id(WEIRD_FILE[:-4]): {"attack": "a text file whose name holds a newline and a workflow command",
                                  "component": "all", "max_score_on_attacked": 0, "status": ["rejected"],
                                  "reason_contains": ["a file of another type"]},
}


# --- helpers ---------------------------------------------------------------------------------------

def load_expectations(folder: Path) -> dict[str, dict]:
    out = {}
    for entry in sorted(folder.iterdir()):
        if entry.is_dir() and (entry / "expect.json").is_file():
            out[entry.name] = json.loads((entry / "expect.json").read_text())
        elif entry.name.endswith(".expect.json"):
            out[entry.name[: -len(".expect.json")]] = json.loads(entry.read_text())
    return out


def tree_digest(root: Path, exclude_rel: tuple[str, ...] = ()) -> dict[str, str]:
    """sha256 of every file (or link target) under ``root``, by relative path."""
    digests = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        dirnames[:] = [d for d in dirnames if d not in TREE_EXCLUDE
                       and os.path.normpath(os.path.join(rel_dir, d)) not in exclude_rel]
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                digests[rel] = "link:" + os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with open(path, "rb") as fh:
                    for chunk in iter(lambda: fh.read(1 << 20), b""):
                        h.update(chunk)
                digests[rel] = h.hexdigest() + f":{stat.S_IMODE(st.st_mode):o}"
            elif not stat.S_ISDIR(st.st_mode):
                digests[rel] = f"special:{stat.S_IFMT(st.st_mode)}"
    return digests


def project_digest() -> dict[str, str]:
    return tree_digest(ROOT, exclude_rel=(os.path.join("data", "mnist", ".cache"),))


def _proc_status(pid: str) -> dict[str, str]:
    fields = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                k, _, v = line.partition(":")
                fields[k] = v.strip()
    except OSError:
        pass
    return fields


def live_processes() -> dict[int, dict]:
    """pid -> {uid, ppid, state, cmd} of every process that is not a zombie."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _proc_status(entry)
            if st and not st.get("State", "").startswith(("Z", "X")):
                try:
                    with open(f"/proc/{entry}/cmdline", "rb") as fh:
                        cmd = fh.read(4000).replace(b"\0", b" ").decode("utf-8", "replace")
                except OSError:
                    cmd = ""
                out[int(entry)] = {"uid": int(st["Uid"].split()[0]), "ppid": int(st["PPid"]),
                                   "state": st["State"][:1], "cmd": cmd}
    return out


def descendants(pid: int, procs: dict[int, dict]) -> set[int]:
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, info in procs.items() if info["ppid"] in frontier} - found
        found |= frontier
    return found


def wait_for(condition, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


# Shipped by ships_extra_files, but written only into the temporary copy: committed in the fixture,
# a conftest.py (and the __init__.py that makes its folder a package) would be imported by pytest
# itself while it collects tests/, running the attack in the trusted test process.
SHIPPED_AT_TEST_TIME = {
    "conftest.py": '''"""Shipped conftest: would make every pytest test pass."""
import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    outcome.get_result().outcome = "passed"
''',
    "__init__.py": 'import os\nos.system("touch /tmp/bpg-hostile-pwned-init")\n',
}


def materialize(batch: Path) -> None:
    """The hostile folder plus what only exists at test time: honest submissions, odd names, a FIFO."""
    shutil.copytree(HOSTILE, batch, symlinks=True)
    for meta in batch.glob("*.expect.json"):  # the test's own metadata: every entry of a batch is a row
        meta.unlink()
    for name, text in SHIPPED_AT_TEST_TIME.items():
        (batch / "ships_extra_files" / name).write_text(text)
    # Relative links point into the project from the fixture's real place; keep that target.
    for dirpath, dirnames, filenames in os.walk(batch):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if p.is_symlink():
                original = HOSTILE / p.relative_to(batch)
                target = (original.parent / os.readlink(p)).resolve()
                p.unlink()
                p.symlink_to(target)
    good = batch / "honest_correct"
    good.mkdir()
    for name in ("layers.py", "logistic_regression.py"):
        shutil.copyfile(ROOT / "solutions" / name, good / name)
    buggy = batch / "honest_buggy"
    buggy.mkdir()
    src = (ROOT / "solutions" / "layers.py").read_text()
    for old, new in (("self.grad_b = grad_output.sum(axis=0)", "self.grad_b = grad_output.mean(axis=0)"),
                     ("return grad_output * (self._X > 0)", "return grad_output * (self._X >= 0)")):
        assert old in src, f"the reference changed: update honest_buggy ({old!r})"
        src = src.replace(old, new)
    (buggy / "layers.py").write_text(src)
    shutil.copyfile(ROOT / "solutions" / "logistic_regression.py", buggy / "logistic_regression.py")
    fifo = batch / "fifo_layers"
    fifo.mkdir()
    os.mkfifo(fifo / "layers.py")
    shutil.copyfile(ROOT / "solutions" / "logistic_regression.py", fifo / "logistic_regression.py")
    shutil.copyfile(HOSTILE / "not_a_zip.zip", batch / WEIRD_ZIP)
    shutil.copytree(good, batch / WEIRD_DIR)
    (batch / WEIRD_FILE).write_text("not a submission\n")
    (batch / "symlinked_submission").symlink_to(good, target_is_directory=True)


def absent_files(expectations: dict[str, dict]) -> list[str]:
    return sorted({f for e in expectations.values() for f in e.get("absent_files", [])})


def reference_lines() -> set[str]:
    """Distinctive lines of the reference solution: none may reach a student-facing report."""
    lines = set()
    for name in ("layers.py", "logistic_regression.py"):
        for line in (ROOT / "solutions" / name).read_text().splitlines():
            s = line.strip()
            if len(s) >= 40 and not s.startswith(("#", "raise NotImplementedError")):
                lines.add(s)
    return lines


@dataclass
class Batch:
    results: dict[str, SubmissionResult]
    expectations: dict[str, dict]
    out: Path
    folder: Path
    warnings: list[str]
    seconds: float
    tree_before: dict[str, str] = field(default_factory=dict)
    tree_after: dict[str, str] = field(default_factory=dict)
    subs_before: dict[str, str] = field(default_factory=dict)
    subs_after: dict[str, str] = field(default_factory=dict)
    procs_before: dict[int, dict] = field(default_factory=dict)


def run_batch(folder: Path, out: Path, expectations: dict[str, dict], *, mnist: bool) -> Batch:
    for f in absent_files(expectations):  # left over from an earlier, failed run
        try:
            os.unlink(f)
        except OSError:
            pass
    procs_before = live_processes()
    tree_before = project_digest()
    subs_before = tree_digest(folder)
    t0 = time.monotonic()
    outcome = grade_batch(folder, out, GradeOptions(secret=SECRET, mnist=mnist, sandbox_config=CONFIG), jobs=2)
    seconds = time.monotonic() - t0
    return Batch({r.student: r for r in outcome.results}, expectations, out, folder, outcome.warnings, seconds,
                 tree_before, project_digest(), subs_before, tree_digest(folder), procs_before)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Batch:
    tmp = tmp_path_factory.mktemp("hostile")
    folder = tmp / "submissions"
    materialize(folder)
    expectations = {**load_expectations(HOSTILE), **GENERATED}
    return run_batch(folder, tmp / "out", expectations, mnist=False)


@pytest.fixture(scope="module")
def training(tmp_path_factory) -> Batch:
    tmp = tmp_path_factory.mktemp("hostile-training")
    folder = tmp / "submissions"
    shutil.copytree(TRAINING, folder)
    good = folder / "honest_correct"
    good.mkdir()
    for name in ("layers.py", "logistic_regression.py"):
        shutil.copyfile(ROOT / "solutions" / name, good / name)
    expectations = {**load_expectations(TRAINING), "honest_correct": dict(GENERATED["honest_correct"], mnist=True)}
    return run_batch(folder, tmp / "out", expectations, mnist=True)


# --- checking one submission against its expectation -------------------------------------------------

def _attacked(t, e: dict) -> bool:
    comps = e.get("component", [])
    if comps == "all" or t.component in comps:
        return True
    return any(t.check.startswith(prefix) for prefix in e.get("checks", []))


def _texts(r: SubmissionResult) -> list[str]:
    return [r.reason, *r.notes, *(t.output for t in r.tests)]


def check_submission(batch: Batch, name: str) -> None:
    e = batch.expectations[name]
    assert name in batch.results, f"{name} was not graded (warnings: {batch.warnings})"
    r = batch.results[name]
    where = f"{name} ({e['attack']}): status {r.status!r}, reason {r.reason!r}"
    assert r.tests, where
    assert len(r.tests) == len(plan(GradeOptions(secret=SECRET).rubric, public_only=False,
                                    mnist=e.get("mnist", False))), f"{where}: not every planned test is reported"
    assert r.status in e["status"], where
    attacked = [t for t in r.tests if _attacked(t, e)]
    if e.get("component") or e.get("checks"):
        assert attacked, f"{where}: the expectation names no test of this run"
    if e.get("max_score_on_attacked") is not None:
        scored = {f"{t.check} ({t.visibility})": t.score for t in attacked
                  if t.score > e["max_score_on_attacked"] + read_only_allowance(t)}
        assert not scored, f"{where}: points on what it attacked: {scored}"
    text = "\n".join(_texts(r) if not attacked else [r.reason, *r.notes, *(t.output for t in attacked)])
    for needle in e.get("reason_contains", []):
        assert needle in text, f"{where}: {needle!r} is not in the reason or the attacked tests' output"
    everything = "\n".join(_texts(r))
    for needle in e.get("reason_absent", []):
        assert needle not in everything, f"{where}: {needle!r} appears in the results"
    full = e.get("full_marks", [])
    for t in r.tests:
        if full == "all" or t.component in full:
            assert t.score == t.max_score, f"{where}: {t.name} not graded normally: {t.score}/{t.max_score}: {t.output}"
    for comp in e.get("loses_points", []):
        s, m = r.component_scores()[comp]
        assert 0 <= s < m and any(t.causes for t in r.tests if t.component == comp), f"{where}: {comp} {s}/{m}"
    if "max_seconds" in e:
        assert r.execution_time() <= e["max_seconds"], f"{where}: took {r.execution_time()} s"
    if "max_output_chars" in e:
        assert len(r.student_output) <= e["max_output_chars"], f"{where}: {len(r.student_output)} chars of output kept"
    if "max_disk_mb" in e:
        written = [int(m) for m in re.findall(r"DISKFILL wrote (\d+) MB", everything)]
        assert written and max(written) <= e["max_disk_mb"], f"{where}: wrote {written} MB"
    if e.get("no_reference_text"):
        leaked = [line for line in reference_lines() if line in everything]
        assert not leaked, f"{where}: reference code in the results: {leaked[:3]}"
    # The grader never blames itself for what a submission did.
    assert "internal grader error" not in r.reason, where
    for t in r.tests:
        assert "grader_error" not in t.causes, f"{where}: {t.name}: {t.output}"
        assert "internal error in the check" not in t.output, f"{where}: {t.name}: {t.output}"


def read_only_allowance(t) -> float:
    """No allowance: the "inputs unchanged" case of a read_only check is credited only together with
    right answers (grader/checks/generic.py, check_read_only)."""
    return 0.0


HOSTILE_NAMES = sorted({**load_expectations(HOSTILE), **GENERATED})
TRAINING_NAMES = sorted(load_expectations(TRAINING))
PRETRAINED_ATTACKS = {"pretrained_weights_pull"}


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_submission(hostile: Batch, name: str) -> None:
    check_submission(hostile, name)


def test_every_fixture_declares_an_expectation() -> None:
    entries = {p.name for p in HOSTILE.iterdir() if not p.name.endswith(".expect.json")}
    declared = set(load_expectations(HOSTILE))
    stems = {Path(n).stem if (HOSTILE / n).is_file() else n for n in entries}
    assert stems == declared, f"fixtures without expect.json: {sorted(stems - declared)}; " \
                              f"expectations without a fixture: {sorted(declared - stems)}"
    assert set(load_expectations(TRAINING)) == {p.name for p in TRAINING.iterdir()}


def test_honest_submissions_are_graded_normally(hostile: Batch) -> None:
    good = hostile.results["honest_correct"]
    assert good.status == "ok" and good.score == good.max_score, good.reason
    buggy = hostile.results["honest_buggy"]
    assert buggy.status == "ok" and 0 < buggy.score < buggy.max_score
    causes = {c for t in buggy.tests for c in t.causes}
    assert causes and "grader_error" not in causes, causes


def test_read_only_credit_requires_right_answers(hostile: Batch) -> None:
    """Submissions that return zeros or liars, or raise in backward, get nothing for read_only."""
    credited = {f"{name}: {t.check} ({t.visibility})": t.score
                for name in ("lying_return_objects", "writes_files_at_import", "interrupts_in_methods",
                             "infinite_loop_in_backward", "spawns_processes")
                for t in hostile.results[name].tests
                if t.check.endswith(".read_only") and _attacked(t, hostile.expectations[name]) and t.score > 0}
    assert not credited, credited


def test_all_submissions_reported(hostile: Batch) -> None:
    assert set(hostile.results) == set(HOSTILE_NAMES), sorted(set(hostile.results) ^ set(HOSTILE_NAMES))
    assert any("symbolic link" in w for w in hostile.warnings), hostile.warnings
    for name, r in hostile.results.items():
        assert (hostile.out / r.intake["folder"] / "results.json").is_file()
    # What the grader wrote for the submission that shipped a fake results.json is the grader's own.
    shipped = json.loads((hostile.out / hostile.results["ships_extra_files"].intake["folder"] / "results.json").read_text())
    assert shipped["score"] == 0 and shipped["extra_data"]["status"] == "error"


_BAD_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _assert_clean(where: str, text: str, *, newlines: bool = True) -> None:
    bad = _BAD_CHARS.search(text.replace("\t", " ") if newlines else text)
    assert not bad, f"{where}: control character {bad.group(0)!r} in {text[max(0, bad.start() - 60):bad.end() + 60]!r}"
    for line in text.splitlines():
        assert not line.lstrip().startswith("::"), f"{where}: a line could run a workflow command: {line[:120]!r}"


def test_reports_are_sanitised(hostile: Batch) -> None:
    results = list(hostile.results.values())
    for r in results:
        data = json.loads((hostile.out / r.intake["folder"] / "results.json").read_text())
        _assert_clean(f"{r.student}/results.json output", data["output"])
        _assert_clean(f"{r.student}/results.json reason", data["extra_data"].get("reason", ""))
        for t in data["tests"]:
            _assert_clean(f"{r.student}/results.json {t['name']}", t["output"])
            _assert_clean(f"{r.student}/results.json name", t["name"])
        _assert_clean(f"{r.student}/feedback.md", (hostile.out / r.intake["folder"] / "feedback.md").read_text())
        _assert_clean(f"{r.student} student output", r.student_output.replace("\n", " "))
    for name in ("gradebook.csv", "summary.md"):
        _assert_clean(name, (hostile.out / name).read_text())
    for w in hostile.warnings:
        _assert_clean("warning", w)
    leaked = {r.student: line for r in results for line in reference_lines() if line in "\n".join(_texts(r))}
    assert not leaked, f"reference code in the results: {leaked}"
    _assert_clean("console table", render_text(results))
    _assert_clean("junit", render_junit(results))
    _assert_clean("github summary", github_summary(results))
    for line in github_annotations(results):
        assert line.startswith("::error title=") and line.count("::") == 2 and "\n" not in line, line[:200]
        _assert_clean("annotation", line[2:])


def test_nothing_outside_the_sandbox_changed(hostile: Batch) -> None:
    changed = sorted(k for k in set(hostile.tree_before) | set(hostile.tree_after)
                     if hostile.tree_before.get(k) != hostile.tree_after.get(k))
    assert not changed, f"the project tree changed during grading: {changed[:20]}"
    changed = sorted(k for k in set(hostile.subs_before) | set(hostile.subs_after)
                     if hostile.subs_before.get(k) != hostile.subs_after.get(k))
    assert not changed, f"submissions changed during grading: {changed[:20]}"
    planted = [f for f in absent_files(hostile.expectations) if os.path.lexists(f)]
    assert not planted, f"files planted by submissions: {planted}"


def assert_no_stray_process(batch: Batch) -> None:
    """No child of this test process is left, and nothing runs under a sandbox uid detached from a
    grader: a process that escaped its worker is reparented to init. (Sandbox processes with a live
    grader parent belong to whatever else grades on this machine; the reports do not name the private
    uid, and a worker's own uid is checked in test_daemon_is_killed_even_without_seccomp.)"""

    def stray():
        procs = live_processes()
        orphans = {p: i for p, i in procs.items() if i["uid"] in SANDBOX_UIDS
                   and (i["ppid"] in (0, 1) or i["ppid"] not in procs)}
        kids = {p: procs[p]["cmd"][:200] for p in descendants(os.getpid(), procs)
                - descendants(os.getpid(), batch.procs_before)
                # multiprocessing's resource tracker lives as long as the test process, by design
                if "resource_tracker" not in procs[p]["cmd"]}
        return orphans, kids

    assert wait_for(lambda: not any(stray()), timeout=10), f"stray processes (orphans, children): {stray()}"


def test_no_process_survives(hostile: Batch) -> None:
    assert_no_stray_process(hostile)


def test_slow_submission_is_bounded(hostile: Batch) -> None:
    """Not a performance assertion: without SandboxConfig.answer_budget this submission takes 20 minutes
    (about 450 calls of 2.5 s each); with it, the budget (18 s here) plus a few restarts."""
    r = hostile.results["slow_calls_under_timeout"]
    assert r.execution_time() <= hostile.expectations["slow_calls_under_timeout"]["max_seconds"], r.timings


# --- training attacks (MNIST) -------------------------------------------------------------------------
# One batch of about 35 s (the finite-difference submission alone uses its 15 s training budget).

@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in TRAINING_NAMES if n not in PRETRAINED_ATTACKS] + ["honest_correct"])
def test_training_attack(training: Batch, name: str) -> None:
    check_submission(training, name)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PRETRAINED_ATTACKS))
def test_training_attack_pretrained_weights(training: Batch, name: str) -> None:
    check_submission(training, name)


@pytest.mark.slow
def test_training_batch_left_nothing_behind(training: Batch) -> None:
    changed = sorted(k for k in set(training.tree_before) | set(training.tree_after)
                     if training.tree_before.get(k) != training.tree_after.get(k))
    assert not changed, changed[:20]
    assert training.subs_before == training.subs_after
    assert_no_stray_process(training)


# --- single layers, with one isolation layer removed ---------------------------------------------------

def _grade_one(path: Path, config: SandboxConfig, *, private_uid: bool = True) -> tuple[SubmissionResult, int | None]:
    """Grade one submission as grade_submission does, and say which private uid its worker had.

    ``private_uid=False`` runs it as a grader that is not root would: no private uid, so landlock and
    seccomp alone must hold. (On a machine where the Python installation is private to root, as here,
    the uid drop alone already hides site-packages and the project, which would mask a landlock gap.)
    """
    sub = discover(path)[0][0]
    opts = GradeOptions(secret=SECRET, mnist=False, sandbox_config=config)
    scratch = Path(tempfile.mkdtemp(prefix="bpg-test-"))
    impl = None
    try:
        prepared = prepare(sub, scratch)
        impl = SandboxImpl(prepared.package_dir, config)
        if not private_uid:
            impl._uid = None
        uid = impl._uid
        impl.start()
        impl.restarts = 0
        result = SubmissionResult(sub.student, "ok")
        run_tests(impl, opts, plan(opts.rubric, public_only=False, mnist=False), result)
        impl.close()
        result.isolation = dict(impl.isolation)
        result.student_output = impl.student_output()
        return result, uid
    finally:
        if impl is not None:
            impl.close()
        shutil.rmtree(scratch, ignore_errors=True)


def test_daemon_is_killed_even_without_seccomp() -> None:
    """With fork allowed, the double-forked, setsid daemon escapes the process group; the private uid
    still finds and kills it."""
    if os.geteuid() != 0:
        pytest.skip("needs root: the private uid is what finds a daemon outside the process group")
    r, uid = _grade_one(HOSTILE / "detached_daemon", SandboxConfig(call_timeout=3.0, seccomp=False))
    assert uid is not None, r.isolation
    assert "fork denied" not in r.student_output, r.student_output  # the daemon really was started
    assert r.isolation["seccomp"].startswith("unavailable")
    assert wait_for(lambda: not [p for p, i in live_processes().items() if i["uid"] == uid], timeout=10)
    assert not os.path.exists("/tmp/bpg-hostile-pwned-daemon.txt")


@pytest.mark.parametrize("name", ["read_reference_at_import", "read_reference_at_call", "import_block_bypass",
                                  "network_access", "spawns_processes", "writes_files_at_import"])
def test_landlock_and_seccomp_hold_without_private_uid(name: str) -> None:
    from grader.sandbox.isolation import landlock_abi

    if landlock_abi() < 6 or platform.machine() != "x86_64":
        pytest.skip("needs landlock ABI >= 6 and the x86_64 seccomp filter: without a private uid nothing "
                    "else would stop these attacks on this machine")
    targets = [ROOT / "grader" / "pipeline.py", ROOT / "solutions" / "layers.py", ROOT / "tests" / "conftest.py",
               ROOT / "conftest.py", ROOT / "sitecustomize.py"]
    before = {t: t.read_bytes() if t.exists() else None for t in targets}
    # Without a private uid a root worker keeps root (refused unless opted in), and the view is off
    # too: this is what a grader that is not root gets, landlock and seccomp alone.
    r, _ = _grade_one(HOSTILE / name, SandboxConfig(call_timeout=3.0, view=False, allow_weak=True), private_uid=False)
    assert r.isolation["user"].startswith("unavailable"), r.isolation
    assert r.isolation["landlock"].startswith("active") and r.isolation["seccomp"].startswith("active")
    check_submission(Batch({name: r}, load_expectations(HOSTILE), Path("."), HOSTILE, [], 0.0), name)
    assert {t: t.read_bytes() if t.exists() else None for t in targets} == before
    planted = [f for f in load_expectations(HOSTILE)[name].get("absent_files", []) if os.path.lexists(f)]
    assert not planted, planted


# --- containers too big to read -------------------------------------------------------------------------

def _sparse(path: Path, size: int = 1 << 40) -> Path:
    with open(path, "wb") as fh:
        fh.truncate(size)  # 1 TB, no disk used
    return path


@pytest.mark.parametrize("suffix", [".ipynb", ".zip"])
def test_huge_sparse_container_is_rejected(tmp_path: Path, suffix: str) -> None:
    sub = discover(_sparse(tmp_path / f"huge{suffix}"))[0][0]
    r = grade_submission(sub, GradeOptions(secret=SECRET, mnist=False, sandbox_config=CONFIG))
    assert r.status == "rejected" and "internal" not in r.reason, r.reason


def test_batch_survives_huge_sparse_container(tmp_path: Path) -> None:
    folder = tmp_path / "subs"
    folder.mkdir()
    _sparse(folder / "huge.ipynb")
    outcome = grade_batch(folder, tmp_path / "out", GradeOptions(secret=SECRET, mnist=False, sandbox_config=CONFIG))
    assert outcome.results[0].status == "rejected"
