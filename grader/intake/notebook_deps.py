"""Which dropped assignments the graded classes still need, by Python's scoping rules (see notebook.py).

``EPS = np.finfo(float).eps`` is not a constant, but a LogSoftmax that reads ``EPS`` needs it; a
plotting helper that reads ``hist = train(...)`` must not make the training run at import. One pass
over the kept code, no recursion (a deep expression cannot exhaust the stack)."""
from __future__ import annotations

import ast
import builtins

from .notebook_cells import Cell, assigned_names, bound_names, student_names

MAX_DEPENDENCIES = 200           #: assignments kept because graded code reads them


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


def _attached_to(node: ast.stmt, classes: set[str]) -> str | None:
    """``Linear.forward = forward`` or ``setattr(Linear, "forward", forward)``: the class it extends."""
    value = None
    if isinstance(node, ast.Assign) and all(isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name)
                                            and t.value.id in classes for t in node.targets):
        base, value = node.targets[0].value.id, node.value
    elif (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name)
          and node.value.func.id == "setattr" and len(node.value.args) == 3 and not node.value.keywords
          and isinstance(node.value.args[0], ast.Name) and node.value.args[0].id in classes
          and isinstance(node.value.args[1], ast.Constant)):
        base, value = node.value.args[0].id, node.value.args[2]
    return base if isinstance(value, (ast.Name, ast.Attribute, ast.Lambda)) else None


def keep_attachments(cells: list[Cell], own: set[str]) -> None:
    """Keep (softly) the statements that attach something to the graded classes (``Linear.f = f``)."""
    for c in cells:
        for i, node in enumerate(c.tree.body):
            if i not in c.kept and _attached_to(node, own):
                c.kept[i] = "soft"
                c.dropped -= 1


def _reads_by_name(cells: list[Cell], own: set[str]) -> dict[str, set[str]]:
    """For each kept definition, the globals it reads; a method attached to a class (``Linear.f = f``,
    ``@add_to_class(Linear)``) counts for that class."""
    reads: dict[str, set[str]] = {}
    for c in cells:
        for i in c.kept:
            node = c.node(i)
            keys = []
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                keys = [node.name] + [n.id for d in node.decorator_list for n in ast.walk(d)
                                      if isinstance(n, ast.Name) and n.id in own]
            elif isinstance(node, ast.Try):
                keys = bound_names(node)
            elif _attached_to(node, own):
                keys = [_attached_to(node, own)]
            if keys:
                found = _global_reads([node])
                for k in keys:
                    reads.setdefault(k, set()).update(found)
    return reads


def keep_dependencies(cells: list[Cell], defined: set[str], own: set[str]) -> list[str]:
    """Assignments that the graded classes need (``EPS = np.finfo(float).eps`` read by LogSoftmax, directly
    or through a helper it calls); the last one in the notebook wins. Only what graded code can reach:
    a plotting helper that reads ``hist = train(...)`` does not make the training run."""
    reads = _reads_by_name(cells, own)
    candidates: dict[str, tuple[Cell, int]] = {}
    for cell in cells:
        for i, node in enumerate(cell.tree.body):
            if i not in cell.kept:
                for name in assigned_names(node) or ():
                    candidates[name] = (cell, i)
    ignore = set(dir(builtins)) | {"__name__", "__file__", "__doc__"}
    notes, seen, queue = [], set(), sorted(student_names())
    while queue and len(notes) < MAX_DEPENDENCIES:
        name = queue.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in reads:
            queue += sorted(reads[name] - seen)
        if name in defined or name in ignore or name not in candidates:
            continue
        cell, i = candidates[name]
        node = cell.tree.body[i]
        if i not in cell.kept:
            cell.kept[i] = "soft"
            cell.dropped -= 1
            notes.append(f"{name} (cell {cell.number}, line {node.lineno})")
        try:
            queue += sorted({n.id for n in ast.walk(node.value) if isinstance(n, ast.Name)} - seen)
        except RecursionError:
            pass
    return notes
