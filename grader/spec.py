"""The assignment as data: what the student writes, what is provided, what is checked (issue 17).

One TOML file (the default: ``grader/assignments/backprop.toml``) names the student files, the provided
files, the components (id, student module, task number, short name), the reference package, the
end-to-end tests and the components each one trains, the default rubric, the check modules and the
known-buggy variants. Every other module of the grader reads it from here, so a second homework is a
second file (``grader --assignment PATH`` or ``$GRADER_ASSIGNMENT``), not a fork of the grader.

A component id is also the name of the class the student writes (``impl.new("Linear")``).
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .tomlfile import read_toml


DEFAULT_PATH = Path(__file__).resolve().parent / "assignments" / "backprop.toml"
ENV = "GRADER_ASSIGNMENT"  #: path of the spec to use when none was activated in this process


class SpecError(ValueError):
    """The assignment spec is invalid; the message says where."""


@dataclass(frozen=True)
class Component:
    """One class the student writes, checked by its own check module."""

    id: str            #: the component id (first tag in results.json) and the class name
    module: str        #: the student module defining it, without ``.py``
    task: int          #: its task number in the skeleton: the order of the feedback
    short: str         #: column header in summary.md

    @property
    def display_name(self) -> str:
        return self.id


@dataclass(frozen=True)
class EndToEnd:
    """A test that trains a network made of student components (the MNIST tests)."""

    id: str                    #: the test id, also a gradebook column
    protocol: str              #: ``module:attribute`` of its training protocol
    trains: tuple[str, ...]    #: the components the network is made of
    short: str

    def load_protocol(self):
        mod, _, attr = self.protocol.partition(":")
        return getattr(importlib.import_module(mod), attr)


@dataclass(frozen=True)
class ReleaseSpec:
    """What the student release ships beside the skeleton and the public checks (``[release]``, every
    key optional). Paths are relative to the spec's root and keep that place in the release."""

    readme: str | None = None            #: the students' README (``__PYTHON__`` is filled in); None: a generic one
    notebooks: str | None = None         #: a folder of notebooks, shipped with their outputs stripped
    data: tuple[str, ...] = ()           #: data files shipped in the release and in the Gradescope bundle
    project: str = ""                    #: the release's distribution name (pyproject.toml)
    description: str = ""


@dataclass(frozen=True)
class AssignmentSpec:
    name: str
    path: Path                          #: the spec file
    root: Path                          #: what the relative paths below start from
    student_package: str                #: import name of the student package
    student_dir: Path | None            #: the trusted copy of the student package (None: import it)
    student_files: tuple[str, ...]
    provided_files: tuple[str, ...]
    provided_names: tuple[str, ...]
    reference_package: str
    reference_dir: Path | None          #: None: the package importable as ``reference_package``
    recorded_reference: Path | None     #: the reference's public answers, for a release without it
    check_modules: tuple[str, ...]
    rubric: Path
    buggy_dir: Path | None
    components: tuple[Component, ...]
    end_to_end: tuple[EndToEnd, ...]
    causes: Path | None = None          #: the assignment's own named causes (TOML), beside the generic ones
    release: ReleaseSpec = ReleaseSpec()
    digest: str = ""                    #: sha256 of the spec file's bytes (run.json, resume keys)

    # --- derived views, one per consumer -------------------------------------------------------
    @property
    def component_ids(self) -> tuple[str, ...]:
        """Components in column order."""
        return tuple(c.id for c in self.components)

    @property
    def end_to_end_ids(self) -> tuple[str, ...]:
        return tuple(e.id for e in self.end_to_end)

    @property
    def test_ids(self) -> tuple[str, ...]:
        """Every first tag of results.json, in gradebook column order."""
        return self.component_ids + self.end_to_end_ids

    @property
    def feedback_order(self) -> tuple[str, ...]:
        """Components by task number, then the end-to-end tests."""
        return tuple(c.id for c in sorted(self.components, key=lambda c: c.task)) + self.end_to_end_ids

    @property
    def short_names(self) -> dict[str, str]:
        return {x.id: x.short for x in (*self.components, *self.end_to_end)}

    @property
    def student_modules(self) -> dict[str, str]:
        """Class name -> student module (without ``.py``): what the worker imports."""
        return {c.id: c.module for c in self.components}

    @property
    def provided(self) -> dict[str, list[str]]:
        """The provided files as the worker installs them: module names, and the names they give the
        student package (``from assignment import Module``)."""
        return {"modules": [Path(f).stem for f in self.provided_files], "names": list(self.provided_names)}

    @property
    def classes_of_file(self) -> dict[str, tuple[str, ...]]:
        """Student file -> the classes graded in it (notebook intake)."""
        return {f: tuple(c.id for c in self.components if f"{c.module}.py" == f) for f in self.student_files}

    @property
    def trained_by(self) -> dict[str, str]:
        """Component -> the end-to-end test its class takes part in (if any)."""
        return {c: e.id for e in self.end_to_end for c in e.trains}

    def files_phrase(self, joiner: str = "and") -> str:
        """``layers.py and logistic_regression.py``: the student files in a sentence."""
        fs = list(self.student_files)
        return fs[0] if len(fs) == 1 else f"{', '.join(fs[:-1])} {joiner} {fs[-1]}"

    @property
    def is_default(self) -> bool:
        return self.path == DEFAULT_PATH

    def load_checks(self) -> list[str]:
        """Import the check modules (registering their checks); the ids of this assignment's checks."""
        from .checks.registry import REGISTRY

        for name in self.check_modules:
            _import_checks(name, self.root)
        ids = set(self.component_ids)
        return [cid for cid, s in REGISTRY.items() if s.component in ids]

    def protocols(self) -> dict:
        """End-to-end test id -> its training protocol."""
        return {e.id: e.load_protocol() for e in self.end_to_end}


