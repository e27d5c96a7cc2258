"""Which grader modules the student release ships: the import closure of ``grader check``.

Starting from the CLI's ``main`` with only the student subcommands, modules are followed through
their imports (relative ones, also inside functions, and the sibling imports of ``worker.py``, which
runs as a script in the sandbox), so whatever ``grader check`` imports is shipped and nothing else
is (``batch/``, ``validate.py``, ``checks/mnist.py``, the ``release`` package are not).

Every reached module is copied whole, except the two that hold the instructor's commands beside the
student's: ``cli.py`` keeps only the student subcommands, and both it and ``pipeline.py`` are cut at
top-level statements to what is reached from the student command (the grading of a batch, the
MNIST tests and the reference's construction stay behind).

Check code is never cut: a check in ``grader/checks/<component>.py`` runs on public and hidden
cases and ships whole; hidden-only check code lives in ``grader/checks/hidden/``, which is
:data:`NEVER_SHIPPED` (it cannot be reached, and a shipped module importing it is refused).
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

from .common import GRADER, ReleaseError

#: modules cut to what is reached; every other shipped module is copied whole
SHAKEN_MODULES = frozenset({"grader.cli", "grader.pipeline"})
#: packages the student release never holds, whatever imports them
NEVER_SHIPPED = ("grader.checks.hidden",)
STUDENT_SUBCOMMANDS = ("check",)
ENTRY = ("grader.cli", "main")


@dataclass
class _Stmt:
    node: ast.stmt
    defines: set[str]
    always: bool = False
    kept: bool = False


@dataclass
class _Module:
    name: str
    path: Path
    source: str
    tree: ast.Module
    is_package: bool
    shaken: bool
    stmts: list[_Stmt] = field(default_factory=list)
    imports: dict[str, tuple[str, str | None]] = field(default_factory=dict)  #: alias -> (module, attr)
    used_aliases: set[str] = field(default_factory=set)
    reached: bool = False
    drop_lines: set[int] = field(default_factory=set)  #: lines removed inside kept statements


def _module_name(path: Path, top: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(top).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def never_shipped(name: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in NEVER_SHIPPED)


def _resolve_relative(name: str, is_package: bool, level: int, target: str | None) -> str:
    base = name.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def _names_in(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _defined_names(node: ast.stmt) -> set[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    return set()


def _is_definition(node: ast.stmt) -> bool:
    return isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign,
                             ast.AugAssign))


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)


def _add_parser_name(st: ast.stmt) -> tuple[str, list[str]] | None:
    """``var = sub.add_parser("name", ...)`` -> ("name", [var])."""
    if (isinstance(st, ast.Assign) and isinstance(st.value, ast.Call)
            and isinstance(st.value.func, ast.Attribute) and st.value.func.attr == "add_parser"
            and st.value.args and isinstance(st.value.args[0], ast.Constant)):
        return st.value.args[0].value, [t.id for t in st.targets if isinstance(t, ast.Name)]
    return None


def trim_cli(m: _Module) -> None:
    """Only the student subcommands: drop the lines of every other ``add_parser`` block."""
    fn = next((n for n in m.tree.body if isinstance(n, ast.FunctionDef) and n.name == "build_parser"), None)
    if fn is None:
        raise ReleaseError("grader/cli.py has no build_parser(): cannot cut the student CLI")
    drop_vars: set[str] = set()
    kept_cmds: set[str] = set()
    for st in fn.body:
        found = _add_parser_name(st)
        if found is not None and found[0] in STUDENT_SUBCOMMANDS:
            kept_cmds.add(found[0])
        elif found is not None:
            drop_vars.update(found[1])
    if set(STUDENT_SUBCOMMANDS) - kept_cmds:
        raise ReleaseError(f"grader/cli.py defines no subcommand {sorted(set(STUDENT_SUBCOMMANDS) - kept_cmds)}")
    body = []
    for st in fn.body:
        if _names_in(st) & drop_vars:
            m.drop_lines.update(range(st.lineno, st.end_lineno + 1))
        else:
            body.append(st)
    fn.body = body


class Shaker:
    """Follows what the student command reaches through the grader package, statement by statement."""

    def __init__(self, package_dir: Path = GRADER) -> None:
        package_dir = Path(package_dir)
        self.top = package_dir.parent
        self.modules: dict[str, _Module] = {}
        for path in sorted(package_dir.rglob("*.py")):
            if "__pycache__" in path.parts or "templates" in path.relative_to(package_dir).parts:
                continue
            name, is_pkg = _module_name(path, self.top)
            if never_shipped(name):
                continue
            src = path.read_text(encoding="utf-8")
            self.modules[name] = _Module(name, path, src, ast.parse(src, filename=str(path)), is_pkg,
                                         name in SHAKEN_MODULES)
        for m in self.modules.values():
            self._index(m)
        self._queue: list[tuple[str, str | None]] = []

    # --- analysis ------------------------------------------------------------------------------------
    def _index(self, m: _Module) -> None:
        if m.name == "grader.cli":
            trim_cli(m)
        for node in m.tree.body:
            st = _Stmt(node, _defined_names(node))
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    bound = (alias.asname or alias.name).split(".")[0]
                    m.imports[bound] = self._import_target(m, node, alias)
                st.always = not m.shaken or (isinstance(node, ast.ImportFrom) and node.module == "__future__")
            else:
                st.always = not m.shaken or _is_docstring(node) or not _is_definition(node)
            m.stmts.append(st)

    def _import_target(self, m: _Module, node, alias) -> tuple[str, str | None]:
        if isinstance(node, ast.Import):
            return alias.name, None
        if node.level == 0:
            base = node.module or ""
        else:
            base = _resolve_relative(m.name, m.is_package, node.level, node.module)
        sub = f"{base}.{alias.name}"
        if sub in self.modules:
            return sub, None
        return base, alias.name

    # --- reachability ------------------------------------------------------------------------------
    def reach_module(self, name: str) -> None:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing a module imports its parent packages
            m = self.modules.get(".".join(parts[:i]))
            if m is None or m.reached:
                continue
            m.reached = True
            for st in m.stmts:
                if st.always:
                    self._keep(m, st)

    def reach_symbol(self, module: str, name: str) -> None:
        if module not in self.modules:
            return
        self.reach_module(module)
        m = self.modules[module]
        if f"{module}.{name}" in self.modules:
            self.reach_module(f"{module}.{name}")
            return
        if name in m.imports:
            self._use_alias(m, name)
        for st in m.stmts:
            if name in st.defines and not isinstance(st.node, (ast.Import, ast.ImportFrom)):
                self._keep(m, st)

    def _use_alias(self, m: _Module, alias: str) -> None:
        if alias in m.used_aliases:
            return
        m.used_aliases.add(alias)
        target, attr = m.imports[alias]
        if target.split(".")[0] != "grader":
            return
        if attr is None:
            self.reach_module(target)
        else:
            self._queue.append((target, attr))

    def _keep(self, m: _Module, st: _Stmt) -> None:
        if st.kept:
            return
        st.kept = True
        node = st.node
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                self._use_alias(m, (alias.asname or alias.name).split(".")[0])
            return
        local_defs = {n for s in m.stmts for n in s.defines if not isinstance(s.node, (ast.Import, ast.ImportFrom))}
        for name in _names_in(node):
            if name in m.imports:
                self._use_alias(m, name)
            if name in local_defs:
                self._queue.append((m.name, name))
        for n in ast.walk(node):  # module.attr on an imported grader module
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in m.imports:
                target, attr = m.imports[n.value.id]
                if attr is None and target in self.modules:
                    self._queue.append((target, n.attr))
        for n in ast.walk(node):
            if isinstance(n, (ast.Import, ast.ImportFrom)):
                self._reach_nested_import(m, n)

    def _reach_nested_import(self, m: _Module, n: ast.Import | ast.ImportFrom) -> None:
        """An import inside a kept statement (a function body, an ``if``)."""
        if isinstance(n, ast.ImportFrom) and n.level > 0:
            base = _resolve_relative(m.name, m.is_package, n.level, n.module)
            for alias in n.names:
                if f"{base}.{alias.name}" in self.modules:
                    self.reach_module(f"{base}.{alias.name}")
                else:
                    self._queue.append((base, alias.name))
            return
        if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("grader"):
            for alias in n.names:
                self._queue.append((n.module, alias.name))
        # a sibling imported as a top-level module: worker.py, run as a script in the sandbox,
        # imports ``protocol`` and ``isolation`` this way
        package = m.name if m.is_package else m.name.rpartition(".")[0]
        for mod in ([n.module] if isinstance(n, ast.ImportFrom) else [a.name for a in n.names]):
            if mod and f"{package}.{mod}" in self.modules:
                self.reach_module(f"{package}.{mod}")

    def reach_file_imports(self, path: Path) -> None:
        """A check module the spec names as a file (shipped beside the grader): what it imports of the
        grader is shipped."""
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for n in ast.walk(tree):
            if isinstance(n, ast.Import):
                for alias in n.names:
                    if alias.name.split(".")[0] == "grader":
                        self.reach_module(alias.name)
            elif isinstance(n, ast.ImportFrom) and n.level == 0 and (n.module or "").split(".")[0] == "grader":
                for alias in n.names:
                    self._queue.append((n.module, alias.name))

    def run(self, entry: tuple[str, str] = ENTRY) -> None:
        self.reach_module(entry[0])  # with its always-kept statements (``if __name__ == "__main__"``)
        from ..spec import current_spec

        spec = current_spec()
        for name in spec.check_modules:  # imported by name (or from a file) from the assignment spec
            if name.endswith(".py"):
                self.reach_file_imports(spec.root / name)
            elif name in self.modules:
                self.reach_module(name)
            else:
                raise ReleaseError(f"check module {name} is not in grader/: name it in the spec as a .py file "
                                   "(relative to the spec's root) so that the release can ship it")
        from ..sandbox.client import RUNTIME_FILES

        for file in RUNTIME_FILES:  # run by path (the fork server), not only imported
            if f"grader.sandbox.{file[:-3]}" in self.modules:
                self.reach_module(f"grader.sandbox.{file[:-3]}")
        self._queue.append(entry)
        while self._queue:
            self.reach_symbol(*self._queue.pop())

    # --- output ------------------------------------------------------------------------------------------
    def shipped(self) -> list[_Module]:
        return [m for m in self.modules.values() if m.reached]

    def render(self, m: _Module) -> str:
        if not m.shaken:
            return m.source
        lines = m.source.splitlines(keepends=True)
        out: list[str] = []
        prev_end = 0
        for st in m.stmts:
            node = st.node
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            lead = lines[prev_end:first - 1]
            body = [lines[i - 1] for i in range(first, node.end_lineno + 1) if i not in m.drop_lines]
            prev_end = node.end_lineno
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                out += self._render_import(m, st, lead, body)
            elif st.kept:
                out += lead + body
        out += lines[prev_end:] if prev_end < len(lines) and m.stmts and m.stmts[-1].kept else []
        text = re.sub(r"\n{4,}", "\n\n\n", "".join(out))
        return text if text.endswith("\n") else text + "\n"

    @staticmethod
    def _render_import(m: _Module, st: _Stmt, lead: list[str], body: list[str]) -> list[str]:
        node = st.node
        keep = [a for a in node.names if st.always or (a.asname or a.name).split(".")[0] in m.used_aliases]
        if not keep:
            return [line for line in lead if not line.strip()]
        if len(keep) == len(node.names):
            return lead + body
        new = ast.ImportFrom(node.module, keep, node.level) if isinstance(node, ast.ImportFrom) else ast.Import(keep)
        return lead + [ast.unparse(new) + "\n"]


def shake(package_dir: Path = GRADER) -> dict[str, str]:
    """The shipped grader modules: relative path (``grader/checks/linear.py``) -> source text."""
    sh = Shaker(package_dir)
    sh.run()
    out = {}
    for m in sh.shipped():
        text = sh.render(m)
        try:
            compile(text, str(m.path), "exec")
        except SyntaxError as exc:
            raise ReleaseError(f"the cut copy of {m.name} does not compile: {exc}") from None
        out[m.path.relative_to(sh.top).as_posix()] = text
    check_imports(out)
    return out


def _relative_imports(name: str, tree: ast.Module, is_pkg: bool):
    """(target module, imported names) of every relative import in ``tree``, at any depth."""
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom) and n.level > 0:
            yield _resolve_relative(name, is_pkg, n.level, n.module), [a.name for a in n.names]


def check_imports(files: dict[str, str]) -> None:
    """Every relative import in the shipped modules, at any depth, names a shipped module or symbol,
    and no shipped module names a :data:`NEVER_SHIPPED` package in any import."""
    mods = {}
    for rel, text in files.items():
        name = rel[:-3].replace("/", ".")
        tree = ast.parse(text)
        mods[name.removesuffix(".__init__")] = (tree, name.endswith(".__init__"),
                                                {n for st in tree.body for n in _defined_names(st)})
    problems = []
    for name, (tree, is_pkg, _) in mods.items():
        for target, names in _relative_imports(name, tree, is_pkg):
            for alias in names:
                full = target if alias == "*" else f"{target}.{alias}"
                if never_shipped(target) or never_shipped(full):
                    problems.append(f"{name} imports {full}, which the student release never holds")
                elif target not in mods:
                    problems.append(f"{name} imports {target}, which is not shipped")
                elif full not in mods and alias not in mods[target][2] and alias != "*":
                    problems.append(f"{name} imports {alias} from {target}, which the cut copy lacks")
    if problems:
        raise ReleaseError("the student grader would not import: " + "; ".join(sorted(set(problems))))
