"""Intake: submissions found, copied safely, refused with a precise message (issues 4 and 6)."""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

import nbformat
import pytest

from conftest import ROOT, make_submission
from grader.intake import IntakeError, Submission, UsageError, discover, prepare
from grader.intake.extract import notebook_source


def _prep(tmp_path, path: Path, kind: str):
    return prepare(Submission(path.stem, path, kind), tmp_path / "scratch")


def test_directory_top_level_and_assignment_subfolder(tmp_path):
    a = make_submission(tmp_path / "a")
    b = make_submission(tmp_path / "b" / "assignment").parent
    for sub in (a, b):
        p = prepare(Submission(sub.name, sub, "dir"), tmp_path / f"s-{sub.name}")
        assert (p.package_dir / "layers.py").read_bytes() == (ROOT / "solutions/layers.py").read_bytes()
        assert (p.package_dir / "module.py").read_bytes() == (ROOT / "assignment/module.py").read_bytes()
        assert not p.problems


def test_only_the_two_student_files_are_taken(tmp_path):
    sub = make_submission(tmp_path / "s")
    (sub / "conftest.py").write_text("import os; os._exit(0)")
    (sub / "module.py").write_text("raise SystemExit")  # provided files come from the grader
    (sub / "results.json").write_text("{}")
    p = _prep(tmp_path, sub, "dir")
    # the provided files (all four: CONTRACT section 1), the student's two, and the skeleton's two (for a
    # notebook that subclasses the skeleton, grader/intake/notebook_cells.py)
    assert sorted(f.name for f in p.package_dir.iterdir()) == [
        "_skeleton_layers.py", "_skeleton_logistic_regression.py", "data.py", "gradcheck.py", "layers.py",
        "logistic_regression.py", "module.py", "train.py"]
    assert "SystemExit" not in (p.package_dir / "module.py").read_text()
    for name in ("layers.py", "logistic_regression.py"):
        assert (p.package_dir / f"_skeleton_{name}").read_bytes() == (ROOT / "assignment" / name).read_bytes()


def test_symlinked_student_file_is_refused(tmp_path):
    sub = make_submission(tmp_path / "s")
    (sub / "layers.py").unlink()
    os.symlink(ROOT / "solutions" / "layers.py", sub / "layers.py")
    p = _prep(tmp_path, sub, "dir")
    assert "symbolic link" in p.problems["layers.py"]
    assert "raise SubmissionFileProblem" in (p.package_dir / "layers.py").read_text()


def test_missing_file_costs_only_its_components(tmp_path):
    sub = make_submission(tmp_path / "s")
    (sub / "logistic_regression.py").unlink()
    p = _prep(tmp_path, sub, "dir")
    assert "not found" in p.problems["logistic_regression.py"] and "layers.py" not in p.problems


def test_non_utf8_and_oversized_sources(tmp_path):
    sub = make_submission(tmp_path / "s")
    (sub / "layers.py").write_bytes(b"# \xff\xfe caf\xe9\n")
    (sub / "logistic_regression.py").write_text("x = 1\n" * 200_000)
    p = _prep(tmp_path, sub, "dir")
    assert "not UTF-8" in p.problems["layers.py"]
    assert "over the limit" in p.problems["logistic_regression.py"]


@pytest.mark.parametrize("codec", ["cp1251", "koi8-r", "gbk", "latin-1"])
def test_a_file_in_the_encoding_its_coding_line_declares_is_read_as_python_reads_it(tmp_path, codec):
    """PEP 263: ``# -*- coding: cp1251 -*-`` (Russian Windows editors write it) is how Python reads the
    file, so the grader does too; it stores UTF-8 and says so in the coding line. Without the line, the
    same bytes are refused as Python refuses them, with the fix named."""
    words = {"cp1251": "Привет, мир", "koi8-r": "Привет", "gbk": "你好", "latin-1": "café"}[codec]
    text = (ROOT / "solutions/layers.py").read_text()
    marked = text.replace('"""The layers', f"# {words}\n" + '"""The layers', 1)
    sub = tmp_path / "s"
    make_submission(sub)
    (sub / "layers.py").write_bytes((f"# -*- coding: {codec} -*-\n" + marked).encode(codec))
    p = _prep(tmp_path, sub, "dir")
    assert not p.problems, p.problems
    stored = (p.package_dir / "layers.py").read_text(encoding="utf-8")
    assert stored.startswith("# -*- coding: utf-8 -*-\n") and f"# {words}\n" in stored
    compile(stored, "layers.py", "exec")  # the coding line and the bytes agree
    (sub / "layers.py").write_bytes(marked.encode(codec))  # the same bytes, no coding line
    p = _prep(tmp_path / "again", sub, "dir")
    assert "not UTF-8" in p.problems["layers.py"] and "coding: cp1251" in p.problems["layers.py"]