def _import_checks(name: str, root: Path):
    if not name.endswith(".py"):
        return importlib.import_module(name)
    path = (root / name).resolve()
    alias = f"_bpg_checks_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}_{path.stem}"
    if alias in sys.modules:
        return sys.modules[alias]
    spec = importlib.util.spec_from_file_location(alias, path)
    if spec is None or spec.loader is None:
        raise SpecError(f"check module {path} cannot be imported")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[alias] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        del sys.modules[alias]
        raise
    return mod


def import_package_dir(directory: Path, label: str):
    """The package in ``directory`` imported under a private name (a second assignment's reference
    must not take the place of this one's ``solutions``); its modules load as ``<name>.<module>``."""
    directory = directory.resolve()
    alias = f"_bpg_{label}_{hashlib.sha256(str(directory).encode()).hexdigest()[:12]}"
    if alias in sys.modules:
        return alias
    init = directory / "__init__.py"
    spec = importlib.util.spec_from_file_location(alias, init if init.is_file() else None,
                                                  submodule_search_locations=[str(directory)])
    if spec is None:
        raise SpecError(f"{directory} is not a Python package")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[alias] = mod
    if init.is_file():
        spec.loader.exec_module(mod)
    return alias


# --- loading ---------------------------------------------------------------------------------------

def _str_list(table: dict, key: str, where: str, default=()) -> tuple[str, ...]:
    v = table.get(key, list(default))
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        raise SpecError(f"{where}: {key} must be a list of non-empty strings")
    return tuple(v)


def _components(data: dict, where: str) -> tuple[Component, ...]:
    out = []
    for i, c in enumerate(data.get("component", [])):
        try:
            cid, module = str(c["id"]), str(c["module"])
        except (KeyError, TypeError):
            raise SpecError(f"{where}: [[component]] number {i + 1} needs an id and a module") from None
        if not cid.isidentifier():
            raise SpecError(f"{where}: component id {cid!r} must be a class name")
        out.append(Component(cid, module, int(c.get("task", i + 1)), str(c.get("short", cid))))
    if not out:
        raise SpecError(f"{where}: no [[component]]")
    return tuple(out)


def _end_to_end(data: dict, where: str, ids: set[str]) -> tuple[EndToEnd, ...]:
    out = []
    for e in data.get("end_to_end", []):
        try:
            eid, proto = str(e["id"]), str(e["protocol"])
        except (KeyError, TypeError):
            raise SpecError(f"{where}: every [[end_to_end]] needs an id and a protocol") from None
        trains = _str_list(e, "trains", f"{where} [[end_to_end]] {eid}")
        unknown = sorted(set(trains) - ids)
        if unknown or not trains:
            raise SpecError(f"{where}: end-to-end test {eid} trains unknown components {unknown}")
        out.append(EndToEnd(eid, proto, trains, str(e.get("short", eid))))
    return tuple(out)


def _release(table: dict, where: str) -> ReleaseSpec:
    def rel(key: str) -> str | None:
        v = table.get(key)
        if v is not None and (not isinstance(v, str) or not v or Path(v).is_absolute() or ".." in Path(v).parts):
            raise SpecError(f"{where}: [release] {key} must be a path inside the assignment's root")
        return v

    data = _str_list(table, "data", f"{where} [release]")
    if any(Path(d).is_absolute() or ".." in Path(d).parts for d in data):
        raise SpecError(f"{where}: [release] data must be paths inside the assignment's root")
    return ReleaseSpec(rel("readme"), rel("notebooks"), data, str(table.get("project", "")),
                       str(table.get("description", "")))


