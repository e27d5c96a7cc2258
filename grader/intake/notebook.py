"""A notebook submission: the code its cells define, as the two student modules (CONTRACT.md section 2).

Reading is bounded by what is graded, not by what the notebook stores: outputs (plots, embedded
images) are dropped while the JSON is parsed, never decoded (a file over 8 MB is parsed in a helper
process under a memory limit, see notebook_json.py), and the limits apply to the code of the cells
used. Every step is linear in that code.

The reduction keeps, from each cell used (the ``solution``-tagged ones, or all code cells): imports
(but not of the grader itself), ``def`` and ``class`` statements with their decorators, constant
assignments, ``try`` blocks of imports (``try: import tqdm ... except ImportError: ...``), and an
assignment such as ``EPS = np.finfo(float).eps`` when kept code reads that name. Everything else
(calls, loops, ``if __name__ == "__main__":``, magics, shell lines, ``obj?``) is dropped. A cell that
does not parse is not used, as Jupyter would not run it; if a class the grader needs is only there,
importing the module reports that cell's error. The course's setup cell (``from assignment import
Linear, ..., check_gradient``) keeps its provided helpers; the names the notebook defines itself are
its own. The module runs each kept cell under its own name (:data:`RUNNER`), so that a traceback says
``cell 7, line 3``.
"""
from __future__ import annotations

import ast
import gc
import json
import os
import re
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from . import notebook_json, notebook_runner  # both imported so that every copy of the grader ships them
from .notebook_json import IN_PROCESS_BYTES, cells_of, slim
from .notebook_cells import (CELL_MAGIC, PYTHON_CELL_MAGICS, Cell, bound_names, cell_text, filter_assignment_import,
                             graded, parse_cell, printable, redirect_skeleton_import, reduce_cell, student_names)
from .notebook_deps import keep_attachments, keep_dependencies

MAX_NOTEBOOK_BYTES = 256 << 20   #: the file, outputs included: read once, outputs dropped while parsing
MAX_CODE_BYTES = 512 << 10       #: the source of the code cells used (a .py file may hold as much)
MAX_CODE_CELLS = 10_000
READ_TIMEOUT_S = 60
MAX_MODULE_BYTES = 1 << 20       #: the reduced module written for grading
_CLASS_LINE = re.compile(r"^[ \t]*class[ \t]+(\w+)", re.M)


class NotebookError(ValueError):
    """The notebook as a whole cannot be graded; the message says why."""


# --- reading ---------------------------------------------------------------------------------------

def load_cells(raw: bytes, name: str) -> list[dict]:
    """The notebook's cells (code and others), without outputs, parsed in this process."""
    if len(raw) > MAX_NOTEBOOK_BYTES:
        raise NotebookError(f"{name} is {len(raw)} bytes, over the limit of {MAX_NOTEBOOK_BYTES}")
    try:
        return slim(cells_of(raw), MAX_CODE_BYTES)
    except ValueError as exc:  # JSONDecodeError is one
        raise NotebookError(f"{name} is not a valid Jupyter notebook: {printable(str(exc), 200)}") from None


def _load_cells_bounded(fd: int, size: int, name: str) -> list[dict]:
    """A big notebook is parsed in a helper process with an address-space limit and a timeout; it reads
    the file this process opened and checked (``size`` bytes at most), not a path that could change."""
    memory = min(4 * size + (512 << 20), 3 << 30)  # plots need about twice their size, printed lines more
    cmd = [sys.executable, "-I", "-S", notebook_json.__file__, str(fd), str(size), str(MAX_CODE_BYTES), str(memory)]
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=READ_TIMEOUT_S, stdin=subprocess.DEVNULL,
                              pass_fds=(fd,))
        reply = json.loads(done.stdout) if done.returncode == 0 else {"error": f"the reader stopped ({done.returncode})"}
    except subprocess.TimeoutExpired:
        reply = {"error": f"reading it took more than {READ_TIMEOUT_S} s"}
    except ValueError:
        reply = {"error": "the reader's reply was not readable"}
    if "error" in reply:
        raise NotebookError(f"{name} is not a valid Jupyter notebook: {printable(str(reply['error']), 300)}")
    return reply["cells"]


