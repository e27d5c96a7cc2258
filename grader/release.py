"""Distribution: the student release (``grader release``) and the Gradescope bundle (``grader gradescope``).

The student release is a folder students clone or unpack: the skeleton package, the notebooks, MNIST,
their CI workflow, and a ``grader`` that can run the public checks and nothing more. It holds no
reference code, no hidden check and no grading machinery:

* ``grader/`` is the import closure of the student command (``grader check``), starting from the CLI
  with only its ``check`` subcommand. Modules are followed through their relative imports, also the
  ones inside functions, so whatever ``grader check`` imports is shipped and nothing else is
  (``batch/``, ``validate.py``, ``checks/mnist.py``, this module are not).
* the check modules hold public and hidden checks side by side. They are shipped as filtered copies,
  cut with the ``ast`` module at top-level statements: the public checks, plus exactly the helpers,
  constants and imports they reach, transitively and across modules (a helper of ``generic.py``
  used only by hidden checks is dropped, and so is its import in the component modules). In a
  ``mutants`` function, the ``if part == "...":`` branches for parts no public check asks about are
  dropped too (hidden-only known wrong answers). ``pipeline.py`` and ``cli.py`` are cut the same way.
* the reference's answers to the public checks are recorded (``grader/sandbox/recorded.py``) into
  ``grader/checks/public_reference.npz``; ``pipeline.reference_impl`` replays them when there is no
  ``solutions`` package.
* the rubric shipped lists the public checks only.

Every build checks itself: each shipped module compiles, every relative import resolves to a shipped
module, and the recording is replayed against the reference (full marks) and against every pattern
of failing cases it was recorded for.
"""
from __future__ import annotations

import ast
import itertools
import json
import os
import re
import secrets
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__

ROOT = Path(__file__).resolve().parent.parent
GRADER = ROOT / "grader"
TEMPLATES = GRADER / "templates" / "workflows"

#: modules cut to what is reached; every other shipped module is copied whole
SHAKEN_MODULES = {"grader.cli", "grader.pipeline"}
SHAKEN_PACKAGES = ("grader.checks.",)       #: every module of these packages except __init__
STUDENT_SUBCOMMANDS = ("check",)
ENTRY = ("grader.cli", "main")
MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
               "t10k-labels-idx1-ubyte.gz", "README.md", "SHA256SUMS")
RECORDING = "checks/public_reference.npz"
MAX_ENUMERATED_CASES = 10
#: packages only the notebooks or the batch grader need, left out of the Gradescope image
NOT_FOR_GRADING = ("matplotlib", "ipykernel", "nbclient", "nbconvert")


class ReleaseError(RuntimeError):
    """The release could not be built consistently (the message says what is wrong)."""


# =====================================================================================================
# Tree shaking
# =====================================================================================================

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


def _module_name(path: Path) -> tuple[str, bool]:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def _resolve_relative(mod: _Module, level: int, target: str | None) -> str:
    base = mod.name.split(".")
    if not mod.is_package:
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


def _is_public_check(node: ast.stmt) -> bool:
    if not isinstance(node, ast.FunctionDef):
        return False
    for d in node.decorator_list:
        if isinstance(d, ast.Call) and ((isinstance(d.func, ast.Name) and d.func.id == "check")
                                        or (isinstance(d.func, ast.Attribute) and d.func.attr == "check")):
            for kw in d.keywords:
                if kw.arg == "public" and isinstance(kw.value, ast.Constant) and kw.value.value is True:
                    return True
    return False