def _check(spec: AssignmentSpec, where: str) -> None:
    ids = spec.test_ids
    if len(set(ids)) != len(ids):
        raise SpecError(f"{where}: component and end-to-end ids must be unique: {', '.join(ids)}")
    files = set(spec.student_files)
    for c in spec.components:
        if f"{c.module}.py" not in files:
            raise SpecError(f"{where}: component {c.id} is in {c.module}.py, which is not a student file")
    if not spec.reference_package and spec.reference_dir is None:
        raise SpecError(f"{where}: [reference] needs a package (an import name) or a dir")
    if files & set(spec.provided_files):
        raise SpecError(f"{where}: a file cannot be both a student file and a provided one")


@lru_cache(maxsize=16)
def load_spec(path: str | Path) -> AssignmentSpec:
    """The spec in ``path`` (a TOML file), validated. Cached per path."""
    p = Path(path).resolve()
    data, raw = read_toml(p, "assignment spec", SpecError)
    where = f"assignment spec {p}"
    head, student, ref, checks = (data.get(k, {}) for k in ("assignment", "student", "reference", "checks"))
    root = (p.parent / str(head.get("root", "."))).resolve()

    def path_of(table: dict, key: str) -> Path | None:
        return (root / str(table[key])).resolve() if table.get(key) else None

    components = _components(data, where)
    rubric = path_of(checks, "rubric")
    if rubric is None:
        raise SpecError(f"{where}: [checks] rubric is required")
    spec = AssignmentSpec(
        name=str(head.get("name", p.stem)), path=p, root=root,
        student_package=str(student.get("package", "assignment")), student_dir=path_of(student, "dir"),
        student_files=_str_list(student, "files", where), provided_files=_str_list(student, "provided", where),
        provided_names=_str_list(student, "provided_names", where),
        reference_package=str(ref.get("package", "")), reference_dir=path_of(ref, "dir"),
        recorded_reference=path_of(ref, "recorded"), check_modules=_str_list(checks, "modules", where),
        rubric=rubric, buggy_dir=path_of(checks, "buggy"), components=components,
        end_to_end=_end_to_end(data, where, {c.id for c in components}), causes=path_of(checks, "causes"),
        release=_release(data.get("release", {}), where), digest=hashlib.sha256(raw).hexdigest())
    _check(spec, where)
    return spec


def default_spec() -> AssignmentSpec:
    return load_spec(DEFAULT_PATH)


_active: AssignmentSpec | None = None


def current_spec() -> AssignmentSpec:
    """The assignment being graded: the one activated in this process, else ``$GRADER_ASSIGNMENT``,
    else the default homework."""
    if _active is not None:
        return _active
    env = os.environ.get(ENV)
    return load_spec(env) if env else default_spec()


def spec_for(path: str | Path | None) -> AssignmentSpec:
    """The spec in ``path``, or the current one when ``path`` is None."""
    return load_spec(path) if path else current_spec()


def active_path() -> str | None:
    """The path of the current spec, or None for the default (what :class:`GradeOptions` records)."""
    s = current_spec()
    return None if s.is_default else str(s.path)


def activate(path: str | Path | None) -> AssignmentSpec:
    """Make the spec in ``path`` (None: the default) current in this process and in the processes it
    starts (through ``$GRADER_ASSIGNMENT``), and register its checks."""
    global _active
    spec = load_spec(path) if path else default_spec()
    _active = spec
    if spec.is_default:
        os.environ.pop(ENV, None)
    else:
        os.environ[ENV] = str(spec.path)
    spec.load_checks()
    return spec


@contextlib.contextmanager
def use_spec(path: str | Path | None):
    """``with use_spec(path): ...``: that assignment is current inside the block (tests, and options
    shipped to a process where another one is current). The checks it registered are unregistered
    at the end, so that code iterating over the whole registry sees only the current assignment's."""
    global _active
    from .checks.registry import REGISTRY

    saved, env = _active, os.environ.get(ENV)
    known, modules = set(REGISTRY), {m for m in sys.modules if m.startswith("_bpg_checks_")}
    try:
        yield activate(path)
    finally:
        _active = saved
        if env is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = env
        for cid in set(REGISTRY) - known:
            del REGISTRY[cid]
        for m in {m for m in sys.modules if m.startswith("_bpg_checks_")} - modules:
            del sys.modules[m]