def _zip(path: Path, entries: dict[str, bytes], *, symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (0o120777 << 16)
            zf.writestr(info, "/work/main/solutions/layers.py")
    return path


def test_zip_nested_folder_and_bad_archives(tmp_path):
    src = {n: (ROOT / "solutions" / n).read_bytes() for n in ("layers.py", "logistic_regression.py")}
    ok = _zip(tmp_path / "alice.zip", {f"alice/assignment/{n}": b for n, b in src.items()} | {"alice/notes.txt": b"hi"})
    p = _prep(tmp_path, ok, "zip")
    assert not p.problems
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(IntakeError, match="not a readable zip"):
        _prep(tmp_path, tmp_path / "broken.zip", "zip")
    bad = _zip(tmp_path / "evil.zip", {"../../etc/layers.py": b"x", "logistic_regression.py": b"y"})
    with pytest.raises(IntakeError, match="leaves the archive"):
        prepare(Submission("evil", bad, "zip"), tmp_path / "s2")
    absolute = _zip(tmp_path / "abs.zip", {"/tmp/layers.py": b"x"})
    with pytest.raises(IntakeError, match="absolute"):
        prepare(Submission("abs", absolute, "zip"), tmp_path / "s3")
    link = _zip(tmp_path / "link.zip", {"logistic_regression.py": src["logistic_regression.py"]}, symlink="layers.py")
    p = prepare(Submission("link", link, "zip"), tmp_path / "s4")
    assert "symbolic link" in p.problems["layers.py"]


def test_zip_bomb_is_capped(tmp_path):
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("layers.py", b"#" * (50 << 20))
        zf.writestr("logistic_regression.py", b"x = 1\n")
    p = prepare(Submission("bomb", path, "zip"), tmp_path / "s")
    assert "over the limit" in p.problems["layers.py"]


def _nb(cells) -> bytes:
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    return nbformat.writes(nb).encode()


def test_notebook_reduction_rules():
    src, notes = notebook_source(_nb([
        nbformat.v4.new_code_cell("%load_ext autoreload\n!pip install torch\nimport numpy as np\nEPS = 1e-12\n"
                                  "data = load_everything()\nprint('hi')\nclass A:\n    pass\n"),
        nbformat.v4.new_code_cell("import os\nos.system('rm -rf /')\ndef f(x):\n    return x\n"),
    ]), "n.ipynb")
    assert "EPS = 1e-12" in src and "class A" in src and "def f" in src and "import os" in src
    assert "load_everything" not in src and "os.system" not in src and "print" not in src and "pip" not in src
    tagged, _ = notebook_source(_nb([
        nbformat.v4.new_code_cell("def untagged(): pass"),
        nbformat.v4.new_code_cell("def tagged(): pass", metadata={"tags": ["solution"]}),
    ]), "n.ipynb")
    assert "tagged" in tagged and "untagged" not in tagged


def test_notebook_that_is_not_json(tmp_path):
    path = tmp_path / "n.ipynb"
    path.write_text("{ this is not json")
    with pytest.raises(IntakeError, match="not a valid Jupyter notebook"):
        _prep(tmp_path, path, "ipynb")


def test_discover_folder_ids_duplicates_and_empty(tmp_path):
    # Issue 16 changed this test deliberately: ids are exact (no more "we_ird_name"), and what is not a
    # submission (notes.txt, an empty folder) is a rejected entry instead of a skipped one.
    root = tmp_path / "class"
    make_submission(root / "alice")
    (root / "alice.zip").write_bytes(b"x")
    (root / "bob.ipynb").write_text("{}")
    (root / "notes.txt").write_text("x")
    (root / "we ird=name").mkdir()
    subs, warnings = discover(root)
    by_id = {s.student: s for s in subs}
    assert sorted(by_id) == ["alice", "alice.zip", "bob", "notes", "we ird=name"]
    assert by_id["notes"].kind == "rejected" and "notes.txt is a file of another type (.txt)" in by_id["notes"].note
    assert by_id["we ird=name"].kind == "rejected" and "empty folder" in by_id["we ird=name"].note
    assert by_id["alice"].kind == "dir" and by_id["alice.zip"].kind == "zip"
    assert any("duplicate student id 'alice'" in w for w in warnings)
    assert any("notes.txt" in w for w in warnings)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no submissions found"):
        discover(tmp_path / "empty")
    with pytest.raises(UsageError, match="does not exist"):
        discover(tmp_path / "nope")
    single, _ = discover(root / "alice")
    assert [s.student for s in single] == ["alice"]


# --- issue 16: tar archives, Windows and macOS zips, wrapping folders, every entry a row ---------------

import io as _io
import stat as _stat
import tarfile

SRC = {n: (ROOT / "solutions" / n).read_bytes() for n in ("layers.py", "logistic_regression.py")}


def _tar(path: Path, entries: dict[str, bytes], *, mode: str = "w:gz", extra=()) -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, _io.BytesIO(data))
        for info in extra:
            tf.addfile(info)
    return path