class Shaker:
    """Follows what the student command reaches through the grader package, statement by statement."""

    def __init__(self, package_dir: Path = GRADER) -> None:
        self.modules: dict[str, _Module] = {}
        for path in sorted(package_dir.rglob("*.py")):
            if "__pycache__" in path.parts or "templates" in path.relative_to(package_dir).parts:
                continue
            name, is_pkg = _module_name(path)
            src = path.read_text(encoding="utf-8")
            shaken = name in SHAKEN_MODULES or (not is_pkg and name.startswith(SHAKEN_PACKAGES))
            self.modules[name] = _Module(name, path, src, ast.parse(src, filename=str(path)), is_pkg, shaken)
        for m in self.modules.values():
            self._index(m)
        self._queue: list[tuple[str, str | None]] = []

    # --- analysis ------------------------------------------------------------------------------------
    def _index(self, m: _Module) -> None:
        if m.name == "grader.cli":
            self._trim_cli(m)
        for node in m.tree.body:
            st = _Stmt(node, _defined_names(node))
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    bound = (alias.asname or alias.name).split(".")[0]
                    m.imports[bound] = self._import_target(m, node, alias)
                if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                    st.always = True
            else:
                is_doc = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
                is_def = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign,
                                           ast.AnnAssign, ast.AugAssign))
                st.always = (not m.shaken) or is_doc or not is_def or _is_public_check(node)
            m.stmts.append(st)
        if not m.shaken:
            for st in m.stmts:
                st.always = True

    def _import_target(self, m: _Module, node, alias) -> tuple[str, str | None]:
        if isinstance(node, ast.Import):
            return alias.name, None
        if node.level == 0:
            base = node.module or ""
        else:
            base = _resolve_relative(m, node.level, node.module)
        sub = f"{base}.{alias.name}"
        if sub in self.modules:
            return sub, None
        return base, alias.name

    def _trim_cli(self, m: _Module) -> None:
        """Only the student subcommands: drop the lines of every other ``add_parser`` block."""
        fn = next((n for n in m.tree.body if isinstance(n, ast.FunctionDef) and n.name == "build_parser"), None)
        if fn is None:
            raise ReleaseError("grader/cli.py has no build_parser(): cannot cut the student CLI")
        drop_vars = set()
        kept_cmds = set()
        for st in fn.body:
            if (isinstance(st, ast.Assign) and isinstance(st.value, ast.Call)
                    and isinstance(st.value.func, ast.Attribute) and st.value.func.attr == "add_parser"
                    and st.value.args and isinstance(st.value.args[0], ast.Constant)):
                var = [t.id for t in st.targets if isinstance(t, ast.Name)]
                if st.value.args[0].value in STUDENT_SUBCOMMANDS:
                    kept_cmds.add(st.value.args[0].value)
                else:
                    drop_vars.update(var)
        if set(STUDENT_SUBCOMMANDS) - kept_cmds:
            raise ReleaseError(f"grader/cli.py defines no subcommand {sorted(set(STUDENT_SUBCOMMANDS) - kept_cmds)}")
        body = []
        for st in fn.body:
            if _names_in(st) & drop_vars:
                m.drop_lines.update(range(st.lineno, st.end_lineno + 1))
            else:
                body.append(st)
        fn.body = body

    # --- reachability ------------------------------------------------------------------------------
    def reach_module(self, name: str) -> None:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing a module imports its parent packages
            n = ".".join(parts[:i])
            m = self.modules.get(n)
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
        # module.attr on an imported grader module
        for n in ast.walk(node):
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in m.imports:
                target, attr = m.imports[n.value.id]
                if attr is None and target in self.modules:
                    self._queue.append((target, n.attr))
        # imports inside functions
        for n in ast.walk(node):
            if isinstance(n, ast.ImportFrom) and n.level > 0:
                base = _resolve_relative(m, n.level, n.module)
                for alias in n.names:
                    if f"{base}.{alias.name}" in self.modules:
                        self.reach_module(f"{base}.{alias.name}")
                    else:
                        self._queue.append((base, alias.name))
            elif isinstance(n, ast.ImportFrom) and (n.module or "").startswith("grader"):
                for alias in n.names:
                    self._queue.append((n.module, alias.name))
            if isinstance(n, (ast.Import, ast.ImportFrom)) and getattr(n, "level", 0) == 0:
                # a sibling imported as a top-level module: worker.py, run as a script in the sandbox,
                # imports ``protocol`` and ``isolation`` this way
                package = m.name if m.is_package else m.name.rpartition(".")[0]
                for mod in ([n.module] if isinstance(n, ast.ImportFrom) else [a.name for a in n.names]):
                    if mod and f"{package}.{mod}" in self.modules:
                        self.reach_module(f"{package}.{mod}")

    def run(self, entry: tuple[str, str] = ENTRY) -> None:
        self.reach_module(entry[0])  # with its always-kept statements (``if __name__ == "__main__"``)
        from .spec import current_spec

        for name in current_spec().check_modules:  # imported by name from the assignment spec
            if not name.endswith(".py"):
                self.reach_module(name)
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
        public_parts = self._public_parts(m)
        for st in m.stmts:
            node = st.node
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            lead = lines[prev_end:first - 1]
            body_lines = list(range(first, node.end_lineno + 1))
            prev_end = node.end_lineno
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                keep = [a for a in node.names if st.always or (a.asname or a.name).split(".")[0] in m.used_aliases]
                if not keep:
                    out += [line for line in lead if not line.strip()]
                    continue
                if len(keep) == len(node.names):
                    out += lead + [lines[i - 1] for i in body_lines]
                else:
                    new = (ast.ImportFrom(node.module, keep, node.level) if isinstance(node, ast.ImportFrom)
                           else ast.Import(keep))
                    out += lead + [ast.unparse(new) + "\n"]
                continue
            if not st.kept:
                continue
            drop = set(m.drop_lines)
            if isinstance(node, ast.FunctionDef) and node.name == "mutants" and public_parts is not None:
                drop |= self._hidden_mutant_lines(node, public_parts)
            out += lead + [lines[i - 1] for i in body_lines if i not in drop]
        out += lines[prev_end:] if prev_end < len(lines) and m.stmts and m.stmts[-1].kept else []
        text = "".join(out)
        text = re.sub(r"\n{4,}", "\n\n\n", text)
        return text if text.endswith("\n") else text + "\n"

    def _public_parts(self, m: _Module) -> set[str] | None:
        """String constants in the kept code of a check module, except ``mutants`` itself: the parts
        (``"forward"``, ``"input"``, ``"W"``, ...) the shipped checks can ask a mutant about."""
        if not m.name.startswith(SHAKEN_PACKAGES) or not any(st.kept and isinstance(st.node, ast.FunctionDef)
                                                               and st.node.name == "mutants" for st in m.stmts):
            return None
        out: set[str] = set()
        for st in m.stmts:
            if st.kept and not (isinstance(st.node, ast.FunctionDef) and st.node.name == "mutants"):
                out |= {n.value for n in ast.walk(st.node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        return out

    @staticmethod
    def _hidden_mutant_lines(fn: ast.FunctionDef, parts: set[str]) -> set[int]:
        drop: set[int] = set()
        for st in fn.body:
            if (isinstance(st, ast.If) and not st.orelse and isinstance(st.test, ast.Compare)
                    and isinstance(st.test.left, ast.Name) and st.test.left.id == "part"
                    and len(st.test.ops) == 1 and isinstance(st.test.ops[0], ast.Eq)
                    and isinstance(st.test.comparators[0], ast.Constant)
                    and st.test.comparators[0].value not in parts):
                drop.update(range(st.lineno, st.end_lineno + 1))
        return drop


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
        out[m.path.relative_to(package_dir.parent).as_posix()] = text
    _check_imports(out)
    return out


def _check_imports(files: dict[str, str]) -> None:
    """Every relative import in the shipped modules, at any depth, names a shipped module or symbol."""
    mods = {}
    for rel, text in files.items():
        name = rel[:-3].replace("/", ".")
        is_pkg = name.endswith(".__init__")
        mods[name.removesuffix(".__init__")] = (ast.parse(text), is_pkg)
    problems = []
    for name, (tree, is_pkg) in mods.items():
        top = {n for st in tree.body for n in _defined_names(st)}
        mods[name] = (tree, is_pkg, top)
    for name, (tree, is_pkg, _) in mods.items():
        for n in ast.walk(tree):
            if not isinstance(n, ast.ImportFrom) or n.level == 0:
                continue
            base = name.split(".") if is_pkg else name.split(".")[:-1]
            if n.level > 1:
                base = base[: len(base) - (n.level - 1)]
            target = ".".join(base + ([n.module] if n.module else []))
            if target not in mods:
                problems.append(f"{name} imports {target}, which is not shipped")
                continue
            for alias in n.names:
                if f"{target}.{alias.name}" not in mods and alias.name not in mods[target][2] and alias.name != "*":
                    problems.append(f"{name} imports {alias.name} from {target}, which the cut copy lacks")
    if problems:
        raise ReleaseError("the student grader would not import: " + "; ".join(sorted(set(problems))))


# =====================================================================================================
# Recording the reference's answers to the public checks
# =====================================================================================================

def _public_specs():
    from .checks import REGISTRY

    return [s for s in REGISTRY.values() if s.public]


def _reference_local():
    from .reference import classes_of
    from .sandbox.client import LocalImpl
    from .spec import current_spec

    return LocalImpl(classes_of(current_spec(), "reference"), label="reference")  # always the live one


def _failing_student(fail: frozenset[int]):
    """The reference as a student whose k-th object (k in ``fail``) cannot be created.

    Which requests the reference gets during a check depends on the student only through which cases
    pass: central differences of the reference run after a passing case only, and they draw from the
    check's generator. Failing every subset of cases therefore produces every request a real student
    can cause.
    """
    from .sandbox.client import _Base

    inner = _reference_local()

    class FailingStudent(_Base):
        label = "recording student"

        def __init__(self) -> None:
            self._generation = 0
            self.count = 0
            self.isolation = {}

        def _request(self, head, arrays, *, cls, method, timeout=None):
            if head.get("op") == "new":
                k = self.count
                self.count += 1
                if k in fail:
                    return {"ok": False, "error": {"type": "RuntimeError", "where": "",
                                                   "message": "fails on purpose while recording"}}, []
            return inner._request(head, arrays, cls=cls, method=method, timeout=timeout)

    return FailingStudent()


def _patterns(n: int) -> list[frozenset[int]]:
    if n <= MAX_ENUMERATED_CASES:
        return [frozenset(c) for r in range(n + 1) for c in itertools.combinations(range(n), r)]
    everything = frozenset(range(n))
    return ([frozenset(), everything] + [frozenset({k}) for k in range(n)]
            + [everything - {k} for k in range(n)] + [frozenset(range(k)) for k in range(1, n)])


def record_public_reference(path: Path) -> dict:
    """Run every public check against the reference through a recorder; save; replay to verify."""
    from .checks import run_check
    from .sandbox.recorded import RecordedImpl, RecordingImpl

    specs = _public_specs()
    rec = RecordingImpl(_reference_local())
    plans: dict[str, list[frozenset[int]]] = {}
    for spec in specs:
        student = _failing_student(frozenset())
        res = run_check(spec, student, rec, secret=None)
        if not res.passed:
            raise ReleaseError(f"the reference fails its own public check {spec.id}: "
                               + "; ".join(f"{c.label}: {c.cause} {c.detail}" for c in res.cases if not c.ok))
        plans[spec.id] = _patterns(student.count)
        for fail in plans[spec.id][1:]:
            run_check(spec, _failing_student(fail), rec, secret=None)
    meta = {"grader_version": __version__, "checks": sorted(plans), "requests": rec.requests,
            "entries": len(rec.entries)}
    rec.save(path, meta)

    replay = RecordedImpl.load(path)
    for spec in specs:
        for fail in plans[spec.id]:
            res = run_check(spec, _failing_student(fail), replay, secret=None)
            bad = [c for c in res.cases if c.cause == "grader_error"]
            if bad or (not fail and not res.passed):
                raise ReleaseError(f"replaying the recording for {spec.id} (failing cases {sorted(fail)}) "
                                   f"went wrong: {bad[0].detail if bad else 'the reference did not pass'}")
    return meta


# =====================================================================================================
# Files of the release
# =====================================================================================================

def _public_rubric_toml() -> str:
    from .checks import REGISTRY
    from .scoring.rubric import load_rubric

    r = load_rubric()
    lines = ["# The public part of the rubric: the points of the checks `grader check` runs.",
             "# Official grading adds hidden cases of these checks, more checks, and the MNIST tests.", "",
             "[rubric]", f"name = {json.dumps(r.name)}", f"public_share = {r.public_share!r}",
             f"partial_credit = {'true' if r.partial_credit else 'false'}", "", "[checks]"]
    lines += [f"{json.dumps(cid)} = {pts!r}" for cid, pts in r.checks.items() if REGISTRY[cid].public]
    return "\n".join(lines) + "\n"


def _student_pyproject() -> str:
    import tomllib

    main = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = [d for d in main["project"].get("dependencies", []) if not d.lower().startswith("scikit-learn")]
    dep_lines = "".join(f"    {json.dumps(d)},\n" for d in deps)
    return f'''[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "backprop-homework"
version = "{__version__}"
description = "Backprop-by-hand homework in numpy, with the public checks of its autograder"
readme = "README.md"
requires-python = "{main["project"].get("requires-python", ">=3.10")}"
dependencies = [
{dep_lines}]

[project.scripts]
grader = "grader.cli:main"

[tool.setuptools.packages.find]
include = ["assignment", "grader", "grader.*"]

[tool.setuptools.package-data]
grader = ["**/*.toml", "**/*.npz"]
'''


STUDENT_README = """# Backprop by hand

You implement the forward and backward passes of a small neural network in numpy, by hand:
`Linear`, `ReLU`, `LogSoftmax` and `NLLLoss` in `assignment/layers.py`, and `LogisticRegression`
in `assignment/logistic_regression.py`. Every other file is provided.

## Install

Python {python} or newer. From this folder (a virtual environment is a good idea):

```bash
python -m venv .venv && source .venv/bin/activate     # optional
pip install -e .
```

This installs the `assignment` package (your code, edited in place), numpy and the notebook tools,
and the `grader` command.

## Work through the notebooks

```bash
jupyter lab notebooks/
```

`notebooks/README.md` explains the order: `01_logistic_regression.ipynb` (Task 1), then
`02_mlp_layers.ipynb` (Tasks 2 to 5), then `03_training_mnist.ipynb` (training your network on MNIST,
which is bundled in `data/mnist/`: nothing is downloaded). The notebooks explain the math; the code
goes into the two files in `assignment/`.

## Check your work

```bash
grader check                        # all public checks
grader check --component Linear     # one component: Linear, ReLU, LogSoftmax, NLLLoss, LogisticRegression
```

`grader check` runs the **public** checks on your `assignment/` folder, in the same sandbox and with
the same diagnosis as official grading: a wrong gradient is given a named cause (transposed, summed
over the wrong axis, off by a factor N, sign, accumulated over calls, ...). Methods you have not
written yet are reported as TODO. In a notebook, `from grader.student import check; check("Linear")`
does the same for one component.

Official grading runs more: hidden cases with other shapes and values (read-only inputs, float32,
large logits, N = 1, ...), and trains your layers on MNIST with the grader's own loop. Passing every
public check is necessary, not sufficient.

## Continuous integration

`.github/workflows/check.yml` runs `grader check --format github` on every push and pull request:
the job summary shows a table per component and failing components appear as annotations. It is
feedback only and never fails the build.

## What to hand in

`assignment/layers.py` and `assignment/logistic_regression.py` (or the whole folder, a .zip of it,
as your course asks). Only these two files are graded; everything else comes from the grader's own
copy.
"""


def _copy_tree(src: Path, dst: Path, *, skip=("__pycache__", ".ipynb_checkpoints", ".cache")) -> None:
    def ignore(_dir, names):
        return [n for n in names if n in skip or n.endswith((".pyc", ".pyo")) or n.endswith(".egg-info")]

    shutil.copytree(src, dst, ignore=ignore, dirs_exist_ok=True)


def _copy_notebooks(dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        data = json.loads(nb.read_text(encoding="utf-8"))
        for cell in data.get("cells", []):  # never ship outputs of a run with the reference
            if cell.get("cell_type") == "code":
                cell["outputs"] = []
                cell["execution_count"] = None
        (dst / nb.name).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    readme = ROOT / "notebooks" / "README.md"
    if readme.is_file():
        shutil.copyfile(readme, dst / "README.md")


def _copy_mnist(dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for name in MNIST_FILES:
        src = ROOT / "data" / "mnist" / name
        if not src.is_file():
            raise ReleaseError(f"data/mnist/{name} is missing from the repository")
        shutil.copyfile(src, dst / name)


def build_release(out: Path) -> Path:
    """Write the student distribution into ``out`` (created; must be empty or absent)."""
    out = Path(out).resolve()
    if out.exists() and any(out.iterdir()):
        raise ReleaseError(f"{out} exists and is not empty; give a new folder")
    if out == ROOT or ROOT in out.parents and out.parts[len(ROOT.parts)] in ("grader", "assignment", "solutions"):
        raise ReleaseError(f"{out} is inside the repository's packages; give a folder elsewhere")
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".release-", dir=out.parent))  # same file system: renamed at the end
    try:
        for rel, text in shake().items():
            p = stage / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text, encoding="utf-8")
        (stage / "grader" / "scoring" / "default_rubric.toml").write_text(_public_rubric_toml(), encoding="utf-8")
        from .spec import DEFAULT_PATH

        (stage / "grader" / "assignments").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(DEFAULT_PATH, stage / "grader" / "assignments" / DEFAULT_PATH.name)  # the assignment spec
        record_public_reference(stage / "grader" / RECORDING)
        _copy_tree(ROOT / "assignment", stage / "assignment")
        _copy_notebooks(stage / "notebooks")
        _copy_mnist(stage / "data" / "mnist")
        (stage / "pyproject.toml").write_text(_student_pyproject(), encoding="utf-8")
        (stage / "README.md").write_text(STUDENT_README.replace("{python}", "3.10"), encoding="utf-8")
        wf = stage / ".github" / "workflows"
        wf.mkdir(parents=True)
        shutil.copyfile(TEMPLATES / "student-check.yml", wf / "check.yml")
        (stage / ".gitignore").write_text("__pycache__/\n*.egg-info/\n.venv/\ndata/mnist/.cache/\n"
                                          ".ipynb_checkpoints/\n", encoding="utf-8")
        _assert_clean(stage)
        os.chmod(stage, 0o755)  # mkdtemp made it private
        if out.exists():
            out.rmdir()
        os.replace(stage, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out


def _reference_snippets() -> list[str]:
    """Distinctive lines of the reference's forward/backward bodies (absent from the skeleton)."""
    skeleton = "".join((ROOT / "assignment" / f).read_text() for f in ("layers.py", "logistic_regression.py"))
    out = []
    for f in ("layers.py", "logistic_regression.py"):
        tree = ast.parse((ROOT / "solutions" / f).read_text())
        src = (ROOT / "solutions" / f).read_text().splitlines()
        for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
            for fn in (n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name in ("forward", "backward")):
                body = fn.body[1:] if (fn.body and isinstance(fn.body[0], ast.Expr)
                                       and isinstance(fn.body[0].value, ast.Constant)) else fn.body
                for st in body:
                    for line in src[st.lineno - 1: st.end_lineno]:
                        s = line.strip()
                        if len(s) >= 24 and s not in skeleton and not s.startswith("#"):
                            out.append(s)
    return sorted(set(out))


def _assert_clean(stage: Path) -> None:
    problems = []
    if (stage / "solutions").exists():
        problems.append("solutions/ is present")
    snippets = _reference_snippets()
    for p in stage.rglob("*"):
        if p.is_file() and p.suffix in (".py", ".ipynb", ".md", ".toml", ".yml", ".txt"):
            text = p.read_text(encoding="utf-8", errors="replace")
            for s in snippets:
                if s in text:
                    problems.append(f"{p.relative_to(stage)} contains the reference line {s!r}")
    if problems:
        raise ReleaseError("the release would leak the reference: " + "; ".join(problems[:10]))


# =====================================================================================================
# Gradescope
# =====================================================================================================

SETUP_SH = r"""#!/usr/bin/env bash
# Gradescope runs this once, as root, while it builds the autograder image.
set -euo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_BREAK_SYSTEM_PACKAGES=1

if ! command -v python3 >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1; then
    apt-get update
    apt-get install -y --no-install-recommends python3 python3-pip python3-venv
fi
python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "the grader needs Python 3.10 or newer")'

python3 -m pip install --no-cache-dir __DEPS__
python3 -m pip install --no-cache-dir --no-deps "$ROOT/source"

# Student code runs as a private unprivileged uid: nothing of the grader, the reference or the
# secret may be readable by it, also where Landlock is not available.
chmod -R go-rwx "$ROOT/source"
python3 - <<'EOF'
import os, stat
try:
    import solutions
except ImportError:
    raise SystemExit(0)
for d in set(solutions.__path__):
    for base, dirs, files in os.walk(d):
        for n in dirs + files:
            p = os.path.join(base, n)
            os.chmod(p, os.stat(p).st_mode & ~(stat.S_IRWXG | stat.S_IRWXO))
    os.chmod(d, 0o700)
EOF
python3 -c 'import grader; print("grader", grader.__version__, "installed")'
"""

RUN_AUTOGRADER = r"""#!/usr/bin/env bash
# Gradescope runs this for every submission, as root. Whatever happens, it leaves a valid
# $AUTOGRADER_ROOT/results/results.json: the grader's own, or one with score 0 and the reason.
set -uo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
SRC="$ROOT/source"
SUB="$ROOT/submission"
RESULTS="$ROOT/results"
PY="${AUTOGRADER_PYTHON:-python3}"
mkdir -p "$RESULTS"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gs-out.XXXXXX")"
chmod 700 "$WORK"
OUT="$WORK/out"
LOG="$WORK/grader.log"
chmod -R go-rwx "$SRC" 2>/dev/null || true
trap 'rm -rf "$WORK"' EXIT

fallback() {  # $1 status (error|rejected), $2 reason
    echo "autograder: $2" >&2
    if ! "$PY" - "$RESULTS/results.json" "$1" "$2" "$SRC" <<'PYEOF'
import json, os, sys
out, status, reason, src = sys.argv[1:5]
doc = None
try:  # every planned test, with score 0 and the reason, as for any other failed submission
    sys.path.insert(0, src)
    from grader.pipeline import _zero, plan
    from grader.scoring import SubmissionResult, load_rubric
    rubric = os.path.join(src, "rubric.toml")
    planned = plan(load_rubric(rubric if os.path.isfile(rubric) else None), public_only=False, mnist=True)
    doc = SubmissionResult("submission", status, reason,
                           [_zero(p, "Not graded: " + reason) for p in planned]).to_gradescope()
except Exception as exc:
    reason += f" (the list of tests could not be built either: {exc!r})"
if doc is None:
    doc = {"score": 0.0, "execution_time": 0.0, "output": "Score 0. Not graded: " + reason, "tests": [],
           "extra_data": {"student": "submission", "status": status, "reason": reason}}
tmp = out + ".tmp"
with open(tmp, "w", encoding="utf-8") as fh:
    json.dump(doc, fh, indent=2)
os.replace(tmp, out)
PYEOF
    then
        printf '%s\n' '{"score": 0.0, "execution_time": 0.0, "output": "The autograder failed before it could grade this submission; please tell your instructor.", "tests": [], "extra_data": {"status": "error"}}' > "$RESULTS/results.json"
    fi
}

has_student_files() {
    [ -e "$1/layers.py" ] || [ -e "$1/logistic_regression.py" ] \
        || [ -e "$1/assignment/layers.py" ] || [ -e "$1/assignment/logistic_regression.py" ]
}

# Find the submission: the upload itself, else the folder holding the student files (an uploaded
# folder or archive one level down), else a single notebook.
target=""
if [ -d "$SUB" ] && has_student_files "$SUB"; then
    target="$SUB"
elif [ -d "$SUB" ]; then
    found="$(find "$SUB" -maxdepth 4 -name __MACOSX -prune -o -type f \
             \( -name layers.py -o -name logistic_regression.py \) -print 2>/dev/null | sort | head -n 1)"
    if [ -n "$found" ]; then
        target="$(dirname "$found")"
    else
        notebooks="$(find "$SUB" -maxdepth 2 -name __MACOSX -prune -o -type f -name '*.ipynb' -print 2>/dev/null | sort)"
        if [ -n "$notebooks" ] && [ "$(printf '%s\n' "$notebooks" | wc -l)" -eq 1 ]; then
            target="$notebooks"
        fi
    fi
fi
if [ -z "$target" ]; then
    fallback rejected "no layers.py or logistic_regression.py (nor a single notebook) was found in the submission; upload assignment/layers.py and assignment/logistic_regression.py"
    exit 0
fi

export MNIST_DIR="$SRC/data/mnist"
if [ -z "${GRADER_SECRET:-}" ] && [ -f "$SRC/grader-secret.txt" ]; then
    GRADER_SECRET="$(cat "$SRC/grader-secret.txt")"
    export GRADER_SECRET
fi
RUBRIC=()
[ -f "$SRC/rubric.toml" ] && RUBRIC=(--rubric "$SRC/rubric.toml")

# Gradescope's containers usually offer neither Landlock nor mount namespaces. Each submission has
# a container of its own there, and the worker still runs under a private uid that cannot read the
# root-only source/ folder, with seccomp and resource limits; so the weaker sandbox is accepted here
# (the instructor can set GRADER_SANDBOX_ALLOW_WEAK=0 in the assignment's environment to refuse it).
export GRADER_SANDBOX_ALLOW_WEAK="${GRADER_SANDBOX_ALLOW_WEAK:-1}"
chmod 0700 "$SRC" 2>/dev/null || true

# Hidden cases per student and submission (issue 21): the assignment's secret combined with the
# students' Gradescope ids and the submission id, so that a probe submission learns nothing about
# anyone else's hidden cases, and a regrade of the same submission draws the same ones.
ATTEMPT="$("$PY" - "$ROOT/submission_metadata.json" <<'PYEOF' 2>/dev/null
import json, sys
try:
    with open(sys.argv[1], encoding="utf-8") as fh:
        meta = json.load(fh)
except (OSError, ValueError):
    meta = {}
meta = meta if isinstance(meta, dict) else {}
users = meta.get("users") if isinstance(meta.get("users"), list) else []
ids = sorted(str(u.get("id", u.get("email", ""))) for u in users if isinstance(u, dict))
print(f"users={','.join(ids)};submission={meta.get('id', '')}"[:500])
PYEOF
)"
[ -n "$ATTEMPT" ] || ATTEMPT="users=;submission="

# From inside source/, `python -m grader.cli` runs the bundled grader (with the reference beside it).
(cd "$SRC" && "$PY" -m grader.cli grade "$target" --out "$OUT" --jobs 1 ${RUBRIC[@]+"${RUBRIC[@]}"} \
    --per-student-secret --attempt "$ATTEMPT" --quiet) >"$LOG" 2>&1
rc=$?
if [ "$rc" -ne 0 ]; then
    fallback error "the grader stopped with exit status $rc: $(tail -n 5 "$LOG" | tr '\n' ' ' | cut -c1-1500)"
    exit 0
fi
mapfile -t graded < <(find "$OUT" -mindepth 2 -maxdepth 2 -type f -name results.json | sort)
if [ "${#graded[@]}" -ne 1 ]; then
    fallback error "expected the results of one submission, found ${#graded[@]}"
    exit 0
fi
if ! "$PY" -c 'import json, sys; d = json.load(open(sys.argv[1])); assert isinstance(d.get("tests"), list)' "${graded[0]}"; then
    fallback error "the grader wrote an unreadable results.json"
    exit 0
fi
cp "${graded[0]}" "$RESULTS/results.json.tmp" && mv "$RESULTS/results.json.tmp" "$RESULTS/results.json"
"$PY" -c 'import json, sys; d = json.load(open(sys.argv[1])); print("graded:", d["score"], "points;", d.get("extra_data", {}).get("status"))' "$RESULTS/results.json"
exit 0
"""


def _grading_deps() -> list[str]:
    import tomllib

    main = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = [d for d in main["project"].get("dependencies", [])
            if not re.split(r"[<>=!~; \[]", d, maxsplit=1)[0].lower() in NOT_FOR_GRADING]
    if not any(d.lower().startswith("threadpoolctl") for d in deps):
        deps.append("threadpoolctl>=3.1")
    return deps


def _shell_quote(s: str) -> str:
    return "'" + s.replace("'", "'\"'\"'") + "'"


def build_gradescope_bundle(out_zip: Path, rubric: str | None) -> Path:
    """Write the Gradescope autograder zip: setup.sh, run_autograder and source/ (the whole project)."""
    from .scoring.rubric import DEFAULT, load_rubric

    out_zip = Path(out_zip).resolve()
    if load_rubric(rubric).late is not None:  # refuses an invalid rubric now rather than on Gradescope
        raise ReleaseError("the rubric has a [late] table, which grader grade applies to a batch; on Gradescope "
                           "set the late policy in the assignment's settings and bundle a rubric without [late]")
    rubric_bytes = Path(rubric).read_bytes() if rubric else DEFAULT.read_bytes()
    files: dict[str, tuple[bytes, int]] = {}

    def add_tree(src: Path, prefix: str) -> None:
        for p in sorted(src.rglob("*")):
            rel = p.relative_to(src)
            if any(part in ("__pycache__", ".cache", ".ipynb_checkpoints") or part.endswith(".egg-info")
                   for part in rel.parts) or p.suffix in (".pyc", ".pyo") or not p.is_file() or p.is_symlink():
                continue
            files[f"{prefix}/{rel.as_posix()}"] = (p.read_bytes(), 0o644)

    for pkg in ("assignment", "solutions", "grader"):
        add_tree(ROOT / pkg, f"source/{pkg}")
    for name in MNIST_FILES:
        files[f"source/data/mnist/{name}"] = ((ROOT / "data" / "mnist" / name).read_bytes(), 0o644)
    files["source/pyproject.toml"] = ((ROOT / "pyproject.toml").read_bytes(), 0o644)
    readme = ROOT / "README.md"
    files["source/README.md"] = (readme.read_bytes() if readme.is_file()
                                 else b"# backprop-grader\n\nThe autograder, bundled for Gradescope.\n", 0o644)
    files["source/rubric.toml"] = (rubric_bytes, 0o644)
    # One secret for the whole assignment, combined in run_autograder with the student and submission
    # ids (--per-student-secret): every submission gets its own hidden cases, and a regrade of it the
    # same ones. The bundle is the instructor's; students never see it.
    files["source/grader-secret.txt"] = (secrets.token_hex(16).encode() + b"\n", 0o600)
    deps = " ".join(_shell_quote(d) for d in _grading_deps())
    files["setup.sh"] = (SETUP_SH.replace("__DEPS__", deps).encode(), 0o755)
    files["run_autograder"] = (RUN_AUTOGRADER.encode(), 0o755)

    out_zip.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_zip.parent, prefix=".tmp-", suffix=".zip")
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name in sorted(files):
                data, mode = files[name]
                info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
                info.external_attr = (stat.S_IFREG | mode) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, data)
        os.replace(tmp, out_zip)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out_zip


def extract_bundle(zip_path: Path, dest: Path) -> Path:
    """Unpack a bundle as Gradescope does (``dest/source``, ``dest/setup.sh``, ...), keeping file modes."""
    dest = Path(dest)
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            target = dest / info.filename
            if not target.resolve().is_relative_to(dest.resolve()):
                raise ReleaseError(f"bad entry {info.filename!r} in {zip_path}")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(info))
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                os.chmod(target, mode)
    return dest
