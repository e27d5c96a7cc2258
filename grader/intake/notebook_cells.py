"""One notebook cell: parsed (IPython syntax set aside), its top-level statements sorted into kept and
dropped, and its kept code laid out at its own line numbers (see notebook.py)."""
from __future__ import annotations

import __future__ as future_features
import ast
import re
from dataclasses import dataclass, field

from ..spec import current_spec



# From the current assignment spec (grader/spec.py), read at each use:
def graded() -> dict[str, tuple[str, ...]]:
    """Student file -> the classes graded in it."""
    return current_spec().classes_of_file


def student_names() -> frozenset[str]:
    """Every class the student writes."""
    return frozenset(current_spec().component_ids)


def student_modules() -> frozenset[str]:
    """The student modules, without ``.py``."""
    return frozenset(f.removesuffix(".py") for f in current_spec().student_files)


def provided_names() -> frozenset[str]:
    """The names the provided files export (never the notebook's own)."""
    return frozenset(current_spec().provided_names)

PYTHON_CELL_MAGICS = {"time", "timeit", "capture", "prun", "debug"}  # their body is Python: it is kept

# IPython syntax that is not Python. Help is only ``obj?``, ``obj??`` or ``?obj`` on a line of its own:
# a broader rule ("any line ending in ?") also blanked lines such as a docstring's ``"""Is this right?``.
# ``files = !ls`` and ``t = %timeit -o f()`` assign shell or magic output.
_HELP = re.compile(r"^(\?{1,2}[\w.]+|[\w.]+(\(\))?\?{1,2})$")
_MAGIC_ASSIGN = re.compile(r"^[\w.]+(\s*,\s*[\w.]+)*\s*=\s*[!%]")
CELL_MAGIC = re.compile(r"\s*%%(\w*)")  #: a cell magic (``%%time``) and its name


def printable(text: str, limit: int = 80) -> str:
    """``text`` stripped, its unprintable characters as ``?``, cut to ``limit`` (for messages)."""
    text = "".join(ch if ch.isprintable() else "?" for ch in text.strip())
    return text if len(text) <= limit else text[:limit - 3] + "..."


@dataclass
class Cell:
    number: int                        #: 1-based position in the notebook, markdown cells counted
    source: str
    lines: list[str] = field(default_factory=list)
    tree: ast.Module | None = None
    error: tuple[str, int, int, str] | None = None  #: why it does not parse: message, line, column, text
    kept: dict[int, str] = field(default_factory=dict)  #: index in tree.body -> "hard", "pure" or "soft"
    replaced: dict[int, ast.stmt] = field(default_factory=dict)  #: index -> filtered import(s)
    futures: int = 0
    dropped: int = 0
    original: str = ""                 #: the source as the student sees it (labels name its first line)
    names: set[str] | None = None      #: what the kept statements bind (cached once they are final)
    imports_only: bool = False         #: an untagged cell beside tagged ones: only its imports are kept

    def node(self, i: int) -> ast.stmt:
        return self.replaced.get(i) or self.tree.body[i]

    def bound(self) -> set[str]:
        if self.names is None:
            self.names = {n for i in self.kept for n in bound_names(self.node(i))}
        return self.names

    @property
    def first_line(self) -> str:
        return printable(next((ln for ln in (self.original or self.source).split("\n") if ln.strip()), ""), 60)

    @property
    def label(self) -> str:
        return f"cell {self.number} ('{self.first_line}')"


def _strip_magics(src: str) -> str:
    out = []
    for line in src.split("\n"):
        s = line.strip()
        out.append("" if s.startswith(("%", "!")) or _HELP.match(s) or _MAGIC_ASSIGN.match(s) else line)
    return "\n".join(out)  # same line count: line numbers are kept


def parse_cell(cell: Cell) -> None:
    """Parse ``cell.source`` into ``cell.tree`` (a cell magic's body as Python where it is Python)."""
    src = cell.source
    magic = CELL_MAGIC.match(src)
    if magic:
        first, _, rest = src.partition("\n")
        src = "\n" + rest  # the %%time line itself becomes blank
    try:
        cell.tree = ast.parse(src)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        src = _strip_magics(src)
        try:
            cell.tree = ast.parse(src)
        except SyntaxError as exc:
            cell.error = (exc.msg or "invalid syntax", exc.lineno or 1, exc.offset or 0, (exc.text or "").rstrip("\n"))
        except (ValueError, MemoryError, RecursionError) as exc:  # NUL bytes; expressions nested too deep
            cell.error = ("it is nested too deeply to parse" if not isinstance(exc, ValueError)
                          else printable(str(exc), 100), 1, 0, "")
    cell.source = src
    cell.lines = src.split("\n")


