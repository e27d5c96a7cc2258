"""A notebook submission: the code its cells define, as the two student modules (CONTRACT.md section 2).

Reading is bounded by what is graded, not by what the notebook stores: outputs (plots, embedded
images) are dropped while the JSON is parsed, never decoded, and the limits apply to the code of the
cells used. Every step is linear in that code.

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

import __future__ as future_features
import ast
import builtins
import gc
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

MAX_NOTEBOOK_BYTES = 256 << 20   #: the file, outputs included: read once, outputs dropped while parsing
MAX_CODE_BYTES = 1 << 20         #: the source of the code cells used (two .py files' worth)
MAX_CODE_CELLS = 10_000
MAX_MODULE_BYTES = 1 << 20       #: the reduced module written for grading
MAX_DEPENDENCIES = 200           #: assignments kept because kept code reads them
GRADED = {"layers.py": ("Linear", "ReLU", "LogSoftmax", "NLLLoss"), "logistic_regression.py": ("LogisticRegression",)}
STUDENT_NAMES = frozenset(n for names in GRADED.values() for n in names)
STUDENT_MODULES = frozenset({"layers", "logistic_regression"})
PROVIDED_NAMES = frozenset({"Module", "Sequential", "numerical_gradient", "rel_error", "check_gradient"})
PYTHON_CELL_MAGICS = {"time", "timeit", "capture", "prun", "debug"}  # their body is Python: it is kept

# IPython syntax that is not Python. Help is only ``obj?``, ``obj??`` or ``?obj`` on a line of its own:
# a broader rule ("any line ending in ?") also blanked lines such as a docstring's ``"""Is this right?``.
# ``files = !ls`` and ``t = %timeit -o f()`` assign shell or magic output.
_HELP = re.compile(r"^(\?{1,2}[\w.]+|[\w.]+(\(\))?\?{1,2})$")
_MAGIC_ASSIGN = re.compile(r"^[\w.]+(\s*,\s*[\w.]+)*\s*=\s*[!%]")
_CELL_MAGIC = re.compile(r"\s*%%(\w*)")
_CLASS_LINE = re.compile(r"^[ \t]*class[ \t]+(\w+)", re.M)


class NotebookError(ValueError):
    """The notebook as a whole cannot be graded; the message says why."""


def _shown(text: str, limit: int = 80) -> str:
    text = "".join(ch if ch.isprintable() else "?" for ch in text.strip())
    return text if len(text) <= limit else text[:limit - 3] + "..."


# --- reading ---------------------------------------------------------------------------------------

def _drop_outputs(pairs: list) -> dict:
    """``object_pairs_hook``: an output is dropped as soon as it is parsed, so at most one is held."""
    if any(k == "output_type" for k, _ in pairs):
        return {}
    return {k: v for k, v in pairs if k not in ("outputs", "attachments")}


def load_cells(raw: bytes, name: str) -> list[dict]:
    """The notebook's cells (code and others), without outputs."""
    if len(raw) > MAX_NOTEBOOK_BYTES:
        raise NotebookError(f"{name} is {len(raw)} bytes, over the limit of {MAX_NOTEBOOK_BYTES}")
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        nb = json.loads(raw, object_pairs_hook=_drop_outputs)
    except UnicodeDecodeError:
        raise NotebookError(f"{name} is not UTF-8 text, so it is not a notebook") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise NotebookError(f"{name} is not a valid Jupyter notebook: {_shown(str(exc), 200)}") from None
    if isinstance(nb, dict) and isinstance(nb.get("worksheets"), list):  # nbformat 3
        sheets = [w for w in nb["worksheets"] if isinstance(w, dict)]
        cells = [c for w in sheets for c in (w.get("cells") if isinstance(w.get("cells"), list) else [])]
    elif isinstance(nb, dict) and isinstance(nb.get("cells"), list):
        cells = nb["cells"]
    else:
        raise NotebookError(f"{name} is not a valid Jupyter notebook: it has no list of cells")
    return [c if isinstance(c, dict) else {} for c in cells]


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


# --- one cell ---------------------------------------------------------------------------------------

