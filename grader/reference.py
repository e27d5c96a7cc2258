"""The trusted implementations of an assignment, built in one place (issue 17): the reference (what
every check compares against), the untouched skeleton and the known-buggy variants (``grader
validate``). Pipeline, validate, the student check and the release all call these functions.

Trusted code only: everything here runs in the grader's own process.
"""
from __future__ import annotations

import importlib
from functools import lru_cache
from pathlib import Path
from types import ModuleType

from .sandbox.client import LocalImpl
from .spec import AssignmentSpec, current_spec, import_package_dir


def _package(spec: AssignmentSpec, which: str) -> str:
    """Import name of the reference (``which="reference"``) or the student skeleton package."""
    if which == "reference":
        name, directory = spec.reference_package, spec.reference_dir
    else:
        name, directory = spec.student_package, spec.student_dir
    return name if directory is None else import_package_dir(directory, which)


def package_modules(spec: AssignmentSpec, which: str = "reference") -> dict[str, ModuleType]:
    """Student module name -> that module of the reference (or of the skeleton, ``which="skeleton"``)."""
    pkg = _package(spec, which)
    modules = dict.fromkeys(c.module for c in spec.components)
    return {m: importlib.import_module(f"{pkg}.{m}") for m in modules}


def classes_of(spec: AssignmentSpec, which: str = "reference") -> dict[str, type]:
    """Component id -> the class of that name in its module of the reference (or skeleton)."""
    mods = package_modules(spec, which)
    return {c.id: getattr(mods[c.module], c.id) for c in spec.components
            if isinstance(getattr(mods[c.module], c.id, None), type)}


def package_dir(spec: AssignmentSpec, which: str = "reference") -> Path:
    """The folder of the reference (or of the skeleton): a submission made of the reference's files."""
    directory = spec.reference_dir if which == "reference" else spec.student_dir
    if directory is not None:
        return directory
    name = spec.reference_package if which == "reference" else spec.student_package
    return Path(importlib.import_module(name).__file__).resolve().parent


def has_reference(spec: AssignmentSpec) -> bool:
    """Whether the reference solution is present (the student release ships none)."""
    if spec.reference_dir is not None:
        return spec.reference_dir.is_dir()
    try:
        importlib.import_module(spec.reference_package)
    except ImportError:
        return False
    return True


def reference_impl(spec: AssignmentSpec | None = None) -> LocalImpl:
    """The reference behind the oracle interface, built once per assignment; without the reference
    (the student release) the recorded public answers replay instead."""
    return _reference_impl(spec or current_spec())


@lru_cache(maxsize=8)
def _reference_impl(spec: AssignmentSpec) -> LocalImpl:
    if not has_reference(spec):  # the student release: no solutions/, the public checks replay recorded answers
        from .sandbox.recorded import RecordedImpl

        recorded = spec.recorded_reference or Path(__file__).resolve().parent / "checks" / "public_reference.npz"
        return RecordedImpl.load(recorded)
    return LocalImpl(classes_of(spec, "reference"), label="reference")


def skeleton_impl(spec: AssignmentSpec | None = None) -> LocalImpl:
    """The untouched student package (every method raises ``NotImplementedError``)."""
    return LocalImpl(classes_of(spec or current_spec(), "skeleton"))


def variant_impl(mod, spec: AssignmentSpec | None = None) -> LocalImpl:
    """The reference with the classes a known-buggy variant module defines put in their place."""
    classes = classes_of(spec or current_spec(), "reference")
    for name in classes:
        if isinstance(getattr(mod, name, None), type):
            classes[name] = getattr(mod, name)
    return LocalImpl(classes, label=f"variant {mod.__name__}")