def _constant(node: ast.AST, modules: frozenset = frozenset()) -> bool:
    """A literal, or arithmetic on literals, or an attribute of an imported module (``np.float64``)."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return all(_constant(e, modules) for e in node.elts)
    if isinstance(node, ast.Dict):
        return (all(k is None or _constant(k, modules) for k in node.keys)
                and all(_constant(v, modules) for v in node.values))
    if isinstance(node, ast.UnaryOp):
        return _constant(node.operand, modules)
    if isinstance(node, ast.BinOp):
        return _constant(node.left, modules) and _constant(node.right, modules)
    if isinstance(node, ast.Attribute):  # not ``data.X_train``: that is a value computed by a dropped statement
        return (isinstance(node.value, ast.Name) and node.value.id in modules) or (
            isinstance(node.value, ast.Attribute) and _constant(node.value, modules))
    return False


def assigned_names(node: ast.stmt) -> list[str] | None:
    """The names a plain assignment binds, or None if it is not one."""
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, ast.AnnAssign) and node.value is not None:
        targets = [node.target]
    else:
        return None
    names = []
    for t in targets:
        elts = t.elts if isinstance(t, (ast.Tuple, ast.List)) else [t]
        if not all(isinstance(e, ast.Name) for e in elts):
            return None
        names += [e.id for e in elts]
    return names


def _simple_import_block(body: list[ast.stmt], modules: frozenset) -> bool:
    ok = (ast.Import, ast.ImportFrom, ast.Pass, ast.FunctionDef, ast.ClassDef)
    return all(isinstance(s, ok) or (assigned_names(s) is not None and _safe_value(s.value, modules))
               or (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)) for s in body)


def _safe_value(node: ast.AST, modules: frozenset) -> bool:
    return isinstance(node, (ast.Name, ast.Lambda, ast.Attribute)) or _constant(node, modules)


def _is_grader(node: ast.stmt) -> bool:
    if isinstance(node, ast.Import):
        return all(a.name.partition(".")[0] == "grader" for a in node.names)
    return isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").partition(".")[0] == "grader"


def _classify(node: ast.stmt, modules: frozenset) -> str | None:
    """Why a top-level statement is kept on its own merits (else None): ``pure`` when running it has no
    effect but binding a name (a constant, a ``def`` without decorators or computed defaults), so that
    the module may compile many together; ``hard`` for other definitions and imports; ``soft`` for a
    ``try`` block of imports."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.decorator_list:
        defaults = node.args.defaults + [d for d in node.args.kw_defaults if d is not None]
        try:
            return "pure" if all(_constant(d, modules) for d in defaults) else "hard"
        except RecursionError:
            return "hard"
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)):
        return "hard"
    if assigned_names(node) is not None:
        try:
            return "pure" if _constant(node.value, modules) else None
        except RecursionError:  # nested too deep to inspect: not a plain constant
            return None
    if isinstance(node, ast.Try) and not node.finalbody:
        blocks = [node.body, node.orelse] + [h.body for h in node.handlers]
        if any(isinstance(s, (ast.Import, ast.ImportFrom)) for s in node.body) \
                and all(_simple_import_block(b, modules) for b in blocks):
            return "soft"
    return None


def _futures(node: ast.stmt) -> int | None:
    if not (isinstance(node, ast.ImportFrom) and node.module == "__future__"):
        return None
    flags = 0
    for a in node.names:
        feature = getattr(future_features, a.name, None)
        flags |= getattr(feature, "compiler_flag", 0)
    return flags


def reduce_cell(cell: Cell, modules: frozenset) -> None:
    """Mark the statements of ``cell`` that grading keeps (definitions, safe constants, futures)."""
    for i, node in enumerate(cell.tree.body):
        flags = _futures(node)
        if flags is not None:  # hoisted: applied to every cell when it is compiled
            cell.futures |= flags
            continue
        if _is_grader(node):
            continue  # ``from grader.student import check``: checks run by the grader, not by the module
        kind = _classify(node, modules)
        if cell.imports_only:  # nothing else of an untagged cell counts, nor is it reported as dropped
            if kind and (isinstance(node, (ast.Import, ast.ImportFrom)) or kind == "soft"):
                cell.kept[i] = kind
            continue
        if kind:
            cell.kept[i] = kind
        elif not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
            cell.dropped += 1


def _assignment_module(node: ast.ImportFrom) -> str | None:
    """For ``from assignment[.x] import ...``, ``from .x import ...`` or ``from layers import ...``: x."""
    mod = node.module or ""
    if node.level:
        return mod or "assignment"
    if mod == "assignment":
        return "assignment"
    if mod.startswith("assignment."):
        return mod.split(".", 1)[1]
    return mod if mod in student_modules() else None


