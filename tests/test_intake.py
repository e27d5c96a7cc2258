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
    assert sorted(f.name for f in p.package_dir.iterdir()) == ["gradcheck.py", "layers.py", "logistic_regression.py", "module.py"]
    assert "SystemExit" not in (p.package_dir / "module.py").read_text()


def test_symlinked_student_file_is_refused(tmp_path):
    sub = make_submission(tmp_path / "s")
    (sub / "layers.py").unlink()
    os.symlink(ROOT / "solutions" / "layers.py", sub / "layers.py")
    p = _prep(tmp_path, sub, "dir")
    assert "symbolic link" in p.problems["layers.py"]
    assert "raise ImportError" in (p.package_dir / "layers.py").read_text()


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
