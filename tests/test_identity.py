"""Every student under their own, exact name (issue 16): ids kept exactly in every output, one safe
results folder each, colliding entries both graded and reported."""
from __future__ import annotations

import csv
import io
import json
import os
import unicodedata

import pytest

from conftest import make_submission
from grader.batch import grade_batch
from grader.intake import discover, folder_name, student_id
from grader.pipeline import GradeOptions
from grader.report import github_annotations, github_summary, render_junit

SCRIPTS = ["Иванов_Иван", "Петров_Пётр", "王小明"]
ODD = ["Mary Ann O'Neil", "=SUM(A1:A9)", "+33 Dupont", "@admin", "-rf", "🦊 Fox", "👩\u200d💻 dev", "a:b", "a_b"]
NFD = unicodedata.normalize("NFD", "José Núñez")
CASE = ["Alice", "alice"]
BUGGY = "李雷"  # negative control: a bias bug under a Chinese name must lose points, alone


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("identity")
    root = tmp / "subs"
    for name in SCRIPTS + ODD + CASE + [NFD]:
        make_submission(root / name)
    make_submission(root / BUGGY, replace={"layers.py": ("self.grad_b = grad_output.sum(axis=0)",
                                                        "self.grad_b = grad_output.mean(axis=0)")})
    make_submission(root / "Zoë")
    make_submission(root / unicodedata.normalize("NFD", "Zoë"))  # another entry, the same id once NFC
    outcome = grade_batch(root, tmp / "out", GradeOptions(secret="identity"), jobs=2)  # the one MNIST batch
    return outcome, {r.student: r for r in outcome.results}, tmp / "out"


def test_scripts_give_three_rows_three_folders_full_marks(batch):
    outcome, rows, out = batch
    for sid in SCRIPTS:
        r = rows[sid]
        assert r.status == "ok" and r.score == r.max_score == 100, (sid, r.score, r.reason)
        assert r.intake["folder"] == sid  # a safe name already: the folder is the id itself
        data = json.loads((out / sid / "results.json").read_text(encoding="utf-8"))
        assert data["extra_data"]["student"] == sid and data["extra_data"]["folder"] == sid
        assert data["score"] == 100
    assert rows[BUGGY].score < 100 and rows[BUGGY].component_scores()["Linear"][0] < 18


def test_every_odd_id_is_exact_with_its_own_folder(batch):
    outcome, rows, out = batch
    expected = SCRIPTS + ODD + CASE + [unicodedata.normalize("NFC", NFD), BUGGY, "Zoë"]
    assert set(expected) <= set(rows), sorted(set(expected) - set(rows))
    assert len(outcome.results) == len(expected) + 1  # the NFD "Zoë" is a row of its own too
    folders = [r.intake["folder"] for r in outcome.results]
    assert len({f.casefold() for f in folders}) == len(folders), folders  # distinct even case-insensitively
    for r in outcome.results:
        d = out / r.intake["folder"]
        assert d.parent == out and d.is_dir()
        assert json.loads((d / "results.json").read_text())["extra_data"]["student"] == r.student
        if r.student != BUGGY:
            assert r.score == r.max_score, (r.student, r.reason)
    assert rows["a:b"].intake["folder"] != "a_b" and rows["a_b"].intake["folder"] == "a_b"
    assert rows["-rf"].intake["folder"].startswith("_rf-")
    assert rows["Alice"].intake["folder"] != rows["alice"].intake["folder"]


def test_colliding_entries_are_both_graded_and_reported(batch):
    outcome, rows, out = batch
    zoe = [r for r in outcome.results if r.student.startswith("Zoë")]
    assert sorted(r.student for r in zoe) == ["Zoë", "Zoë (2)"]
    assert all(r.score == r.max_score for r in zoe)
    assert any("duplicate student id 'Zoë'" in w for w in outcome.warnings)


def test_ids_exact_in_every_report(batch):
    outcome, rows, out = batch
    text = (out / "gradebook.csv").read_text(encoding="utf-8")
    book = {row["student"]: row for row in csv.DictReader(io.StringIO(text))}
    for sid in rows:
        cell = "'" + sid if sid[:1] in "=+-@" else sid  # formula neutralisation, in the CSV only
        assert cell in book, (sid, sorted(book))
        f = rows[sid].intake["folder"]
        assert book[cell]["folder"] == ("'" + f if f[:1] in "=+-@" else f)
    summary = (out / "summary.md").read_text(encoding="utf-8")
    junit = render_junit(outcome.results)
    gh = github_summary(outcome.results)
    notes = "\n".join(github_annotations(outcome.results))
    for sid in rows:
        assert f"| {sid} |" in summary, sid
        assert f'name="{sid}"' in junit, sid
        assert f"### {sid}:" in gh, sid
    assert BUGGY in notes
    run = json.loads((out / "run.json").read_text())
    rec = run["reconciliation"]
    assert rec["entries_found"] == rec["rows_written"] == len(rows) and rec["balanced"]


