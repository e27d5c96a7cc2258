"""The instructor's week (issue 19): regrade a subset with history and diff, overrides, the late
policy, and GitHub Classroom's runner result. End-to-end runs use --no-mnist for speed."""
from __future__ import annotations

import base64
import csv
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import ROOT, make_submission

from grader.instructor import classroom, history
from grader.instructor.late import LateError, LatePolicy, collect_times, load_extensions, parse_time
from grader.instructor.overrides import OverrideError, apply, load_overrides, validate
from grader.scoring.rubric import RubricError, load_rubric

BIAS_BUG = ("layers.py", "self.grad_b = grad_output.sum(axis=0)", "self.grad_b = grad_output.mean(axis=0)")
RELU_BUG = ("layers.py", "return grad_output * (self._X > 0)", "return grad_output * (self._X >= 0)")
NLL_BUG = ("layers.py", "total = -picked.sum()", "total = picked.sum()")


def grade(*args: str, env: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if k not in ("GRADER_SECRET", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY")}
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "grader.cli", *args], capture_output=True, text=True, env=e,
                          cwd=ROOT, timeout=timeout)


def rows(path: Path) -> dict[str, dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return {r["student"]: r for r in csv.DictReader(fh)}


def raw_rows(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    return {next(csv.reader([ln]))[0]: ln for ln in lines}


def last_run(out: Path) -> dict:
    return history.load_runs(out)[-1]


def folders(out: Path) -> dict[str, Path]:
    return {sid: d for sid, (d, _r) in history.scan_records(out).items()}


# --- regrade 2 of 40 -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def forty(tmp_path_factory):
    root = tmp_path_factory.mktemp("forty")
    subs = root / "subs"
    correct = sorted(p for p in (ROOT / "tests/fixtures/correct").iterdir() if p.is_dir())
    for i in range(30):
        src = correct[i % len(correct)]
        shutil.copytree(src, subs / f"s{i:02d}_{src.name}")
    bugs = [BIAS_BUG, RELU_BUG, NLL_BUG]
    for i in range(9):
        f, old, new = bugs[i % 3]
        make_submission(subs / f"buggy{i}", replace={f: (old, new)})
    make_submission(subs / "Иванова_Мария", replace={BIAS_BUG[0]: BIAS_BUG[1:]})  # a Cyrillic name
    out = root / "out"
    r = grade("grade", str(subs), "--out", str(out), "--secret", "forty", "--no-mnist", "--jobs", "2", "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    return subs, out


def _snapshot(out: Path) -> dict[str, dict[str, bytes]]:
    return {sid: {n: (d / n).read_bytes() for n in ("record.json", "results.json", "feedback.md", ".grading-key")}
            for sid, d in folders(out).items()}


def test_regrade_two_of_forty(forty):
    subs, out = forty
    before_rows = raw_rows(out / "gradebook.csv")
    before_files = _snapshot(out)
    assert len(before_rows) == 40 and len(before_files) == 40
    recs = {sid: r for sid, (_d, r) in history.scan_records(out).items()}
    fixed = next(s for s, r in recs.items() if r.source == "buggy0")            # its bug gets fixed
    broken = next(s for s, r in recs.items() if r.source.startswith("s05_"))   # a bug gets introduced
    shutil.copyfile(ROOT / "solutions" / "layers.py", subs / "buggy0" / "layers.py")
    layers = subs / recs[broken].source / "layers.py"
    if not layers.exists():
        layers = subs / recs[broken].source / "assignment" / "layers.py"
    shutil.copyfile(ROOT / "solutions" / "layers.py", layers)
    make_submission(layers.parent, replace={NLL_BUG[0]: NLL_BUG[1:]})
    n_runs = len(history.load_runs(out))

    r = grade("grade", str(subs), "--out", str(out), "--no-mnist", "--jobs", "2", "--quiet", "--only", f"{fixed},{broken}")
    assert r.returncode == 0, r.stderr[-3000:]
    after_rows, after_files = raw_rows(out / "gradebook.csv"), _snapshot(out)
    assert set(after_rows) == set(before_rows)
    same = [s for s in before_rows if after_rows[s] == before_rows[s]]
    assert len(same) == 38 and set(before_rows) - set(same) == {fixed, broken}
    for s in same:  # not only the row: every file of the other 38 is byte-identical
        assert after_files[s] == before_files[s], s

    runs = history.load_runs(out)
    assert len(runs) == n_runs + 1
    run = runs[-1]
    assert sorted(run["graded"]) == sorted([fixed, broken]) and set(run["students"]) == {fixed, broken}
    assert run["selection"]["only"] == sorted([fixed, broken])
    assert run["students"][fixed]["old"] < run["students"][fixed]["new"] == 65
    assert run["students"][broken]["old"] == 65 > run["students"][broken]["new"]
    for key in ("run", "time", "grader_version", "rubric_sha256"):
        assert run[key]

    d = grade("diff", str(out))
    assert d.returncode == 0, d.stderr
    listed = [ln.split(":")[0] for ln in d.stdout.splitlines()[1:] if not ln.startswith(" ")]
    assert sorted(listed) == sorted([fixed, broken]), d.stdout
    assert "Linear: backward: dL/db (hidden)" in d.stdout and "NLLLoss: forward, reduction='mean' (hidden)" in d.stdout
    # between the first run and this one: the same two
    d2 = grade("diff", str(out), "--run", runs[0]["run"], "--run", run["run"])
    assert d2.returncode == 0 and "2 student(s) changed" in d2.stdout.splitlines()[0], d2.stdout + d2.stderr


def test_changed_and_only_file(forty, tmp_path):
    subs, out = forty
    recs = {sid: r for sid, (_d, r) in history.scan_records(out).items()}
    target = next(s for s, r in recs.items() if r.source == "buggy1")
    with open(subs / "buggy1" / "layers.py", "a") as fh:
        fh.write("\n# a comment: the bytes change, the score does not\n")
    r = grade("grade", str(subs), "--out", str(out), "--no-mnist", "--jobs", "2", "--quiet", "--changed")
    assert r.returncode == 0, r.stderr[-2000:]
    assert last_run(out)["graded"] == [target]
    assert grade("diff", str(out)).stdout.startswith("before ") and "0 student(s) changed" in grade("diff", str(out)).stdout

    ids = tmp_path / "ids.txt"
    other = next(s for s, r in recs.items() if r.source == "buggy2")
    ids.write_text(f"# regrade request\n{other}\n")
    r = grade("grade", str(subs), "--out", str(out), "--no-mnist", "--quiet", "--only-file", str(ids))
    assert r.returncode == 0, r.stderr[-2000:]
    assert last_run(out)["graded"] == [other]

    bad = grade("grade", str(subs), "--out", str(out), "--no-mnist", "--quiet", "--only", "nobody_here")
    assert bad.returncode == 2 and "no submission of student 'nobody_here'" in bad.stderr

    # the folder was graded without MNIST: a partial regrade with MNIST would give one row out of 100
    # and the others out of 65, so it is refused before anything is written
    before = raw_rows(out / "gradebook.csv")
    mixed = grade("grade", str(subs), "--out", str(out), "--quiet", "--only", other)
    assert mixed.returncode == 2 and "mix totals" in mixed.stderr and "mnist off before, on now" in mixed.stderr
    assert raw_rows(out / "gradebook.csv") == before


# --- overrides and late policy ---------------------------------------------------------------------

LATE = """
[late]
deadline = {deadline}
grace_minutes = 15
per_day = 10
cap = 50
extensions = "extensions.csv"
"""


@pytest.fixture
def small(tmp_path):
    subs = tmp_path / "subs"
    make_submission(subs / "alice")
    make_submission(subs / "bob", replace={BIAS_BUG[0]: BIAS_BUG[1:]})
    make_submission(subs / "carol")
    make_submission(subs / "dave")
    (tmp_path / "extensions.csv").write_text("student,days\ncarol,2\n")
    (tmp_path / "times.csv").write_text("student,submitted_at\n"
                                        "alice,2026-12-01T10:00:00+01:00\n"   # 10 h late: 10 %
                                        "bob,2026-11-30T23:10:00+01:00\n"     # on time
                                        "carol,2026-12-02T10:00:00+01:00\n"   # late, but within her extension
                                        "dave,2026-12-01T00:10:00+01:00\n")   # 11 min late: within the grace
    out = tmp_path / "out"
    out.mkdir()
    (out / "overrides.toml").write_text(
        '[[override]]\nstudent = "bob"\ncomponent = "Linear"\nadjust = 2\n'
        'reason = "bias gradient fixed in a later cell; accepted on request"\nauthor = "J. Doe (TA)"\nvisible = true\n\n'
        '[[override]]\nstudent = "dave"\nscore = 50\nreason = "oral exam"\nauthor = "Prof. X"\n')
    return tmp_path, subs, out


def _rubric(tmp: Path, deadline: str) -> Path:
    p = tmp / "rubric.toml"
    p.write_text((ROOT / "grader/scoring/default_rubric.toml").read_text() + LATE.format(deadline=deadline))
    return p


def test_override_and_late_penalty_survive_a_full_regrade(small):
    tmp, subs, out = small
    rubric = _rubric(tmp, "2026-11-30T23:59:00+01:00")
    base = ["grade", str(subs), "--out", str(out), "--no-mnist", "--jobs", "2", "--quiet", "--secret", "s",
            "--rubric", str(rubric), "--submission-times", str(tmp / "times.csv")]
    r = grade(*base)
    assert r.returncode == 0, r.stderr[-2000:]

    def check_columns() -> dict:
        g = rows(out / "gradebook.csv")
        assert {"score", "adjusted_score", "overrides", "submitted_at", "hours_late", "late_penalty",
                "final_score"} <= set(next(iter(g.values())))
        a, b, c, d = g["alice"], g["bob"], g["carol"], g["dave"]
        assert float(a["score"]) == float(a["adjusted_score"]) == 65 and float(a["late_penalty"]) == 6.5
        assert float(a["final_score"]) == 58.5 and abs(float(a["hours_late"]) - 10.0167) < 1e-3
        assert float(b["adjusted_score"]) == float(b["score"]) + 2 and "J. Doe (TA)" in b["overrides"]
        assert float(b["late_penalty"]) == 0 and b["final_score"] == b["adjusted_score"]
        assert float(c["late_penalty"]) == 0 and float(c["final_score"]) == 65   # the extension
        assert float(d["late_penalty"]) == 0 and float(d["score"]) == 65 and float(d["final_score"]) == 50
        return g

    first = check_columns()
    fb = folders(out)
    assert "bias gradient fixed in a later cell" in (fb["bob"] / "feedback.md").read_text()
    assert "oral exam" not in (fb["dave"] / "feedback.md").read_text()        # not marked visible
    assert "Late: handed in" in (fb["alice"] / "feedback.md").read_text()

    r = grade(*base, "--regrade-all")
    assert r.returncode == 0, r.stderr[-2000:]
    assert sorted(last_run(out)["graded"]) == ["alice", "bob", "carol", "dave"]
    assert check_columns() == first

    # the deadline moves one day later: penalties recomputed, nothing graded again
    keys = {s: (d / ".grading-key").read_bytes() for s, d in folders(out).items()}
    _rubric(tmp, "2026-12-01T23:59:00+01:00")
    r = grade(*base)
    assert r.returncode == 0, r.stderr[-2000:]
    assert last_run(out)["graded"] == []
    assert {s: (d / ".grading-key").read_bytes() for s, d in folders(out).items()} == keys
    g = rows(out / "gradebook.csv")
    assert float(g["alice"]["late_penalty"]) == 0 and float(g["alice"]["final_score"]) == 65
    assert "Late:" not in (folders(out)["alice"] / "feedback.md").read_text()


@pytest.mark.parametrize("entry, message", [
    ('student = "zoe"\nscore = 1\nreason = "r"\nauthor = "a"', "unknown student"),
    ('student = "alice"\ncomponent = "Conv2d"\nadjust = 1\nreason = "r"\nauthor = "a"', "unknown component 'Conv2d'"),
    ('student = "alice"\nscore = 1\nauthor = "a"', "reason is required"),
    ('student = "alice"\nscore = 1\nreason = "r"', "author is required"),
    ('student = "alice"\nscore = 1000\nreason = "r"\nauthor = "a"', "outside [0, 65]"),
    ('student = "alice"\ncomponent = "Linear"\nadjust = 1\nscore = 1\nreason = "r"\nauthor = "a"', "exactly one of"),
    ('student = "alice"\nscore = 1\nreason = "r"\nauthor = "a"\ncolour = "red"', "unknown keys colour"),
])
def test_invalid_overrides_are_refused_before_grading(small, entry, message):
    tmp, subs, out = small
    bad = tmp / "bad.toml"
    bad.write_text("[[override]]\n" + entry + "\n")
    r = grade("grade", str(subs), "--out", str(out), "--no-mnist", "--quiet", "--overrides", str(bad))
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert not history.scan_records(out)  # nothing was graded


def test_override_arithmetic():
    comps = {"Linear": (9.75, 18.0), "ReLU": (9.0, 9.0)}
    validate([], {"a"}, {"Linear": 18.0, "ReLU": 9.0}, source="x")
    (o,) = _overrides('student = "a"\ncomponent = "Linear"\nadjust = 20\nreason = "r"\nauthor = "t"')
    adj = apply(comps, 18.75, [o])
    assert adj.score == 27.0 and adj.notes  # kept within the component's maximum, and said so
    (o,) = _overrides('student = "a"\ncomponent = "ReLU"\nscore = 4.5\nreason = "r"\nauthor = "t"')
    assert apply(comps, 18.75, [o]).score == 14.25
    assert apply(comps, 18.75, []).score == 18.75
    two = _overrides('student = "a"\nscore = 4\nreason = "r"\nauthor = "t"\n[[override]]\nstudent = "a"\n'
                     'component = "ReLU"\nscore = 4\nreason = "r"\nauthor = "t"')
    with pytest.raises(OverrideError, match="total and a component"):
        validate(two, {"a"}, {"Linear": 18.0, "ReLU": 9.0}, source="x")


def _overrides(body: str):
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as fh:
        fh.write("[[override]]\n" + body + "\n")
    try:
        return load_overrides(fh.name)
    finally:
        os.unlink(fh.name)


# --- the late policy, unit by unit -----------------------------------------------------------------

def _policy(tmp_path: Path, extra: str) -> LatePolicy:
    p = tmp_path / "r.toml"
    p.write_text((ROOT / "grader/scoring/default_rubric.toml").read_text() + "\n[late]\n" + extra)
    return load_rubric(p).late


def test_penalty_rules(tmp_path):
    per_hour = _policy(tmp_path, 'deadline = 2026-12-01T12:00:00Z\nper_hour = 2\ncap = 30\ngrace_minutes = 5')
    assert per_hour.penalty(0.05) == 0 and per_hour.penalty(0.1) == 2 and per_hour.penalty(1.0) == 2
    assert per_hour.penalty(1.01) == 4 and per_hour.penalty(100) == 30
    steps = _policy(tmp_path, 'deadline = 2026-12-01T12:00:00Z\nsteps = [[24, 10], [72, 25]]\nunit = "points"')
    assert steps.penalty(3) == 10 and steps.penalty(24) == 10 and steps.penalty(48) == 25
    assert steps.apply(20.0, 200) == (20.0, 0.0)            # later than the last step: everything, never < 0
    assert steps.apply(20.0, -3) == (0.0, 20.0)             # early
    local = _policy(tmp_path, 'deadline = 2026-12-01T23:59:00\ntimezone = "Europe/Berlin"\nper_day = 5')
    assert local.deadline.utcoffset() == timedelta(hours=1)
    for bad, msg in [('deadline = 2026-12-01T23:59:00\nper_day = 5', "no time zone"),
                     ('deadline = 2026-12-01T23:59:00Z', "exactly one of"),
                     ('deadline = 2026-12-01T23:59:00Z\nper_day = 5\nper_hour = 1', "exactly one of"),
                     ('deadline = 2026-12-01T23:59:00\ntimezone = "Mars/Olympus"\nper_day = 5', "unknown time zone"),
                     ('deadline = 2026-12-01T23:59:00Z\nper_day = 5\npenalty = 3', "unknown keys penalty")]:
        with pytest.raises(RubricError, match=msg):
            _policy(tmp_path, bad)


def test_submission_times_from_platforms(tmp_path):
    policy = _policy(tmp_path, 'deadline = 2026-12-01T12:00:00-08:00\nper_hour = 1\nextensions = "ext.csv"')
    root = tmp_path / "export"
    root.mkdir()
    (root / "submission_metadata.yml").write_text(
        "submission_111:\n  :submitters:\n  - :name: Ana\n    :sid: '7'\n"
        "  :created_at: 2026-12-01 14:30:00.123456000 -08:00\n  :score: 10.0\n"
        "submission_222:\n  :submitters:\n  - :name: Ben\n  :created_at: 2026-12-01 11:00:00.000000000 -08:00\n")
    records = {"ana": "submission_111", "ben": "submission_222", "cleo": "cleo_LATE_4411_9902_hw.zip",
               "dan": "dan_4412_9903_hw.zip"}
    ts = collect_times(records, root=root, policy=policy)
    assert ts.by_student["ana"].at == datetime(2026, 12, 1, 22, 30, 0, 123456, tzinfo=timezone.utc)
    assert ts.by_student["ben"].source == "gradescope"
    assert ts.by_student["cleo"].late_mark and ts.by_student["cleo"].at is None
    assert any("cleo" in w and "no penalty" in w for w in ts.warnings)
    assert "dan" not in ts.by_student           # no metadata: never a file's modification time
    (root / "dan_4412_9903_hw.zip").write_bytes(b"x")
    assert collect_times(records, root=root, policy=policy, csv_path="mtime").by_student["dan"].source == "mtime"
    moodle = tmp_path / "worksheet.csv"
    moodle.write_text('Identifier,Full name,Status,Last modified (submission)\n'
                      'Participant 1,Dan,Submitted,"Tuesday, 1 December 2026, 2:30 PM"\n')
    got = collect_times({"Dan": "Dan_1_assignsubmission_file_"}, root=None, policy=policy, csv_path=str(moodle))
    assert got.by_student["Dan"].at == parse_time("2026-12-01T14:30:00-08:00")
    (tmp_path / "ext.csv").write_text("student,deadline\nnobody,2026-12-03T00:00:00Z\n")
    with pytest.raises(LateError, match="unknown student 'nobody'"):
        load_extensions(policy, set(records))
    (tmp_path / "ext.csv").write_text("student,hours\nana,3\n")
    assert load_extensions(policy, set(records))["ana"] == policy.deadline + timedelta(hours=3)
    bad = tmp_path / "times.csv"
    bad.write_text("student,submitted_at\nana,yesterday\n")
    with pytest.raises(LateError, match="not a date and time"):
        collect_times(records, root=None, policy=policy, csv_path=str(bad))


# --- GitHub Classroom ------------------------------------------------------------------------------

#: the runner result the Classroom reporter reads, written from its documented fields
RUNNER_SCHEMA = {
    "type": "object", "required": ["version", "status", "max_score", "tests"],
    "properties": {
        "version": {"const": 1}, "status": {"enum": ["pass", "fail", "error"]},
        "max_score": {"type": "number", "minimum": 0},
        "tests": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["name", "status", "score", "message", "test_code", "filename",
                                           "line_no", "execution_time"],
            "properties": {"name": {"type": "string", "minLength": 1}, "status": {"enum": ["pass", "fail", "error"]},
                           "score": {"type": "number", "minimum": 0}, "message": {"type": ["string", "null"]},
                           "test_code": {"type": "string"}, "filename": {"type": "string"},
                           "line_no": {"type": "integer"}, "execution_time": {"type": "string"}}}},
    },
}


def _reporter(env: dict, runners: str) -> tuple[float, float, list[dict]]:
    """What the reporter does with its input: decode <RUNNER>_RESULTS, add up points."""
    total = top = 0.0
    docs = []
    for runner in runners.split(","):
        doc = json.loads(base64.b64decode(env[f"{runner.strip().upper()}_RESULTS"]).decode("utf-8"))
        docs.append(doc)
        if doc.get("max_score"):
            top += doc["max_score"]
            for t in doc["tests"]:
                total += t["score"]
    return total, top, docs


@pytest.mark.parametrize("bug, full", [(None, True), (BIAS_BUG, False)])
def test_classroom_runner_result_and_notice(tmp_path, bug, full):
    jsonschema = pytest.importorskip("jsonschema")
    sub = make_submission(tmp_path / "student", replace={bug[0]: bug[1:]} if bug else None)
    gh_out = tmp_path / "github-output"
    gh_out.write_text("")
    r = grade("grade", str(sub), "--out", str(tmp_path / "out"), "--no-mnist", "--quiet", "--format", "classroom",
              env={"GITHUB_OUTPUT": str(gh_out)})
    assert r.returncode == 0, r.stderr[-2000:]
    (line,) = [ln for ln in gh_out.read_text().splitlines() if ln.startswith("result=")]
    total, top, (doc,) = _reporter({"BACKPROP_RESULTS": line[len("result="):]}, "backprop")
    jsonschema.validate(doc, RUNNER_SCHEMA)
    results = json.loads(next((tmp_path / "out").glob("*/results.json")).read_text())
    assert abs(total - results["score"]) < 0.05 and top == 65
    assert doc["status"] == ("pass" if full else "fail")
    assert {t["name"] for t in doc["tests"]} == {"Linear", "ReLU", "LogSoftmax", "NLLLoss", "LogisticRegression"}
    linear = next(t for t in doc["tests"] if t["name"] == "Linear")
    assert (linear["status"] == "pass") == full and ("dL/db" in linear["message"]) != full
    notice = [ln for ln in r.stdout.splitlines() if ln.startswith("::notice")]
    assert notice[0] == f"::notice title=Autograding complete::Points {classroom.js_number(round(total, 4))}/65"
    assert json.loads(notice[1].split("::", 2)[2]) == {"totalPoints": round(total, 4), "maxPoints": 65}
    assert (notice[0].endswith("Points 65/65")) == full   # a correct submission: exactly its maximum
    assert json.loads((tmp_path / "out" / "classroom.json").read_text()) == doc


def test_classroom_js_number_and_one_submission():
    assert classroom.js_number(65.0) == "65" and classroom.js_number(56.75) == "56.75"
    assert classroom.emit([], None) == 2
    from grader.scoring import SubmissionResult, TestResult

    tests = [TestResult(f"{c}: x (public)", c, "x", "public", s, s, "") for c, s in
             (("Linear", 0.1), ("ReLU", 0.2), ("NLLLoss", 0.3))]
    doc = classroom.runner_result(SubmissionResult("s", "ok", tests=tests))
    assert classroom.points(doc)[0] != 0.6   # the reporter's own sum has float noise here ...
    assert classroom.notices(doc)[0].endswith("Points 0.6/0.6") and doc["status"] == "pass"   # ... ours does not


def test_history_reads_past_a_damaged_line_and_diffs_states(tmp_path):
    def run(rid, students):
        return json.dumps({"run": rid, "students": {s: {"old": o, "new": n, "old_tests": ot, "new_tests": nt}
                                                    for s, (o, n, ot, nt) in students.items()}})
    lines = [run("r1-aa", {"a": (None, 10, {}, {"t1": 10}), "b": (None, 5, {}, {"t1": 5})}),
             '{"run": "r2-bb", "students": {"a": {"old"',   # a write cut short
             run("r3-cc", {"a": (10, 7, {"t1": 10}, {"t1": 7})}),
             run("r4-dd", {"a": (7, 10, {"t1": 7}, {"t1": 10}), "b": (5, 6, {"t1": 5}, {"t1": 6})})]
    (tmp_path / "history.jsonl").write_text("\n".join(lines) + "\n")
    runs = history.load_runs(tmp_path)
    assert [r["run"] for r in runs] == ["r1-aa", "r3-cc", "r4-dd"]
    _a, _b, changes = history.diff(runs)                      # the last run: a back to 10, b 5 -> 6
    assert [(c.student, c.delta) for c in changes] == [("a", 3.0), ("b", 1.0)]
    _a, _b, changes = history.diff(runs, "r1", "r4")            # a ends where it started: only b
    assert [(c.student, c.old, c.new, c.tests) for c in changes] == [("b", 5, 6, (("t1", 5, 6),))]
    with pytest.raises(history.DiffError, match="ambiguous"):
        history.diff(runs, "r")
    with pytest.raises(history.DiffError, match="not found"):
        history.diff(runs, "r9")
