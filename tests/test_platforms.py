"""Learning-platform bulk downloads (issue 16): Canvas, Moodle, Gradescope, GitHub Classroom, each
written here in the platform's documented naming, grade to one row per student with the platform's id;
a roster gives missing and unmatched lists; the Canvas and Moodle exports have the import columns."""
from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT
from grader.cli import main
from grader.intake import collect

SRC = {n: (ROOT / "solutions" / n).read_bytes() for n in ("layers.py", "logistic_regression.py")}
BUG = SRC["layers.py"].replace(b"self.grad_b = grad_output.sum(axis=0)", b"self.grad_b = grad_output.mean(axis=0)")
assert BUG != SRC["layers.py"]


def _zip_bytes(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for n, b in entries.items():
            zf.writestr(n, b)
    return buf.getvalue()


def _write(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


def _grade(tmp_path, what: Path, *extra: str) -> tuple[dict, Path, dict]:
    out = tmp_path / "out"
    code = main(["grade", str(what), "--out", str(out), "--no-mnist", "--jobs", "2", "--quiet", "--format", "json",
                 *extra])
    assert code == 0
    rows = {r["student"]: r for r in csv.DictReader(io.StringIO((out / "gradebook.csv").read_text(encoding="utf-8")))}
    return rows, out, json.loads((out / "run.json").read_text())


def canvas_zip(path: Path) -> Path:
    path.write_bytes(_zip_bytes({
        "ivanovivan_1001_5001_layers.py": SRC["layers.py"],
        "ivanovivan_1001_5001_logistic_regression.py": SRC["logistic_regression.py"],
        # late, and Canvas's renaming of a re-uploaded file
        "smithjane_LATE_1002_5003_layers-1.py": BUG,
        "smithjane_LATE_1002_5003_layers-2.py": SRC["layers.py"],
        "smithjane_LATE_1002_5003_logistic_regression.py": SRC["logistic_regression.py"],
        # a zip uploaded as the submission
        "wangxiaoming_1003_5005_hw1.zip": _zip_bytes({f"hw1-main/assignment/{n}": b for n, b in SRC.items()}),
        "doejohn_1004_5006_report.pdf": b"%PDF-1.4",
        "guestghost_1999_5007_layers.py": SRC["layers.py"],
        "guestghost_1999_5007_logistic_regression.py": SRC["logistic_regression.py"],
    }))
    return path


ROSTER = ("Student,ID,SIS Login ID,Email\n"
          "\"Ivanov, Ivan\",1001,iivanov,ivan@example.org\n"
          "\"Smith, Jane\",1002,jsmith,jane@example.org\n"
          "Xiaoming Wang,1003,xwang,\n"
          "John Doe,1004,jdoe,\n"
          "Absent Person,1005,aperson,absent@example.org\n")


def test_canvas_zip_with_roster_and_export(tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text(ROSTER, encoding="utf-8")
    rows, out, run = _grade(tmp_path, canvas_zip(tmp_path / "submissions.zip"), "--roster", str(roster),
                            "--roster-id", "SIS Login ID", "--roster-name", "Student", "--roster-lms-id", "ID",
                            "--roster-email", "Email", "--export", "canvas")
    assert set(rows) == {"ivanovivan", "smithjane", "wangxiaoming", "doejohn", "guestghost", "aperson"}
    assert rows["ivanovivan"]["score"] == rows["ivanovivan"]["max_score"] == "65"
    assert rows["smithjane"]["score"] == "65" and rows["smithjane"]["late"] == "yes"  # layers-2 is the latest
    assert rows["ivanovivan"]["late"] == "no" and rows["ivanovivan"]["lms_id"] == "1001"
    assert rows["wangxiaoming"]["score"] == "65" and rows["wangxiaoming"]["status"] == "ok"
    assert rows["doejohn"]["status"] == "rejected" and rows["doejohn"]["score"] == "0"
    assert rows["aperson"]["status"] == "missing" and rows["aperson"]["score"] == "0"
    assert rows["ivanovivan"]["roster_name"] == "Ivanov, Ivan" and rows["aperson"]["roster_email"] == "absent@example.org"
    assert run["roster"]["missing"] == ["aperson"] and run["roster"]["unmatched"] == ["guestghost"]
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert "### Missing: 1 roster student" in summary and "- aperson" in summary
    assert "### Unmatched: 1 submission" in summary and "- guestghost" in summary
    rec = run["reconciliation"]
    assert rec["layout"] == "canvas" and rec["balanced"] and rec["rows_written"] == 6 and rec["submissions"] == 5
    wang = json.loads((out / rows["wangxiaoming"]["folder"] / "results.json").read_text())
    assert wang["extra_data"]["late"] is False and "hw1-main/assignment/" in wang["output"]
    late = json.loads((out / "smithjane" / "results.json").read_text())
    assert late["extra_data"]["late"] is True and late["extra_data"]["intake"]["lms_id"] == "1002"
    export = list(csv.reader(io.StringIO((out / "canvas-grades.csv").read_text(encoding="utf-8-sig"))))
    assert export[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Backprop by hand"]
    assert export[1][0] == "Points Possible" and export[1][5] == "65"
    by_id = {r[1]: r for r in export[2:]}
    assert by_id["1001"][5] == "65" and by_id["1005"][5] == "0" and by_id["1001"][2] == "iivanov"


def test_moodle_folder_and_export(tmp_path):
    root = _write(tmp_path / "moodle", {
        **{f"Иван Иванов_12345_assignsubmission_file_/{n}": b for n, b in SRC.items()},
        "Jane Smith_12346_assignsubmission_file_/hw1.zip": _zip_bytes({f"assignment/{n}": b for n, b in SRC.items()}),
        "Jane Smith_12346_assignsubmission_onlinetext_/onlinetext.html": b"<p>see the zip</p>",
        **{f"王小明_12347_assignsubmission_file_/hw1-main/src/{n}": b for n, b in SRC.items()},
        "Mary Ann_12348_assignsubmission_onlinetext_/onlinetext.html": b"<p>forgot the file</p>",
    })
    rows, out, run = _grade(tmp_path, root, "--export", "moodle")
    assert set(rows) == {"Иван Иванов", "Jane Smith", "王小明", "Mary Ann"}
    for sid in ("Иван Иванов", "Jane Smith", "王小明"):
        assert rows[sid]["score"] == "65" and rows[sid]["layout"] == "moodle", (sid, rows[sid]["reason"])
    assert rows["Mary Ann"]["status"] == "rejected" and "submitted no file" in rows["Mary Ann"]["reason"]
    assert rows["Иван Иванов"]["lms_id"] == "12345"
    rec = run["reconciliation"]
    assert rec["entries_found"] == 5 and rec["entries_in_submissions"] == 5 and rec["rows_written"] == 4
    export = list(csv.reader(io.StringIO((out / "moodle-grades.csv").read_text(encoding="utf-8-sig"))))
    assert export[0][:6] == ["Identifier", "Full name", "Email address", "Status", "Grade", "Maximum Grade"]
    by_ident = {r[0]: r for r in export[1:]}
    assert by_ident["Participant 12345"][1] == "Иван Иванов" and by_ident["Participant 12345"][4] == "65"


GS_META = """\
submission_111:
  :submitters:
  - :name: Ann Lee
    :sid: 'S001'
    :email: ann@example.org
  :created_at: 2026-11-20 10:00:00.000000000 -08:00
  :score: 0.0
submission_222:
  :submitters:
  - :name: Борис Петров
    :sid: 'S002'
    :email: boris@example.org
  - :name: Chen Wei
    :sid: 'S003'
    :email: chen@example.org
  :created_at: 2026-11-21 23:59:00.000000000 -08:00
"""


def test_gradescope_export_zip_group_submission(tmp_path):
    entries = {"assignment_99_export/submission_metadata.yml": GS_META.encode()}
    entries.update({f"assignment_99_export/submission_111/{n}": b for n, b in SRC.items()})
    entries.update({f"assignment_99_export/submission_222/{n}": b for n, b in SRC.items()})
    entries["__MACOSX/assignment_99_export/._submission_metadata.yml"] = b"\x00\x05\x16\x07"
    (tmp_path / "export.zip").write_bytes(_zip_bytes(entries))
    rows, out, run = _grade(tmp_path, tmp_path / "export.zip")
    assert set(rows) == {"S001", "S002", "S003"}
    assert all(r["score"] == "65" and r["layout"] == "gradescope" for r in rows.values())
    assert rows["S002"]["source"] == rows["S003"]["source"] == "submission_222"
    data = json.loads((out / "S003" / "results.json").read_text())
    assert data["extra_data"]["intake"]["group"] == ["S002"] and data["extra_data"]["intake"]["name"] == "Chen Wei"
    assert data["extra_data"]["intake"]["submitted_at"].startswith("2026-11-21")
    assert run["reconciliation"]["layout"] == "gradescope" and run["reconciliation"]["balanced"]


def test_classroom_clones(tmp_path):
    root = tmp_path / "hw1-submissions"
    _write(root, {**{f"hw1-alice/{n}": b for n, b in SRC.items()}, "hw1-alice/.git/HEAD": b"ref: refs/heads/main\n",
                  **{f"hw1-bob-smith/assignment/{n}": b for n, b in SRC.items()},
                  "hw1-bob-smith/.git/HEAD": b"ref: refs/heads/main\n", "hw1-bob-smith/README.md": b"# hw1",
                  **{f"hw1-陈/{n}": b for n, b in SRC.items()}, "hw1-陈/.git/HEAD": b"ref: refs/heads/main\n"})
    (root / "hw1-dave").mkdir()
    (root / "hw1-dave" / ".git").mkdir()  # a clone of a repository the student never pushed to
    rows, out, run = _grade(tmp_path, root)
    assert set(rows) == {"alice", "bob-smith", "陈", "dave"}
    assert all(rows[s]["score"] == "65" for s in ("alice", "bob-smith", "陈"))
    assert rows["dave"]["status"] == "rejected" and "empty folder" in rows["dave"]["reason"]
    assert run["reconciliation"]["layout"] == "classroom"


def test_layout_detection_and_naming(tmp_path):
    c = collect(canvas_zip(tmp_path / "c.zip"), staging=tmp_path / "stage")
    assert c.layout == "canvas" and sorted(s.student for s in c.subs) == [
        "doejohn", "guestghost", "ivanovivan", "smithjane", "wangxiaoming"]
    jane = next(s for s in c.subs if s.student == "smithjane")
    assert jane.meta["late"] is True and jane.meta["lms_id"] == "1002" and "layers-2.py was used as layers.py" in jane.note
    assert (jane.path / "layers.py").read_bytes() == SRC["layers.py"]
    plain = _write(tmp_path / "plain", {f"alice/{n}": b for n, b in SRC.items()})
    assert collect(plain).layout == "plain"
    forced = collect(plain, layout="classroom")  # one folder, no common prefix: a plain entry
    assert [s.student for s in forced.subs] == ["alice"]
    # two students with the same Canvas name but different user ids stay two rows
    (tmp_path / "same").mkdir()
    for uid in ("2001", "2002"):
        for n, b in SRC.items():
            (tmp_path / "same" / f"leejun_{uid}_9{uid}_{n}").write_bytes(b)
    same = collect(tmp_path / "same", staging=tmp_path / "stage2")
    assert sorted(s.student for s in same.subs) == ["leejun (2001)", "leejun (2002)"]


def test_bad_gradescope_metadata_is_a_usage_error(tmp_path):
    root = _write(tmp_path / "gs", {"submission_metadata.yml": b"- just\n- a list\n",
                                    **{f"submission_1/{n}": b for n, b in SRC.items()}})
    assert main(["grade", str(root), "--out", str(tmp_path / "o"), "--no-mnist", "--quiet"]) == 2


def test_roster_matching_rules(tmp_path):
    from grader.intake import Submission
    from grader.intake.roster import RosterSpec, load_roster, match
    from grader.report.export import render_export
    from grader.scoring import SubmissionResult

    roster = tmp_path / "r.csv"
    roster.write_text("login;full name;mail\nIvanov;Иван Иванов;ivan@x.org\nbob;Bob Stone;bob@x.org\n"
                      "carol;Carol King;carol@x.org\n", encoding="utf-8")
    rows = load_roster(RosterSpec(str(roster), name_col="Full Name", email_col="mail"))
    assert rows[0] == {"id": "Ivanov", "name": "Иван Иванов", "email": "ivan@x.org", "lms_id": ""}
    subs = [Submission("ivanov", tmp_path, "dir"),                      # id, case-insensitively
            Submission("Иван  Иванов", tmp_path, "dir"),                # name, spacing ignored: a 2nd submission
            Submission("S9", tmp_path, "dir", meta={"email": "BOB@x.org"}),  # email from Gradescope
            Submission("bobby", tmp_path, "dir")]                       # negative control: no prefix matching
    m = match(rows, subs)
    assert m.matched["ivanov"]["id"] == m.matched["Иван  Иванов"]["id"] == "Ivanov"
    assert m.matched["S9"]["id"] == "bob" and m.unmatched == ["bobby"]
    assert [r["id"] for r in m.missing] == ["carol"]
    assert any("has 2 submissions" in w for w in m.warnings)
    with pytest.raises(Exception, match="no such column"):
        load_roster(RosterSpec(str(roster), lms_col="canvas id"))
    r = SubmissionResult("x", "ok")
    r.intake = {"folder": "x"}  # nothing identifies it to Canvas or Moodle: left out, and said so
    assert render_export("canvas", [r])[1] == ["x"] and render_export("moodle", [r])[1] == ["x"]


def test_plain_names_that_look_half_like_canvas_stay_one_row_each(tmp_path):
    """``hw1_2024_<name>.zip`` (assignment, year, student) is not Canvas's naming: three students stay
    three rows; with a number where Canvas has its submission id the grouping would merge them, so
    the folder is plain too, with a warning; a real Canvas download is still Canvas (negative control)."""
    one = _zip_bytes({f"assignment/{n}": b for n, b in SRC.items()})
    a = _write(tmp_path / "a", {f"hw1_2024_{who}.zip": one for who in ("ivanov", "petrova", "smith")})
    c = collect(a)
    assert c.layout == "plain" and [s.student for s in c.subs] == ["hw1_2024_ivanov", "hw1_2024_petrova", "hw1_2024_smith"]
    assert all(s.kind == "zip" for s in c.subs) and not c.reconciliation()["grouped"]
    b = _write(tmp_path / "b", {f"hw1_2024_01_{who}.zip": one for who in ("ivanov", "petrova", "smith")})
    c = collect(b)
    assert c.layout == "plain" and len(c.subs) == 3 and all(s.kind == "zip" for s in c.subs)
    assert any("would be one student 'hw1'" in w and "plain" in w for w in c.warnings)
    z = tmp_path / "b.zip"
    z.write_bytes(_zip_bytes({f"hw1_2024_01_{who}.zip": one for who in ("ivanov", "petrova")}))
    assert collect(z).layout == "single" and any("would be one student" in w for w in collect(z).warnings)
    # negative controls: the real naming, a re-uploaded archive (hw1.zip, hw1-1.zip) is one student
    real = collect(canvas_zip(tmp_path / "c.zip"), staging=tmp_path / "stage")
    assert real.layout == "canvas" and not any("plain" in w for w in real.warnings)
    assert real.reconciliation()["grouped"]["ivanovivan"] == ["ivanovivan_1001_5001_layers.py",
                                                              "ivanovivan_1001_5001_logistic_regression.py"]
    d = _write(tmp_path / "d", {"leejun_2001_3001_hw1.zip": one, "leejun_2001_3002_hw1-1.zip": one,
                                "kimmin_2002_3003_hw1.zip": one})
    assert collect(d, staging=tmp_path / "stage3").layout == "canvas"
    e = _write(tmp_path / "e", {"leejun_2001_3001_hw1.zip": one, "leejun_2001_3002_HW1.ipynb": b"{}",
                                "kimmin_2002_3003_hw1.zip": one, "parkso_2003_3004_hw1.zip": one,
                                "choiyu_2004_3005_hw1.zip": one})  # one student sent a zip and a notebook
    assert collect(e, staging=tmp_path / "stage4").layout == "canvas"


def test_grouped_entries_are_said_in_the_reconciliation_line(tmp_path, capsys):
    rows, out, run = _grade(tmp_path, canvas_zip(tmp_path / "submissions.zip"))
    err = capsys.readouterr().err
    line = next(ln for ln in err.splitlines() if ln.startswith("reconciliation"))
    assert "grouped into" in line and "smithjane <- 3 entries" in line, line
    assert run["reconciliation"]["grouped"]["smithjane"][0].startswith("smithjane_LATE_1002_5003_")
    assert "Rows built from several entries" in (out / "summary.md").read_text(encoding="utf-8")


def test_roster_exact_match_wins_over_case_insensitive(tmp_path):
    """Rows s4,alice and s5,Alice with submissions alice/ and Alice/: each its own row, none missing,
    in either order; a submission that only matches ignoring case takes a row nobody has."""
    from grader.intake import Submission
    from grader.intake.roster import RosterSpec, load_roster, match

    roster = tmp_path / "r.csv"
    roster.write_text("id,name,email\ns4,alice,alice@x\ns5,Alice,alice2@x\ns6,Bob,bob@x\n", encoding="utf-8")
    rows = load_roster(RosterSpec(str(roster)))
    for order in (["alice", "Alice"], ["Alice", "alice"]):
        m = match(rows, [Submission(n, tmp_path, "dir") for n in order])
        assert m.matched["alice"]["id"] == "s4" and m.matched["Alice"]["id"] == "s5"
        assert [r["id"] for r in m.missing] == ["s6"] and not any("roster rows" in w for w in m.warnings)
    m = match(rows, [Submission("ALICE", tmp_path, "dir"), Submission("alice", tmp_path, "dir")])
    assert m.matched["alice"]["id"] == "s4" and m.matched["ALICE"]["id"] == "s5"
    # negative control: case is still ignored when nothing matches exactly
    m = match(rows, [Submission("BOB", tmp_path, "dir")])
    assert m.matched["BOB"]["id"] == "s6"