def _link(name: str, target: str, kind=tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def test_tar_gz_and_tgz_are_read_without_extracting(tmp_path):
    for suffix in (".tar.gz", ".tgz", ".tar"):
        path = _tar(tmp_path / f"bob{suffix}", {f"bob/{n}": b for n, b in SRC.items()},
                    mode="w" if suffix == ".tar" else "w:gz")
        subs, _ = discover(path)
        assert subs[0].student == "bob" and subs[0].kind == "tar"
        p = prepare(subs[0], tmp_path / f"s{suffix}")
        assert not p.problems and (p.package_dir / "layers.py").read_bytes() == SRC["layers.py"]
        assert "student files found under bob/" in p.notes


@pytest.mark.parametrize("bad, match", [
    ({"name": "../../tmp/layers.py"}, "leaves the archive"),
    ({"name": "/tmp/layers.py"}, "absolute path"),
])
def test_tar_paths_leaving_the_archive_are_refused(tmp_path, bad, match):
    path = _tar(tmp_path / "evil.tar.gz", {bad["name"]: b"x", "logistic_regression.py": SRC["logistic_regression.py"]})
    with pytest.raises(IntakeError, match=match):
        prepare(Submission("evil", path, "tar"), tmp_path / "s")


def test_tar_links_and_devices_are_never_read(tmp_path):
    dev = tarfile.TarInfo("logistic_regression.py")
    dev.type, dev.devmajor, dev.devminor = tarfile.CHRTYPE, 1, 3
    path = _tar(tmp_path / "links.tar.gz", {}, extra=[_link("layers.py", "/work/main/solutions/layers.py"), dev])
    p = prepare(Submission("links", path, "tar"), tmp_path / "s")
    assert "symbolic link" in p.problems["layers.py"] and "not a regular file" in p.problems["logistic_regression.py"]
    hard = _tar(tmp_path / "hard.tar", {"x.py": SRC["layers.py"], "logistic_regression.py": SRC["logistic_regression.py"]},
                mode="w", extra=[_link("layers.py", "x.py", tarfile.LNKTYPE)])
    p = prepare(Submission("hard", hard, "tar"), tmp_path / "s2")
    assert "symbolic link" in p.problems["layers.py"]  # a hard link is a link too: refused, not followed


def test_tar_size_and_count_caps(tmp_path, monkeypatch):
    from grader.intake import archives

    big = _tar(tmp_path / "big.tar.gz", {"layers.py": b"#" * (2 << 20), "logistic_regression.py": b"x=1\n"})
    p = prepare(Submission("big", big, "tar"), tmp_path / "s")
    assert "over the limit" in p.problems["layers.py"]
    monkeypatch.setattr(archives, "MAX_ENTRIES", 3)
    many = _tar(tmp_path / "many.tgz", {f"f{i}.txt": b"x" for i in range(10)})
    with pytest.raises(IntakeError, match="entries, over the limit"):
        prepare(Submission("many", many, "tar"), tmp_path / "s2")
    monkeypatch.setattr(archives, "MAX_TAR_EXPANDED", 1000)
    with pytest.raises(IntakeError, match="expands to more than"):
        prepare(Submission("big", big, "tar"), tmp_path / "s3")
    (tmp_path / "junk.tar.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(IntakeError, match="not a readable tar archive"):
        prepare(Submission("junk", tmp_path / "junk.tar.gz", "tar"), tmp_path / "s4")


def _raw_zip(path: Path, entries: list[tuple[str, bytes, int]]) -> Path:
    """Entries as (name, data, flag_bits): names as a Windows tool writes them (backslashes; UTF-8
    bytes without the UTF-8 flag)."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data, flags in entries:
            info = zipfile.ZipInfo(name)
            info.create_system = 0  # MS-DOS
            zf.writestr(info, data)
    return path


def test_windows_made_zip(tmp_path):
    path = _raw_zip(tmp_path / "win.zip", [("Домашка\\assignment\\layers.py", SRC["layers.py"], 0),
                                           ("Домашка\\assignment\\logistic_regression.py", SRC["logistic_regression.py"], 0)])
    p = prepare(Submission("win", path, "zip"), tmp_path / "s")
    assert not p.problems, p.problems
    assert any("Домашка/assignment/" in n for n in p.notes), p.notes  # the folder's name, readable
    evil = _raw_zip(tmp_path / "evil.zip", [("..\\..\\layers.py", b"x", 0)])
    with pytest.raises(IntakeError, match="leaves the archive"):
        prepare(Submission("evil", evil, "zip"), tmp_path / "s2")


def test_cp437_names_are_decoded_when_they_are_utf8(tmp_path):
    from grader.intake.archives import _zip_name

    info = zipfile.ZipInfo("Домашка/layers.py".encode("utf-8").decode("cp437"))
    assert _zip_name(info) == "Домашка/layers.py"
    info = zipfile.ZipInfo("caf\u00e9/layers.py")  # genuine cp437 text that is not UTF-8 stays as it is
    info.filename = "caf\u00e9/layers.py".encode("latin-1").decode("cp437")
    assert _zip_name(info) == info.filename


def test_macos_made_zip(tmp_path):
    entries = {f"hw1/{n}": b for n, b in SRC.items()}
    entries.update({"__MACOSX/hw1/._layers.py": b"\x00\x05\x16\x07", "hw1/._layers.py": b"\x00\x05\x16\x07",
                    "hw1/.DS_Store": b"\x00\x00\x00\x01Bud1", "__MACOSX/._hw1": b"\x00"})
    p = prepare(Submission("mac", _zip(tmp_path / "mac.zip", entries), "zip"), tmp_path / "s")
    assert not p.problems and (p.package_dir / "layers.py").read_bytes() == SRC["layers.py"]
    assert "student files found under hw1/" in p.notes


def test_download_zip_wrapping_and_ambiguous_candidates(tmp_path):
    wrapped = _zip(tmp_path / "w.zip", {f"hw1-main/assignment/{n}": b for n, b in SRC.items()}
                   | {"hw1-main/README.md": b"#", "hw1-main/notebooks/01.ipynb": b"{}"})
    p = prepare(Submission("w", wrapped, "zip"), tmp_path / "s")
    assert not p.problems and "student files found under hw1-main/assignment/" in p.notes
    deep = _zip(tmp_path / "d.zip", {f"a/b/c/{n}": b for n, b in SRC.items()})
    p = prepare(Submission("d", deep, "zip"), tmp_path / "s2")
    assert not p.problems and "student files found under a/b/c/" in p.notes
    two = _zip(tmp_path / "two.zip", {**{f"old/{n}": b for n, b in SRC.items()}, **{f"new/{n}": b for n, b in SRC.items()}})
    with pytest.raises(IntakeError, match=r"2 different folders \(new/; old/\)"):
        prepare(Submission("two", two, "zip"), tmp_path / "s3")
    none = _zip(tmp_path / "none.zip", {"report.pdf": b"%PDF", "code/main.py": b"print(1)"})
    with pytest.raises(IntakeError, match=r"holds no layers.py or logistic_regression.py \(found: code, report.pdf\)"):
        prepare(Submission("none", none, "zip"), tmp_path / "s4")
    folder = tmp_path / "dirwrap"
    make_submission(folder / "hw1-main" / "hw1" / "assignment")
    p = prepare(Submission("dirwrap", folder, "dir"), tmp_path / "s5")
    assert not p.problems and "student files found under hw1-main/hw1/assignment/" in p.notes


def _mixed_folder(root: Path) -> dict[str, str]:
    """20 entries as a real class hands them in; returns id -> expected status."""
    root.mkdir(parents=True)
    exp = {}
    for name in ("anna", "Борис", "陈静"):
        make_submission(root / name)
        exp[name] = "ok"
    make_submission(root / "dmitri" / "assignment")
    exp["dmitri"] = "ok"
    _zip(root / "eve.zip", {f"eve/{n}": b for n, b in SRC.items()})
    _zip(root / "frank.zip", {f"hw1-main/assignment/{n}": b for n, b in SRC.items()} | {"hw1-main/README.md": b"#"})
    _raw_zip(root / "gosha.zip", [(f"hw\\{n}", b, 0) for n, b in SRC.items()])
    _zip(root / "hana.zip", {f"hana/{n}": b for n, b in SRC.items()} | {"__MACOSX/hana/._layers.py": b"\x00",
                                                                         "hana/.DS_Store": b"\x00"})
    _tar(root / "ivan.tar.gz", {f"ivan/{n}": b for n, b in SRC.items()})
    _tar(root / "jun.tgz", {n: b for n, b in SRC.items()})
    exp.update({k: "ok" for k in ("eve", "frank", "gosha", "hana", "ivan", "jun")})
    src = "\n\n".join(b.decode() for b in SRC.values())
    cell = nbformat.v4.new_code_cell(src, metadata={"tags": ["solution"]})
    (root / "kim.ipynb").write_bytes(_nb([cell]))
    exp["kim"] = "ok"
    (root / "leo.rar").write_bytes(b"Rar!\x1a\x07\x00")
    (root / "mia.7z").write_bytes(b"7z\xbc\xaf\x27\x1c")
    (root / "nils.py").write_bytes(SRC["layers.py"])
    (root / "olga").mkdir()
    (root / "pavel.pdf").write_bytes(b"%PDF-1.4")
    (root / "quinn.zip").write_bytes(b"PK\x03\x04 broken")
    _zip(root / "rosa.zip", {**{f"v1/{n}": b for n, b in SRC.items()}, **{f"v2/{n}": b for n, b in SRC.items()}})
    (root / "sam.ipynb").write_text("{ not json")
    exp.update({k: "rejected" for k in ("leo", "mia", "nils", "olga", "pavel", "quinn", "rosa", "sam")})
    sealed = root / "tom.zip"
    _zip(sealed, {n: b for n, b in SRC.items()})
    sealed.chmod(0)  # a file the grader cannot read (root can: then it is graded, as it should be)
    exp["tom"] = "ok" if os.access(sealed, os.R_OK) else "rejected"
    (root / ".DS_Store").write_bytes(b"\x00")  # debris: ignored, and listed as ignored
    assert len([p for p in root.iterdir() if not p.name.startswith(".")]) == 20 == len(exp)
    return exp


def test_twenty_mixed_entries_give_twenty_rows(tmp_path):
    import csv
    import json

    from grader.batch import grade_batch
    from grader.pipeline import GradeOptions

    exp = _mixed_folder(tmp_path / "class")
    outcome = grade_batch(tmp_path / "class", tmp_path / "out", GradeOptions(secret="mixed", mnist=False), jobs=2)
    got = {r.student: r for r in outcome.results}
    assert sorted(got) == sorted(exp)
    for sid, status in exp.items():
        r = got[sid]
        assert r.status == status, (sid, r.status, r.reason, r.notes)
        if status == "ok":
            assert r.score == r.max_score, (sid, r.reason, r.notes)
        else:
            assert r.score == 0 and all(t.score == 0 for t in r.tests) and len(r.tests) == len(got["anna"].tests)
    assert "a RAR archive" in got["leo"].reason and "Accepted: a folder, a .zip, .tar" in got["leo"].reason
    assert "a single Python file" in got["nils"].reason and "empty folder" in got["olga"].reason
    assert "2 different folders (v1/; v2/)" in got["rosa"].reason
    assert "student files found under hw1-main/assignment/" in got["frank"].notes
    rows = list(csv.DictReader((tmp_path / "out" / "gradebook.csv").open(encoding="utf-8")))
    assert len(rows) == 20 and {r["student"] for r in rows} == set(exp)
    rec = json.loads((tmp_path / "out" / "run.json").read_text())["reconciliation"]
    assert rec["entries_found"] == 21 and rec["ignored"] == [".DS_Store"] and rec["rows_written"] == 20
    assert rec["balanced"] and rec["rejected"] == list(exp.values()).count("rejected")
    assert "21 entries found (1 ignored: `.DS_Store`) -> 20 submissions" in (tmp_path / "out" / "summary.md").read_text()
    feedback = (tmp_path / "out" / got["frank"].intake["folder"] / "feedback.md").read_text()
    assert "hw1-main/assignment/" in feedback


def test_a_readme_document_is_skipped_but_a_submission_named_readme_is_a_row(tmp_path):
    root = tmp_path / "class"
    make_submission(root / "alice")
    (root / "README.md").write_text("# how this folder was collected")
    (root / "readme.txt").write_text("notes")
    _zip(root / "README_john.zip", SRC)
    _zip(root / "readme.zip", SRC)
    subs, _ = discover(root)
    by_id = {s.student: s for s in subs}
    assert sorted(by_id) == ["README_john", "alice", "readme"]
    assert by_id["README_john"].kind == by_id["readme"].kind == "zip"


# --- outside red-team: a folder holding one notebook, a wrapped folder graded alone ------------------

def _nb_bytes() -> bytes:
    code = "\n".join(SRC[n].decode() for n in ("layers.py", "logistic_regression.py"))
    return nbformat.writes(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])).encode()


def test_a_student_folder_holding_only_a_notebook_is_that_student_in_a_batch(tmp_path):
    batch = tmp_path / "batch"
    (batch / "folder_notebook").mkdir(parents=True)
    (batch / "folder_notebook" / "HW1.ipynb").write_bytes(_nb_bytes())
    (batch / "folder_notebook" / "notes.txt").write_text("see the notebook")
    (batch / "folder_notebook" / "img").mkdir()  # a folder of plots beside it changes nothing
    (batch / "folder_notebook" / "img" / "loss.png").write_bytes(b"\x89PNG")
    (batch / "zipped").mkdir()
    _zip(batch / "zipped" / "hw1.zip", {f"assignment/{n}": b for n, b in SRC.items()})
    (batch / "two").mkdir()  # two notebooks: not clear which one, the folder is graded (and refused) as a folder
    (batch / "two" / "a.ipynb").write_bytes(_nb_bytes())
    (batch / "two" / "b.ipynb").write_bytes(_nb_bytes())
    subs = {s.student: s for s in discover(batch)[0]}
    assert sorted(subs) == ["folder_notebook", "two", "zipped"]
    nb = subs["folder_notebook"]
    assert nb.kind == "ipynb" and nb.path.name == "HW1.ipynb" and "only submission in the folder" in nb.note
    assert nb.record()["source"] == "folder_notebook"
    assert subs["zipped"].kind == "zip" and subs["two"].kind == "dir"
    (batch / "mixed").mkdir()  # negative control: student files in a subfolder beside a notebook: the folder
    make_submission(batch / "mixed" / "code")
    (batch / "mixed" / "HW1.ipynb").write_bytes(_nb_bytes())
    assert {s.student: s for s in discover(batch)[0]}["mixed"].kind == "dir"
    p = prepare(nb, tmp_path / "s")
    assert not p.problems
    (batch / "folder_notebook" / "img" / "loss.png").unlink()
    (batch / "folder_notebook" / "img").rmdir()
    alone = discover(batch / "folder_notebook")[0]  # given alone, a folder of submissions: the notebook's name
    assert [(s.student, s.kind) for s in alone] == [("HW1", "ipynb"), ("notes", "rejected")]  # every entry a row
    inbox = tmp_path / "inbox"  # negative control: a notebook beside a student folder is a batch of two
    (inbox / "bob").mkdir(parents=True)
    (inbox / "bob" / "bob.ipynb").write_bytes(_nb_bytes())
    (inbox / "alice.ipynb").write_bytes(_nb_bytes())
    assert sorted(s.student for s in discover(inbox)[0]) == ["alice", "bob"]


def test_a_wrapped_student_folder_graded_alone_keeps_the_name_given(tmp_path):
    who = tmp_path / "Иванова Анна"
    make_submission(who / "hw1-main" / "assignment")
    (who / "hw1-main" / "README.md").write_text("#")
    assert [s.student for s in discover(who)[0]] == ["Иванова Анна"]
    assert [s.student for s in discover(tmp_path)[0]] == ["Иванова Анна"]  # the same id in a batch
    repo = tmp_path / "r" / "Petrov"
    make_submission(repo / "hw1-master")
    assert [s.student for s in discover(repo)[0]] == ["Petrov"]
    # negative control: a batch of one student folder holding the files directly stays a batch
    batch = tmp_path / "b"
    make_submission(batch / "alice")
    assert [s.student for s in discover(batch)[0]] == ["alice"]


def test_an_archive_holding_a_file_twice_is_graded_from_the_last_copy(tmp_path):
    import warnings as _w

    old = (ROOT / "assignment" / "layers.py").read_bytes()
    z = tmp_path / "dup.zip"
    with _w.catch_warnings(), zipfile.ZipFile(z, "w") as zf:
        _w.simplefilter("ignore")  # zipfile warns "Duplicate name": that is the point
        zf.writestr("layers.py", old)
        zf.writestr("logistic_regression.py", SRC["logistic_regression.py"])
        zf.writestr("layers.py", SRC["layers.py"])
    with zipfile.ZipFile(z) as zf:
        assert zf.read("layers.py") == SRC["layers.py"]  # what Python (and unzip) give
    p = prepare(Submission("dup", z, "zip"), tmp_path / "s")
    assert (p.package_dir / "layers.py").read_bytes() == SRC["layers.py"]
    assert any("layers.py appears 2 times in dup.zip; the last copy was used" in n for n in p.notes)
    t = tmp_path / "dup.tar"
    with tarfile.open(t, "w") as tf:
        for name, data in (("layers.py", old), ("logistic_regression.py", SRC["logistic_regression.py"]),
                           ("layers.py", SRC["layers.py"])):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, _io.BytesIO(data))
    p = prepare(Submission("dupt", t, "tar"), tmp_path / "s2")
    assert (p.package_dir / "layers.py").read_bytes() == SRC["layers.py"] and any("2 times" in n for n in p.notes)
    # negative control: one copy of each, no note
    one = _zip(tmp_path / "one.zip", SRC)
    assert not any("times in" in n for n in prepare(Submission("one", one, "zip"), tmp_path / "s3").notes)


def test_cp866_names_of_russian_windows_are_readable(tmp_path):
    """Russian Windows' Explorer writes names in cp866 without the UTF-8 flag: shown in Cyrillic; a
    Western cp437 name (``Müller``, ``José``) is not taken for cp866 (negative control)."""
    from grader.intake.archives import _zip_name

    def named(text: str, codec: str) -> zipfile.ZipInfo:
        return zipfile.ZipInfo(text.encode(codec).decode("cp437"))

    assert _zip_name(named("Домашнее задание 1/layers.py", "cp866")) == "Домашнее задание 1/layers.py"
    assert _zip_name(named("Пётр_hw1/layers.py", "cp866")) == "Пётр_hw1/layers.py"
    for western in ("Müller/layers.py", "José Núñez/layers.py", "Zoë/layers.py"):
        info = named(western, "cp437")
        assert _zip_name(info) == info.filename == western
    folder = "Домашнее задание 1".encode("cp866")  # one byte a letter: an ASCII stand-in of that length
    z = tmp_path / "ru.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for n, b in SRC.items():
            zf.writestr(f"{'X' * len(folder)}/{n}", b)
    z.write_bytes(z.read_bytes().replace(b"X" * len(folder), folder))  # as Explorer writes: no UTF-8 flag
    p = prepare(Submission("ru", z, "zip"), tmp_path / "s")
    assert not p.problems and "student files found under Домашнее задание 1/" in p.notes, p.notes


def test_a_notebook_in_a_student_folder_is_timed_by_that_folder(tmp_path):
    """``--submission-times mtime`` looks at the entry given (``alice/``), not at the notebook's name
    beside the other entries: a folder holding only a late notebook is late."""
    import csv as _csv

    from grader.cli import main

    batch = tmp_path / "subs"
    (batch / "alice").mkdir(parents=True)
    (batch / "alice" / "HW1.ipynb").write_bytes(_nb_bytes())
    make_submission(batch / "bob")
    late = 1_700_000_000 + 3 * 86400  # three days after the deadline below
    for p in [batch / "alice", batch / "alice" / "HW1.ipynb"]:
        os.utime(p, (late, late))
    for p in [batch / "bob", *(batch / "bob").rglob("*")]:
        os.utime(p, (1_700_000_000 - 60, 1_700_000_000 - 60))
    rubric = tmp_path / "r.toml"
    rubric.write_text((ROOT / "grader/scoring/default_rubric.toml").read_text()
                      + '\n[late]\ndeadline = 2023-11-14T22:13:20Z\nper_day = 10\ncap = 50\n')
    out = tmp_path / "out"
    assert main(["grade", str(batch), "--out", str(out), "--no-mnist", "--jobs", "1", "--quiet",
                 "--rubric", str(rubric), "--submission-times", "mtime"]) == 0
    rows = {r["student"]: r for r in _csv.DictReader((out / "gradebook.csv").open(encoding="utf-8"))}
    assert float(rows["alice"]["late_penalty"]) == 19.5 and float(rows["bob"]["late_penalty"]) == 0  # 3 days: 30 %


def test_an_archive_holding_only_a_notebook_is_that_notebook(tmp_path):
    """Platforms that take only archives: hw1.zip holding HW1.ipynb (beside checkpoints and debris)."""
    nb = _nb_bytes()
    z = _zip(tmp_path / "alice.zip", {"hw1/HW1.ipynb": nb, "hw1/.ipynb_checkpoints/HW1-checkpoint.ipynb": nb,
                                      "__MACOSX/hw1/._HW1.ipynb": b"\x00", "hw1/plot.png": b"\x89PNG"})
    p = _prep(tmp_path / "a", z, "zip")
    assert not p.problems and any("graded the notebook hw1/HW1.ipynb" in n for n in p.notes), p.notes
    assert "class Linear" in (p.package_dir / "layers.py").read_text()
    t = _tar(tmp_path / "bob.tar.gz", {"HW1.ipynb": nb})
    assert not _prep(tmp_path / "b", t, "tar").problems
    two = _zip(tmp_path / "carol.zip", {"a.ipynb": nb, "b.ipynb": nb})  # negative control: which one?
    with pytest.raises(IntakeError, match="holds no"):
        _prep(tmp_path / "c", two, "zip")
    both = _zip(tmp_path / "dan.zip", {**{f"assignment/{n}": b for n, b in SRC.items()}, "HW1.ipynb": b"{}"})
    p = _prep(tmp_path / "d", both, "zip")  # the files win: the notebook beside them is not read
    assert not p.problems and not any("graded the notebook" in n for n in p.notes)