def _source(cell: dict) -> str | None:
    src = cell.get("source", cell.get("input", ""))
    if isinstance(src, list) and all(isinstance(s, str) for s in src):
        src = "".join(src)
    if not isinstance(src, str):
        return None
    return src.replace("\r\n", "\n").replace("\r", "\n")  # line numbers as the parser counts them


def _tags(cell: dict) -> list:
    meta = cell.get("metadata")
    tags = meta.get("tags") if isinstance(meta, dict) else None
    return tags if isinstance(tags, list) else []


# --- the notebook as a whole ------------------------------------------------------------------------


@dataclass
class Reduced:
    cells: list[Cell]
    texts: dict[int, str]        #: cell number -> kept code
    futures: int
    notes: list[str]

    def module(self, filename: str, notebook: str) -> str:
        classes = graded()[filename]
        entries = []
        for c in self.cells:
            if c.number in self.texts:
                defines = sorted(c.bound() & student_names())
                plain = sorted(c.tree.body[i].lineno for i, kind in c.kept.items() if kind == "pure")
                entries.append((c.number, self.texts[c.number], tuple(defines), tuple(plain)))
        broken = [(c.number, c.label, c.error, tuple(sorted(set(_CLASS_LINE.findall(c.source)) & student_names())))
                  for c in self.cells if c.error]
        return (f"# {filename} made by the grader from the notebook {notebook!r}: the imports, definitions and\n"
                "# constants of its code cells (CONTRACT.md section 2). Each cell runs under its own name,\n"
                "# so that a traceback says 'cell 7, line 3' (the runner is grader/intake/notebook_runner.py).\n"
                "import numpy as np  # before any cell: solution cells may rely on a setup cell not graded\n"
                f"__grader_cells__ = {entries!r}\n__grader_broken__ = {broken!r}\n"
                f"__grader_futures__ = {self.futures!r}\n__grader_graded__ = {classes!r}\n"
                f"exec(compile({RUNNER!r}, '<grader: notebook runner>', 'exec'), globals())\n"
                "__grader_run__(globals())\ndel __grader_run__\n")


def reduce_notebook(raw: bytes | list[dict], name: str) -> Reduced:
    """Parse and reduce a notebook's code cells (from its bytes, or its cells as read by
    :func:`load_cells`); raises :class:`NotebookError` if it cannot be graded."""
    enabled = gc.isenabled()
    gc.disable()  # the trees hold no cycles; the collector running over them doubles the time of a big cell
    try:
        return _reduce_notebook(raw, name)
    finally:
        if enabled:
            gc.enable()


def _used_cells(all_cells: list[dict], name: str) -> tuple[list[Cell], list[str], list]:
    """The cells graded (tagged ``solution``, or all code cells), within the limits, parsed; the notes;
    the code cells left out (when some are tagged)."""
    code = [(n, c) for n, c in enumerate(all_cells, 1) if c.get("cell_type") == "code"]
    tagged = [(n, c) for n, c in code if "solution" in _tags(c)]
    used = tagged or code
    notes = [f"{len(tagged)} code cell(s) tagged 'solution' were used" if tagged else
             f"no cell is tagged 'solution': all {len(code)} code cells were used"]
    if len(used) > MAX_CODE_CELLS:
        raise NotebookError(f"{name} has {len(used)} code cells, over the limit of {MAX_CODE_CELLS}")
    cells, size = [], 0
    for n, c in used:
        src = _source(c)
        if src is None:
            notes.append(f"cell {n}: its source is not text; it was not used")
            continue
        size += len(src)
        if size > MAX_CODE_BYTES:
            raise NotebookError(f"{name}: its code cells hold more than {MAX_CODE_BYTES} characters of code, over the "
                                "limit (outputs and markdown do not count)")
        cells.append(Cell(n, src, original=src))
    left_out = [(n, c) for n, c in code if "solution" not in _tags(c)] if tagged else []
    cells = sorted(cells + _import_cells(left_out), key=lambda c: c.number)
    for cell in cells:
        magic = CELL_MAGIC.match(cell.source)
        if magic and magic.group(1) not in PYTHON_CELL_MAGICS:
            # %%bash, %%writefile, %%html ...: the body is not Python; a top-level action, dropped like one.
            if not cell.imports_only:
                notes.append(f"cell {cell.number}: a %%{magic.group(1)} cell (not Python) was not used")
            continue
        parse_cell(cell)
    if any(c.imports_only for c in cells):
        notes.append("the imports of the untagged cells were used too (the tagged cells run after them in Jupyter)")
    return [c for c in cells if c.tree is not None or (c.error and not c.imports_only)], notes, left_out