SKELETON = "_skeleton_"  #: the skeleton's student files sit in the package under this prefix (intake/extract.py)


def _skeleton_module(target: str, name: str) -> str | None:
    """Where the skeleton's class ``name`` imported from ``target`` lives in the graded package."""
    module = target if target in student_modules() else current_spec().student_modules.get(name)
    return f"assignment.{SKELETON}{module}" if module else None


def filter_assignment_import(cell: Cell, i: int, node: ast.ImportFrom, own: set[str],
                             rebased: frozenset[str] = frozenset()) -> None:
    """The setup cell as in Jupyter: helpers from the trusted package, the notebook's names its own.

    A skeleton class imported under another name (``from assignment.layers import Linear as Base``,
    for ``class Linear(Base)``), or one the notebook's class of the same name derives from
    (``rebased``: ``class Linear(Linear)``), is the skeleton's, as in the student's kernel: it is
    imported from the skeleton's copy, since the package's own ``layers`` is the notebook itself."""
    target = _assignment_module(node)
    if target is None:
        return
    keep, skeleton = [], []
    for a in node.names:
        bound = a.asname or a.name
        if a.name == "*" or (a.name not in student_names() and bound not in own
                             and (target not in student_modules() or a.name in provided_names())):
            keep.append(a)
        elif a.name in student_names() and ((bound != a.name and bound not in own) or bound in rebased):
            module = _skeleton_module(target, a.name)
            if module:
                skeleton.append(ast.ImportFrom(module=module, names=[a], level=0))
    if len(keep) == len(node.names):
        return
    if not keep and not skeleton:
        del cell.kept[i]
        return
    if not keep:
        new = []
    elif target in student_modules():  # ``from .layers import Module``: the provided name, not the notebook itself
        new = [ast.ImportFrom(module="assignment", names=keep, level=0)]
    else:
        new = [ast.ImportFrom(module=node.module, names=keep, level=node.level)]
    body = new + skeleton
    cell.replaced[i] = body[0] if len(body) == 1 else ast.Module(body=body, type_ignores=[])


def redirect_skeleton_import(cell: Cell, i: int, node: ast.Import) -> None:
    """``import assignment.layers as skel``: the skeleton's module, as in the student's kernel."""
    names = [ast.alias(f"assignment.{SKELETON}{a.name.split('.', 1)[1]}", a.asname)
             if a.asname and a.name.startswith("assignment.") and a.name.split(".", 1)[1] in student_modules()
             else a for a in node.names]
    if any(a is not b for a, b in zip(names, node.names)):
        cell.replaced[i] = ast.Import(names=names)


def bound_names(node: ast.stmt) -> list[str]:
    """The names a top-level statement binds in the notebook's namespace (defs, imports, assignments)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return [(a.asname or a.name).partition(".")[0] for a in node.names if a.name != "*"]
    if isinstance(node, ast.Try):
        return [n for s in node.body + [s for h in node.handlers for s in h.body] for n in bound_names(s)]
    if isinstance(node, ast.Module):  # an import split in two by filter_assignment_import
        return [n for s in node.body for n in bound_names(s)]
    return assigned_names(node) or []


def _span(node: ast.stmt) -> tuple[int, int, int, int]:
    """First line, first column, last line, end column (columns in UTF-8 bytes, as ast counts them)."""
    decorators = getattr(node, "decorator_list", None)
    if decorators:
        return min(d.lineno for d in decorators), 0, node.end_lineno, node.end_col_offset
    return node.lineno, node.col_offset, node.end_lineno, node.end_col_offset


def _cut(line: str, start: int, end: int | None) -> str:
    if line.isascii():
        return line[start:end]
    return line.encode("utf-8")[start:end].decode("utf-8", "replace")


def cell_text(cell: Cell) -> str:
    """The cell's kept statements at their own lines (everything else blank): linear in the cell."""
    out = [""] * len(cell.lines)
    for i in sorted(cell.kept):
        node = cell.tree.body[i]
        sl, sc, el, ec = _span(node)
        sl, el = sl - 1, el - 1
        if i in cell.replaced:
            rep = cell.replaced[i]
            frags = [(sl, "; ".join(map(ast.unparse, rep.body if isinstance(rep, ast.Module) else [rep])))]
        elif sl == el:
            frags = [(sl, _cut(cell.lines[sl], sc, ec))]
        else:
            frags = [(sl, _cut(cell.lines[sl], sc, None))] + [(n, cell.lines[n]) for n in range(sl + 1, el)]
            frags.append((el, _cut(cell.lines[el], 0, ec)))
        for n, text in frags:
            out[n] = f"{out[n]}; {text}" if out[n] and n == sl else (out[n] + text if n == sl else text)
    return "\n".join(out)