@dataclass
class Cell:
    number: int                        #: 1-based position in the notebook, markdown cells counted
    source: str
    lines: list[str] = field(default_factory=list)
    tree: ast.Module | None = None
    error: tuple[str, int, int, str] | None = None  #: why it does not parse: message, line, column, text
    kept: dict[int, str] = field(default_factory=dict)      #: index in tree.body -> "hard" / "soft"
    replaced: dict[int, ast.ImportFrom] = field(default_factory=dict)  #: index -> filtered import
    futures: int = 0
    dropped: int = 0
    _bound: set[str] | None = None  #: cached once the kept statements are final

    def node(self, i: int) -> ast.stmt:
        return self.replaced.get(i) or self.tree.body[i]

    def bound(self) -> set[str]:
        if self._bound is None:
            self._bound = {n for i in self.kept for n in _bound(self.node(i))}
        return self._bound

    @property
    def first_line(self) -> str:
        return _shown(next((ln for ln in self.source.split("\n") if ln.strip()), ""), 60)

    @property
    def label(self) -> str:
        return f"cell {self.number} ('{self.first_line}')"


def _strip_magics(src: str) -> str:
    out = []
    for line in src.split("\n"):
        s = line.strip()
        out.append("" if s.startswith(("%", "!")) or _HELP.match(s) or _MAGIC_ASSIGN.match(s) else line)
    return "\n".join(out)  # same line count: line numbers are kept


def _parse(cell: Cell) -> None:
    src = cell.source
    magic = _CELL_MAGIC.match(src)
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
                          else _shown(str(exc), 100), 1, 0, "")
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


def _targets(node: ast.stmt) -> list[str] | None:
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
    return all(isinstance(s, ok) or (_targets(s) is not None and _safe_value(s.value, modules))
               or (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)) for s in body)


def _safe_value(node: ast.AST, modules: frozenset) -> bool:
    return isinstance(node, (ast.Name, ast.Lambda, ast.Attribute)) or _constant(node, modules)


def _is_grader(node: ast.stmt) -> bool:
    if isinstance(node, ast.Import):
        return all(a.name.partition(".")[0] == "grader" for a in node.names)
    return isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").partition(".")[0] == "grader"


def _classify(node: ast.stmt, modules: frozenset) -> str | None:
    """``hard``, ``constant`` or ``soft`` when a top-level statement is kept on its own merits, else None."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)):
        return "hard"
    if _targets(node) is not None:
        try:
            return "constant" if _constant(node.value, modules) else None
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


def _reduce(cell: Cell, modules: frozenset) -> None:
    for i, node in enumerate(cell.tree.body):
        flags = _futures(node)
        if flags is not None:  # hoisted: applied to every cell when it is compiled
            cell.futures |= flags
            continue
        if _is_grader(node):
            continue  # ``from grader.student import check``: checks run by the grader, not by the module
        kind = _classify(node, modules)
        if kind:
            cell.kept[i] = kind
        elif not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
            cell.dropped += 1


# --- the notebook as a whole ------------------------------------------------------------------------

def _assignment_module(node: ast.ImportFrom) -> str | None:
    """For ``from assignment[.x] import ...``, ``from .x import ...`` or ``from layers import ...``: x."""
    mod = node.module or ""
    if node.level:
        return mod or "assignment"
    if mod == "assignment":
        return "assignment"
    if mod.startswith("assignment."):
        return mod.split(".", 1)[1]
    return mod if mod in STUDENT_MODULES else None


def _filter_assignment_import(cell: Cell, i: int, node: ast.ImportFrom, own: set[str]) -> None:
    """The setup cell as in Jupyter: helpers from the trusted package, the notebook's names its own."""
    target = _assignment_module(node)
    if target is None:
        return
    keep = []
    for a in node.names:
        bound = a.asname or a.name
        if a.name == "*" or (a.name not in STUDENT_NAMES and bound not in own
                             and (target not in STUDENT_MODULES or a.name in PROVIDED_NAMES)):
            keep.append(a)
    if len(keep) == len(node.names):
        return
    if not keep:
        del cell.kept[i]
        return
    if target in STUDENT_MODULES:  # ``from .layers import Module``: the provided name, not the notebook itself
        new = ast.ImportFrom(module="assignment", names=keep, level=0)
    else:
        new = ast.ImportFrom(module=node.module, names=keep, level=node.level)
    cell.replaced[i] = new