def _import_cells(left_out: list) -> list[Cell]:
    """The untagged cells, of which only the imports are kept: the setup cell the tagged classes rely
    on (``import numpy as np``, ``from assignment.module import Module``) ran before them in Jupyter."""
    out, size = [], 0
    for n, c in left_out:
        src = _source(c)
        if src is None or size + len(src) > MAX_CODE_BYTES:
            continue
        size += len(src)
        out.append(Cell(n, src, original=src, imports_only=True))
    return out


def _reduce_notebook(raw: bytes | list[dict], name: str) -> Reduced:
    name = printable(name, 200)
    cells, notes, left_out = _used_cells(raw if isinstance(raw, list) else load_cells(raw, name), name)
    parsed = [c for c in cells if c.tree is not None]
    modules = frozenset(n for c in parsed for node in c.tree.body if isinstance(node, (ast.Import, ast.ImportFrom))
                        for n in bound_names(node))
    for c in parsed:
        reduce_cell(c, modules)
    own = {n for c in parsed for i in c.kept for n in bound_names(c.tree.body[i])
           if not isinstance(c.tree.body[i], (ast.Import, ast.ImportFrom))}
    rebased = frozenset(n.name for c in parsed for i in c.kept for n in [c.tree.body[i]] if isinstance(n, ast.ClassDef)
                        and any(isinstance(b, ast.Name) and b.id == n.name for b in n.bases))  # class Linear(Linear)
    for c in parsed:
        for i in list(c.kept):
            if isinstance(c.tree.body[i], ast.ImportFrom):
                filter_assignment_import(c, i, c.tree.body[i], own, rebased)
            elif isinstance(c.tree.body[i], ast.Import):
                redirect_skeleton_import(c, i, c.tree.body[i])
    keep_attachments(parsed, own)
    defined = set().union(*(c.bound() for c in parsed))
    deps = keep_dependencies(parsed, defined, own)
    for c in parsed:
        c.names = None
    texts = {c.number: cell_text(c) for c in parsed if c.kept}
    if deps:
        notes.append("kept because the code reads them: " + ", ".join(deps[:8]) + (" ..." if len(deps) > 8 else ""))
    notes += _broken_notes(cells, defined, left_out)
    dropped = [c.number for c in parsed if c.dropped]
    if dropped:
        shown = ", ".join(map(str, dropped[:12])) + (" ..." if len(dropped) > 12 else "")
        notes.append(f"statements other than imports, definitions and constants were not run (cells {shown})")
    futures = 0
    for c in parsed:
        futures |= c.futures
    return Reduced(cells, texts, futures, notes)


def _broken_notes(cells: list[Cell], defined: set[str], untagged: list) -> list[str]:
    notes = []
    for c in cells:
        if not c.error:
            continue
        msg, line, _, _ = c.error
        names = sorted(set(_CLASS_LINE.findall(c.source)) & student_names())
        text = f"{c.label} does not parse ({msg}, at its line {line}), so it was not used (Jupyter could not run it either)"
        lost = [n for n in names if n not in defined]
        if lost:
            text += f"; {', '.join(lost)} {'is' if len(lost) == 1 else 'are'} defined only there, so not graded"
        elif names:
            text += f"; {', '.join(names)} from another cell {'was' if len(names) == 1 else 'were'} graded instead"
        notes.append(text)
    for c in cells:
        if c.tree is not None:
            for name in sorted(set(_CLASS_LINE.findall(c.source)) & student_names() - defined):
                notes.append(f"{name} appears in {c.label} only inside a statement that is not run (an if, for or "
                             "with block): define it at the top level of a cell")
    for n, c in untagged or []:
        src = _source(c) or ""
        for name in sorted(set(_CLASS_LINE.findall(src)) & student_names() - defined):
            notes.append(f"{name} is defined in cell {n}, which is not tagged 'solution': only tagged cells are graded")
    return notes