def test_student_id_keeps_everything_but_unshowable_characters():
    assert student_id(NFD) == "José Núñez" and student_id(NFD) != NFD
    assert student_id("=cmd|' /C calc'!A0") == "=cmd|' /C calc'!A0"
    assert student_id("evil\x1b[31m\n::error::x") == "evil?[31m?::error::x"
    assert student_id("abc\u202edcba") == "abc?dcba"  # a bidirectional override cannot reorder a report
    assert student_id("👩\u200d💻") == "👩\u200d💻"  # the joiner of an emoji sequence stays


@pytest.mark.parametrize("sid", ["../../etc", "CON", "con.txt", ".hidden", "a/b", "x" * 300, "名" * 100,
                                 "gradebook.csv", "", "  ", "trailing. "])
def test_folder_names_are_safe(sid):
    taken: set[str] = set()
    name = folder_name(sid, taken)
    assert name and "/" not in name and "\\" not in name and name not in (".", "..")
    assert not name.startswith((".", "-", " ")) and not name.endswith((".", " "))
    assert len(name.encode()) <= 160 and name.casefold() in taken
    assert name.casefold() not in ("con", "con.txt", "gradebook.csv")
    assert folder_name(sid, taken) != name  # the same id again never shares the folder


def test_discover_ids_on_disk(tmp_path):
    root = tmp_path / "subs"
    for n in ["Иванов_Иван", "=1+1", "@x"]:
        make_submission(root / n)
    subs, _ = discover(root)
    assert sorted(s.student for s in subs) == sorted(["Иванов_Иван", "=1+1", "@x"])
    assert all(os.sep not in s.folder for s in subs)


def test_long_ids_stay_exact_and_distinct(tmp_path):
    """Two 217-character names differing in their last word: two exact ids in the gradebook and
    results, two distinct (shortened, hashed) folders; only a name past MAX_ID is capped, keeping its
    tail and a hash so two such names stay distinct."""
    from grader.intake.discover import MAX_ID

    stem = "Maria-Magdalena " + "Konstantinopolskaya-Vasilyeva " * 6 + "und Schleswig-Holstein-Sonderburg "
    names = [stem + "Anna", stem + "Olga"]
    assert len(names[0]) > 200
    root = tmp_path / "subs"
    for n in names:
        make_submission(root / n)
    subs, _ = discover(root)
    assert sorted(s.student for s in subs) == names
    assert len({s.folder for s in subs}) == 2 and all(len(s.folder.encode()) <= 160 for s in subs)
    outcome = grade_batch(root, tmp_path / "out", GradeOptions(secret="long", mnist=False), jobs=1)
    assert sorted(r.student for r in outcome.results) == names
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "gradebook.csv").read_text(encoding="utf-8"))))
    assert sorted(r["student"] for r in rows) == names
    for s in subs:
        data = json.loads((tmp_path / "out" / s.folder / "results.json").read_text(encoding="utf-8"))
        assert data["extra_data"]["student"] == s.student
    huge = ["x" * 2000 + "Anna", "x" * 2000 + "Olga"]
    capped = [student_id(h) for h in huge]
    assert capped[0] != capped[1] and all(len(c) <= MAX_ID for c in capped)
    assert capped[0].split(" #")[0].endswith("Anna") and student_id("y" * MAX_ID) == "y" * MAX_ID


def test_only_selects_an_id_that_holds_a_comma(tmp_path, capsys):
    from grader.cli import main
    from grader.instructor.run import split_only

    known = {"Ivanova, Anna", "anna.smith", "Anna", "bob"}
    assert split_only("Ivanova, Anna", known) == {"Ivanova, Anna"}
    assert split_only("bob,Ivanova, Anna,anna.smith", known) == {"bob", "Ivanova, Anna", "anna.smith"}
    assert split_only("bob, Anna", known) == {"bob", "Anna"}  # negative control: plain lists still split
    assert split_only("Ivanova,Anna", {"Anna"}) == {"Ivanova", "Anna"}
    root = tmp_path / "subs"
    for n in ("Ivanova, Anna", "anna.smith"):
        make_submission(root / n)
    out = tmp_path / "out"
    args = ["grade", str(root), "--out", str(out), "--no-mnist", "--jobs", "1", "--quiet"]
    assert main(args) == 0
    before = (out / "anna.smith" / "results.json").stat().st_mtime_ns
    assert main(args + ["--only", "Ivanova, Anna"]) == 0
    assert (out / "anna.smith" / "results.json").stat().st_mtime_ns == before  # kept, not regraded
    run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert run["graded_now"] == 1 and run["skipped_as_already_graded"] == 1
    capsys.readouterr()
    assert main(args + ["--only", "Ivanova, Anna,nobody"]) == 2
    assert "'nobody'" in capsys.readouterr().err