def _bound(node: ast.stmt) -> list[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return [(a.asname or a.name).partition(".")[0] for a in node.names if a.name != "*"]
    if isinstance(node, ast.Try):
        return [n for s in node.body + [s for h in node.handlers for s in h.body] for n in _bound(s)]
    return _targets(node) or []


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
            frags = [(sl, ast.unparse(cell.replaced[i]))]
        elif sl == el:
            frags = [(sl, _cut(cell.lines[sl], sc, ec))]
        else:
            frags = [(sl, _cut(cell.lines[sl], sc, None))] + [(n, cell.lines[n]) for n in range(sl + 1, el)]
            frags.append((el, _cut(cell.lines[el], 0, ec)))
        for n, text in frags:
            out[n] = f"{out[n]}; {text}" if out[n] and n == sl else (out[n] + text if n == sl else text)
    return "\n".join(out)


class _Scope:
    __slots__ = ("parent", "function", "loads", "stores", "globals")

    def __init__(self, parent: "_Scope | None", function: bool) -> None:
        self.parent, self.function = parent, function
        self.loads: set[str] = set()
        self.stores: set[str] = set()
        self.globals: set[str] = set()


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef,
           ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _outer_parts(node: ast.AST) -> list[ast.AST]:
    """What a scope-making node evaluates in the enclosing scope (decorators, defaults, bases ...)."""
    parts = list(getattr(node, "decorator_list", []))
    if isinstance(node, ast.ClassDef):
        return parts + node.bases + [k.value for k in node.keywords]
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        a = node.args
        parts += a.defaults + [d for d in a.kw_defaults if d is not None]
        if not isinstance(node, ast.Lambda):
            parts += [x.annotation for x in a.posonlyargs + a.args + a.kwonlyargs + [a.vararg, a.kwarg]
                      if x is not None and x.annotation is not None]
            parts += [node.returns] if node.returns is not None else []
        return parts
    return [node.generators[0].iter]  # a comprehension's first iterable


def _inner_parts(node: ast.AST) -> list[ast.AST]:
    if isinstance(node, ast.ClassDef):
        return node.body
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        return node.body if isinstance(node.body, list) else [node.body]
    gens = node.generators
    elts = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
    return elts + [g.target for g in gens] + [g.iter for g in gens[1:]] + [c for g in gens for c in g.ifs]


def _global_reads(nodes: list[ast.stmt]) -> set[str]:
    """Names that code reads from the module's globals (in functions, class bodies, decorators,
    defaults), by Python's scoping rules; one pass over the nodes, no recursion."""
    top = _Scope(None, False)
    scopes = [top]
    stack: list[tuple[ast.AST, _Scope]] = [(n, top) for n in nodes]
    while stack:
        node, scope = stack.pop()
        if isinstance(node, _SCOPES):
            inner = _Scope(scope, not isinstance(node, ast.ClassDef))
            scopes.append(inner)
            if not isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
                scope.stores.add(node.name)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                a = node.args
                inner.stores.update(x.arg for x in a.posonlyargs + a.args + a.kwonlyargs + [a.vararg, a.kwarg]
                                    if x is not None)
            stack += [(n, scope) for n in _outer_parts(node)] + [(n, inner) for n in _inner_parts(node)]
            continue
        if isinstance(node, ast.Name):
            (scope.loads if isinstance(node.ctx, ast.Load) else scope.stores).add(node.id)
        elif isinstance(node, ast.Global):
            scope.globals.update(node.names)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            scope.stores.update((a.asname or a.name).partition(".")[0] for a in node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            scope.stores.add(node.name)
        for f in node._fields:  # ast.iter_child_nodes, without its generators' cost
            v = getattr(node, f, None)
            if isinstance(v, list):
                stack += [(c, scope) for c in v if isinstance(c, ast.AST)]
            elif isinstance(v, ast.AST) and not isinstance(v, ast.expr_context):
                stack.append((v, scope))
    reads = set(top.loads)
    for sc in scopes[1:]:
        for name in sc.loads - (sc.stores - sc.globals):
            outer = sc.parent
            while outer is not None and outer is not top and not (outer.function and name in outer.stores):
                outer = outer.parent
            if outer is None or outer is top or name in sc.globals:
                reads.add(name)
    return reads


def _keep_dependencies(cells: list[Cell], defined: set[str]) -> list[str]:
    """Assignments whose names kept code reads (``EPS = np.finfo(float).eps``): the last one wins."""
    known = defined | set(dir(builtins)) | {"__name__", "__file__", "__doc__"}
    code = [c.tree.body[i] for c in cells for i in c.kept if not isinstance(c.tree.body[i], (ast.Assign, ast.AnnAssign))]
    wanted = _global_reads(code) - known  # constants read only modules (np.float64), which are imports
    candidates: dict[str, tuple[Cell, int]] = {}
    for cell in cells:
        if cell.tree is None:
            continue
        for i, node in enumerate(cell.tree.body):
            if i not in cell.kept:
                for name in _targets(node) or ():
                    candidates[name] = (cell, i)
    notes, added = [], 0
    while wanted and added < MAX_DEPENDENCIES:
        name = wanted.pop()
        if name not in candidates:
            continue
        cell, i = candidates[name]
        if i in cell.kept:
            continue
        node = cell.tree.body[i]
        cell.kept[i], added = "soft", added + 1
        cell.dropped -= 1
        known.update(_targets(node))
        notes.append(f"{name} (cell {cell.number}, line {node.lineno})")
        try:
            reads = {n.id for n in ast.walk(node.value) if isinstance(n, ast.Name)}
        except RecursionError:
            reads = set()
        wanted |= reads - known
    return notes


@dataclass
class Reduced:
    cells: list[Cell]
    texts: dict[int, str]        #: cell number -> kept code
    futures: int
    notes: list[str]

    def module(self, filename: str, notebook: str) -> str:
        graded = GRADED[filename]
        entries = []
        for c in self.cells:
            if c.number in self.texts:
                defines = sorted(c.bound() & STUDENT_NAMES)
                plain = sorted(c.tree.body[i].lineno for i, kind in c.kept.items() if kind == "constant")
                entries.append((c.number, self.texts[c.number], tuple(defines), tuple(plain)))
        broken = [(c.number, c.label, c.error, tuple(sorted(set(_CLASS_LINE.findall(c.source)) & STUDENT_NAMES)))
                  for c in self.cells if c.error]
        return (f"# {filename} made by the grader from the notebook {notebook!r}: the imports, definitions and\n"
                "# constants of its code cells (CONTRACT.md section 2). Each cell runs under its own name,\n"
                "# so that a traceback says 'cell 7, line 3' (the runner is grader/intake/notebook_runner.py).\n"
                "import numpy as np  # before any cell: solution cells may rely on a setup cell not graded\n"
                f"__grader_cells__ = {entries!r}\n__grader_broken__ = {broken!r}\n"
                f"__grader_futures__ = {self.futures!r}\n__grader_graded__ = {graded!r}\n"
                f"exec(compile({RUNNER!r}, '<grader: notebook runner>', 'exec'), globals())\n"
                "__grader_run__(globals())\ndel __grader_run__\n")


def reduce_notebook(raw: bytes, name: str) -> Reduced:
    """Parse and reduce a notebook's code cells; raises :class:`NotebookError` if it cannot be graded."""
    enabled = gc.isenabled()
    gc.disable()  # the trees hold no cycles; the collector running over them doubles the time of a big cell
    try:
        return _reduce_notebook(raw, name)
    finally:
        if enabled:
            gc.enable()


def _reduce_notebook(raw: bytes, name: str) -> Reduced:
    name = _shown(name, 200)
    all_cells = load_cells(raw, name)
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
        cells.append(Cell(n, src))
    for cell in cells:
        magic = _CELL_MAGIC.match(cell.source)
        if magic and magic.group(1) not in PYTHON_CELL_MAGICS:
            # %%bash, %%writefile, %%html ...: the body is not Python; a top-level action, dropped like one.
            notes.append(f"cell {cell.number}: a %%{magic.group(1)} cell (not Python) was not used")
            cell.lines = []
            continue
        _parse(cell)
    cells = [c for c in cells if c.tree is not None or c.error]
    parsed = [c for c in cells if c.tree is not None]
    modules = frozenset(n for c in parsed for node in c.tree.body if isinstance(node, (ast.Import, ast.ImportFrom))
                        for n in _bound(node))
    for c in parsed:
        _reduce(c, modules)
    own = {n for c in parsed for i in c.kept for n in _bound(c.tree.body[i])
           if not isinstance(c.tree.body[i], (ast.Import, ast.ImportFrom))}
    for c in parsed:
        for i in list(c.kept):
            if isinstance(c.tree.body[i], ast.ImportFrom):
                _filter_assignment_import(c, i, c.tree.body[i], own)
    texts = {c.number: cell_text(c) for c in parsed if c.kept}
    defined = set().union(*(c.bound() for c in parsed))
    deps = _keep_dependencies(parsed, defined)
    for c in parsed:
        c._bound = None
    if deps:
        texts = {c.number: cell_text(c) for c in parsed if c.kept}
        notes.append("kept because the code reads them: " + ", ".join(deps[:8]) + (" ..." if len(deps) > 8 else ""))
    notes += _broken_notes(cells, defined, tagged and [(n, c) for n, c in code if "solution" not in _tags(c)])
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
        names = sorted(set(_CLASS_LINE.findall(c.source)) & STUDENT_NAMES)
        text = f"{c.label} does not parse ({msg}, at its line {line}), so it was not used (Jupyter could not run it either)"
        lost = [n for n in names if n not in defined]
        if lost:
            text += f"; {', '.join(lost)} {'is' if len(lost) == 1 else 'are'} defined only there, so not graded"
        elif names:
            text += f"; {', '.join(names)} from another cell {'was' if len(names) == 1 else 'were'} graded instead"
        notes.append(text)
    for c in cells:
        if c.tree is not None:
            for name in sorted(set(_CLASS_LINE.findall(c.source)) & STUDENT_NAMES - defined):
                notes.append(f"{name} appears in {c.label} only inside a statement that is not run (an if, for or "
                             "with block): define it at the top level of a cell")
    for n, c in untagged or []:
        src = _source(c) or ""
        for name in sorted(set(_CLASS_LINE.findall(src)) & STUDENT_NAMES - defined):
            notes.append(f"{name} is defined in cell {n}, which is not tagged 'solution': only tagged cells are graded")
    return notes


def notebook_modules(raw: bytes, name: str) -> tuple[dict[str, str], list[str]]:
    """``{"layers.py": source, "logistic_regression.py": source}`` and notes for the feedback."""
    reduced = reduce_notebook(raw, name)
    files = {f: reduced.module(f, _shown(name, 200)) for f in GRADED}
    size = max(len(s.encode("utf-8", "surrogatepass")) for s in files.values())
    if size > MAX_MODULE_BYTES:
        raise NotebookError(f"{_shown(name, 200)}: the code kept from its cells is {size} bytes, over the limit of "
                            f"{MAX_MODULE_BYTES}")
    return files, reduced.notes


def notebook_source(raw: bytes, name: str) -> tuple[str, list[str]]:
    """The module made of a notebook's cells (the ``layers.py`` one) and the notes."""
    files, notes = notebook_modules(raw, name)
    return files["layers.py"], notes


def read_notebook(path: Path) -> tuple[dict[str, str], list[str]]:
    try:  # size first, and a bounded read: a huge (or sparse) file must not be loaded into memory
        size = path.stat().st_size
        if size > MAX_NOTEBOOK_BYTES:
            raise NotebookError(f"{_shown(path.name, 200)} is {size} bytes, over the limit of {MAX_NOTEBOOK_BYTES}")
        with open(path, "rb") as fh:
            raw = fh.read(MAX_NOTEBOOK_BYTES + 1)
    except OSError as exc:
        raise NotebookError(f"{_shown(path.name, 200)} could not be read ({exc.strerror or exc})") from None
    return notebook_modules(raw, path.name)


RUNNER = (Path(__file__).with_name("notebook_runner.py")).read_text(encoding="utf-8").split("# --- runner ---\n", 1)[1]