_WRITEFILE = re.compile(r"%%writefile(?P<append>\s+(?:-a|--append))?\s+(?P<q>[\"']?)(?P<path>.+?)(?P=q)\s*$")


def written_files(cells: list[dict]) -> tuple[dict[str, str], list[str], set[int]]:
    """The student files a notebook writes with ``%%writefile [-a] path/layers.py`` cells, as the
    student's kernel wrote them (the cells used: the tagged ones, or all), notes saying so, and the
    numbers of those cells."""
    code = [(n, c) for n, c in enumerate(cells, 1) if isinstance(c, dict) and c.get("cell_type") == "code"]
    used = [(n, c) for n, c in code if "solution" in _tags(c)] or code
    files: dict[str, str] = {}
    where: dict[str, list[int]] = {}
    for n, c in used:
        src = _source(c) or ""
        first, _, body = src.lstrip().partition("\n")
        m = _WRITEFILE.match(first.strip())
        name = m and m.group("path").replace("\\", "/").rsplit("/", 1)[-1]
        if not m or name not in graded():
            continue
        files[name] = (files.get(name, "") if m.group("append") else "") + body
        where[name] = (where.get(name, []) if m.group("append") else []) + [n]
    notes = [f"{f} is what the notebook writes with %%writefile (cell {', '.join(map(str, where[f]))}), as in Jupyter"
             for f in files]
    return files, notes, {n for ns in where.values() for n in ns}


def notebook_modules(raw: bytes | list[dict], name: str) -> tuple[dict[str, str], list[str]]:
    """``{"layers.py": source, "logistic_regression.py": source}`` and notes for the feedback. A student
    file the notebook writes with ``%%writefile`` is that cell's text (a notebook that writes both runs
    nothing else: the reduction below is then only what the other cells define)."""
    cells = raw if isinstance(raw, list) else load_cells(raw, printable(name, 200))
    written, written_notes, writers = written_files(cells)
    reduced = reduce_notebook(cells, name)
    files = {f: written.get(f) or reduced.module(f, printable(name, 200)) for f in graded()}
    reduced.notes[:] = written_notes + [n for n in reduced.notes
                                        if not any(n.startswith(f"cell {k}: a %%writefile ") for k in writers)]
    size = max(len(s.encode("utf-8", "surrogatepass")) for s in files.values())
    if size > MAX_MODULE_BYTES:
        raise NotebookError(f"{printable(name, 200)}: the code kept from its cells is {size} bytes, over the limit of "
                            f"{MAX_MODULE_BYTES}")
    return files, reduced.notes


def notebook_source(raw: bytes, name: str) -> tuple[str, list[str]]:
    """The module made of a notebook's cells (the first student file's) and the notes."""
    files, notes = notebook_modules(raw, name)
    return next(iter(files.values())), notes


def read_notebook(path: Path) -> tuple[dict[str, str], list[str]]:
    name = printable(path.name, 200)
    try:  # size first, of what was opened, and a bounded read: a huge (or sparse) file is not loaded
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise NotebookError(f"{name} is not a regular file")
            if st.st_size > MAX_NOTEBOOK_BYTES:
                raise NotebookError(f"{name} is {st.st_size} bytes, over the limit of {MAX_NOTEBOOK_BYTES}")
            if st.st_size > IN_PROCESS_BYTES:
                cells = _load_cells_bounded(fh.fileno(), st.st_size, name)
            else:
                cells = load_cells(fh.read(st.st_size + 1), name)  # not read(MAX): that reserves MAX bytes
    except OSError as exc:
        raise NotebookError(f"{name} could not be read ({exc.strerror or exc})") from None
    return notebook_modules(cells, path.name)


RUNNER = Path(notebook_runner.__file__).read_text(encoding="utf-8").split("# --- runner ---\n", 1)[1]
