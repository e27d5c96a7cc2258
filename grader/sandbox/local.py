"""The in-process oracle: trusted classes (the reference, the known-buggy variants, ``--no-sandbox``)."""
from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np

from .oracle import OracleBase
from .shm import Arena
from .worker import Dispatcher


class LocalImpl(OracleBase):
    """Classes executed in this process (trusted code only: the reference or test fixtures)."""

    def __init__(self, classes: dict[str, type] | None = None, label: str = "in-process", *,
                 dispatcher: Dispatcher | None = None) -> None:
        self.label = label
        self._d = dispatcher or Dispatcher(classes=classes)
        self._generation = 0
        self.isolation = {"in-process": "no isolation: trusted code only"}

    @classmethod
    def from_modules(cls, *modules, label: str = "in-process") -> "LocalImpl":
        """The assignment's classes (``grader/spec.py``) found in these modules."""
        from ..spec import current_spec

        classes = {}
        for m in modules:
            for name in current_spec().student_modules:
                if isinstance(getattr(m, name, None), type):
                    classes[name] = getattr(m, name)
        return cls(classes, label=label)

    @classmethod
    def from_package_dir(cls, package_dir: Path, label: str = "in-process (unsandboxed)", *,
                         student_modules: dict[str, str] | None = None) -> "LocalImpl":
        """A prepared submission imported into this process: trusted code only (``--no-sandbox``).
        ``student_modules``: the assignment's class -> module map (default: the current spec's)."""
        from ..spec import current_spec
        from .worker import install_package

        student_modules = student_modules or current_spec().student_modules
        name = f"_bpg_submission_{uuid.uuid4().hex}"
        install_package(str(package_dir), name, student_modules, current_spec().provided)
        return cls(label=label, dispatcher=Dispatcher(package_dir=str(package_dir), package=name,
                                                      student_modules=student_modules))

    failed_methods: dict = {}  # in-process calls cannot hang the grader into a restart

    def training_arena(self) -> Arena:
        return self._d.arena

    def request(self, head, arrays, *, cls, method, timeout=None):
        # Round-trip through the wire encoding, so values look exactly as they do from a worker.
        arrays = [np.array(a, copy=True) for a in arrays]
        reply, out = self._d.handle(head, arrays)
        return reply, [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in out]

    def close(self) -> None:
        self._d.objects.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
