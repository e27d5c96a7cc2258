"""Copying a submission's two student files, safely, into a scratch package folder."""
from __future__ import annotations

import ast
import hashlib
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .archives import MAX_FILE_BYTES, IntakeError, listing  # noqa: F401  (re-exported)
from .discover import STUDENT_FILES, Submission, shown
from .locate import decode_source as _decode, read_student_files

MAX_NOTEBOOK_BYTES = 20 * 1024 * 1024
PROVIDED = ("module.py", "gradcheck.py")


@dataclass
class Prepared:
    package_dir: Path
    digest: str                                       #: sha256 over the student files' bytes
    problems: dict[str, str] = field(default_factory=dict)  #: file -> why it is missing or refused
    notes: list[str] = field(default_factory=list)


def _trusted_dir() -> Path:
    import assignment  # the installed, instructor's copy: provided files are identical in it

    return Path(assignment.__file__).resolve().parent


def _from_container(path: Path, kind: str) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """A folder, .zip or tar archive: listed (never extracted), the two student files located and read."""
    return read_student_files(listing(path, kind))


# --- notebooks -------------------------------------------------------------------------------------

def _constant_expr(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return all(_constant_expr(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(k is None or _constant_expr(k) for k in node.keys) and all(_constant_expr(v) for v in node.values)
    if isinstance(node, ast.UnaryOp):
        return _constant_expr(node.operand)
    if isinstance(node, ast.BinOp):
        return _constant_expr(node.left) and _constant_expr(node.right)
    if isinstance(node, ast.Attribute):  # np.float64 and the like
        return isinstance(node.value, ast.Name) or (isinstance(node.value, ast.Attribute) and _constant_expr(node.value))
    return False


def _keep(node: ast.stmt) -> bool:
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return True
    if isinstance(node, ast.Assign):
        return all(isinstance(t, ast.Name) for t in node.targets) and _constant_expr(node.value)
    if isinstance(node, ast.AnnAssign):
        return isinstance(node.target, ast.Name) and node.value is not None and _constant_expr(node.value)
    return False


# IPython syntax that is not Python. Help is only ``obj?``, ``obj??`` or ``?obj`` on a line of its own:
# a broader rule ("any line ending in ?") also blanked lines such as a docstring's ``"""Is this right?``
# and broke the student's whole module. ``files = !ls`` and ``t = %timeit -o f()`` assign shell or
# magic output.
_HELP = re.compile(r"^(\?{1,2}[\w.]+|[\w.]+(\(\))?\?{1,2})$")
_MAGIC_ASSIGN = re.compile(r"^[\w.]+(\s*,\s*[\w.]+)*\s*=\s*[!%]")
_CELL_MAGIC = re.compile(r"\s*%%(\w*)")
PYTHON_CELL_MAGICS = {"time", "timeit", "capture", "prun", "debug"}  # their body is Python: it is kept


def _strip_magics(src: str) -> str:
    lines = []
    for line in src.splitlines():
        s = line.strip()
        if s.startswith(("%", "!")) or _HELP.match(s) or _MAGIC_ASSIGN.match(s):
            lines.append("")  # keep line numbers
        else:
            lines.append(line)
    return "\n".join(lines)


def _keep_node(node: ast.stmt) -> bool:
    try:
        return _keep(node)
    except RecursionError:  # a constant expression nested too deep to inspect is not a plain constant
        return False


def notebook_source(raw: bytes, name: str) -> tuple[str, list[str]]:
    """The module source made of a notebook's solution cells (see CONTRACT.md section 2)."""
    import nbformat

    name = shown(name)
    if len(raw) > MAX_NOTEBOOK_BYTES:
        raise IntakeError(f"{name} is {len(raw)} bytes, over the limit of {MAX_NOTEBOOK_BYTES}")
    try:
        nb = nbformat.reads(raw.decode("utf-8-sig"), as_version=4)
    except UnicodeDecodeError:
        raise IntakeError(f"{name} is not UTF-8 text, so it is not a notebook") from None
    except Exception as exc:  # nbformat raises several types for non-JSON / non-notebook input
        first = (str(exc).splitlines() or [""])[0]
        raise IntakeError(f"{name} is not a valid Jupyter notebook: {shown(first)[:200]}") from None
    cells = [c for c in nb.get("cells", []) if c.get("cell_type") == "code"]
    tagged = [c for c in cells if "solution" in (c.get("metadata", {}).get("tags") or [])]
    notes = [f"{len(tagged)} code cell(s) tagged 'solution' were used" if tagged else
             f"no cell is tagged 'solution': all {len(cells)} code cells were used"]
    chunks = []
    for i, cell in enumerate(tagged or cells):
        src = cell.get("source", "")
        src = "".join(src) if isinstance(src, list) else str(src)
        magic = _CELL_MAGIC.match(src)
        if magic and magic.group(1) not in PYTHON_CELL_MAGICS:
            # %%bash, %%writefile, %%html ...: the body is not Python. Kept, it would be a syntax error
            # that costs the whole notebook; it is a top-level action, so it is dropped like one.
            notes.append(f"cell {i + 1}: a %%{magic.group(1)} cell (not Python) was dropped")
            continue
        src = _strip_magics(src)
        try:
            tree = ast.parse(src)
        except (SyntaxError, ValueError, MemoryError, RecursionError):  # the last two: expressions nested too deep
            # Kept whole, so that importing the module reports the student's syntax error.
            chunks.append(f"# --- notebook cell {i + 1} (has a syntax error) ---\n{src}\n")
            continue
        keep = [_keep_node(n) for n in tree.body]
        kept = [ast.get_source_segment(src, n) for n, k in zip(tree.body, keep) if k]
        dropped = keep.count(False)
        if kept:
            chunks.append(f"# --- notebook cell {i + 1} ---\n" + "\n\n".join(k for k in kept if k) + "\n")
        if dropped:
            notes.append(f"cell {i + 1}: {dropped} top-level statement(s) other than import/def/class/constants dropped")
    header = "from __future__ import annotations\n" if any("from __future__" in c for c in chunks) else ""
    body = "\n".join(chunks).replace("from __future__ import annotations\n", "")
    return header + "import numpy as np\n\n" + body, notes


def _from_notebook(path: Path) -> tuple[dict[str, str], dict[str, str], list[str]]:
    try:  # size first, and a bounded read: a huge (or sparse) file must not be loaded into memory
        size = path.stat().st_size
        if size > MAX_NOTEBOOK_BYTES:
            raise IntakeError(f"{shown(path.name)} is {size} bytes, over the limit of {MAX_NOTEBOOK_BYTES}")
        with open(path, "rb") as fh:
            raw = fh.read(MAX_NOTEBOOK_BYTES + 1)
    except OSError as exc:
        raise IntakeError(f"{shown(path.name)} could not be read ({exc.strerror or exc})") from None
    src, notes = notebook_source(raw, path.name)
    try:
        src = _decode("notebook code", src.encode())
    except ValueError as exc:
        raise IntakeError(str(exc)) from None
    return {name: src for name in STUDENT_FILES}, {}, notes


def prepare(sub: Submission, scratch_root: Path) -> Prepared:
    """Write ``scratch_root/assignment/`` with the trusted provided files and the student's files."""
    if sub.kind == "rejected":  # found by discover, not a submission: the reason says what and why
        raise IntakeError(sub.note)
    if sub.kind in ("dir", "zip", "tar"):
        files, problems, notes = _from_container(sub.path, sub.kind)
    else:
        files, problems, notes = _from_notebook(sub.path)
    pkg = scratch_root / "assignment"
    pkg.mkdir(parents=True)
    trusted = _trusted_dir()
    for name in PROVIDED:
        shutil.copyfile(trusted / name, pkg / name)
    h = hashlib.sha256()
    for name in STUDENT_FILES:
        if name in files:
            text = files[name]
        else:
            # Importing the stand-in reports the intake problem as the reason for every affected check.
            text = f"raise ImportError({problems[name]!r})\n"
        (pkg / name).write_text(text, encoding="utf-8")
        h.update(name.encode() + b"\x00" + text.encode() + b"\x00")
    if sub.note:
        notes.insert(0, sub.note)
    return Prepared(pkg, h.hexdigest(), problems, notes)
