"""Running one input case through an implementation, and judging each part of the answer.

A :class:`LayerCase` is everything needed to exercise a layer once: constructor arguments, the
parameters the grader sets (never the student's own initialisation), the forward inputs and the
upstream gradient. :func:`execute` performs new → set parameters → forward → backward → gradients
on an implementation and records each answer or the error it raised, so the same run serves the
forward, input-gradient and parameter-gradient checks.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..diagnosis import Finding, diagnose_array
from ..sandbox.oracle import Oracle, StudentError
from ..sandbox.protocol import NumpyScalar
from .base import FD_TOL, TOL32, TOL64, CaseResult, error_case, finding_case


@dataclass(frozen=True)
class LayerCase:
    cls: str
    ctor: tuple
    params: dict[str, np.ndarray]
    inputs: tuple
    upstream: Any                     #: G (array) or grad_output (float) for losses
    label: str
    loss: bool = False                #: forward returns a scalar
    input_names: tuple[str, ...] = ("X",)

    @property
    def dtype(self) -> np.dtype:
        return np.asarray(self.inputs[0]).dtype

    @property
    def batch(self) -> int:
        return int(np.shape(self.inputs[0])[0]) if np.ndim(self.inputs[0]) else 1

    def astype(self, dtype) -> "LayerCase":
        cast = lambda a: a.astype(dtype) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a
        return replace(self, params={k: cast(v) for k, v in self.params.items()},
                       inputs=tuple(cast(a) for a in self.inputs),
                       upstream=cast(self.upstream) if isinstance(self.upstream, np.ndarray) else self.upstream)

    def with_upstream(self, upstream) -> "LayerCase":
        return replace(self, upstream=upstream)


@dataclass
class Run:
    forward: Any = None
    backward: Any = None
    grads: Any = None
    backward2: Any = None
    grads2: Any = None
    modified: list[str] = field(default_factory=list)


def execute(impl: Oracle, case: LayerCase, *, readonly: bool = False, echo: bool = False, twice: bool = False,
            forwards: tuple = ()) -> Run:
    """Run ``case`` on ``impl``; ``forwards`` are extra forward inputs run *before* the real one."""
    run = Run()
    try:
        h = impl.new(case.cls, *case.ctor)
        for name, value in case.params.items():
            impl.set(h, name, value.copy())
    except StudentError as exc:
        run.forward = run.backward = run.grads = exc
        return run
    ro = tuple(readonly and isinstance(a, np.ndarray) for a in case.inputs)
    try:
        for extra in forwards:
            impl.call(h, "forward", *extra)
        rep = impl.call_ex(h, "forward", *case.inputs, readonly=ro, echo=echo)
        run.forward = rep.value
        if rep.modified:
            run.modified += [case.input_names[i] for i, m in enumerate(rep.modified) if m and i < len(case.input_names)]
    except StudentError as exc:
        run.forward = run.backward = run.grads = exc
        return run
    g_ro = (readonly and isinstance(case.upstream, np.ndarray),)
    try:
        rep = impl.call_ex(h, "backward", case.upstream, readonly=g_ro, echo=echo)
        run.backward = rep.value
        if rep.modified and rep.modified[0]:
            run.modified.append("grad_output")
    except StudentError as exc:
        run.backward = exc
    if case.params and isinstance(run.backward, StudentError):
        run.grads = run.backward  # the gradients of a backward that raised are not its answer
    elif case.params:
        try:
            run.grads = impl.call(h, "gradients")
        except StudentError as exc:
            run.grads = exc
    if twice and not isinstance(run.backward, StudentError):
        try:
            run.backward2 = impl.call(h, "backward", case.upstream)
            if case.params:
                run.grads2 = impl.call(h, "gradients")
        except StudentError as exc:
            run.backward2 = run.grads2 = exc
    return run


def reference_run(ref: Oracle, case: LayerCase, **kw) -> Run:
    run = execute(ref, case, **kw)
    for part in ("forward", "backward", "grads"):
        if isinstance(getattr(run, part), StudentError):
            raise RuntimeError(f"the reference failed on {case.cls} {case.label}: {getattr(run, part)}")
    return run


def value_of(v):
    if isinstance(v, NumpyScalar):
        return v.array
    if type(v) is float:
        return np.asarray(v)
    return v


def judge(part_value, desired, *, label: str, what: str, case: LayerCase, mutants=(), scalar_ok=False,
          bias_of=None, unstable=False, tol: float | None = None) -> CaseResult:
    """A case result for one returned value (or the error raised instead)."""
    if isinstance(part_value, StudentError):
        return error_case(label, part_value, what)
    dtype = case.dtype
    if tol is None:
        tol = TOL32 if dtype == np.float32 else TOL64
    f = diagnose_array(part_value, value_of(desired), tol=tol, what=what, scalar_ok=scalar_ok,
                       dtype=dtype, mutants=mutants, batch=case.batch, bias_of=bias_of,
                       unstable_context=unstable)
    return finding_case(label, f)


def grad_of(run: Run, name: str):
    if isinstance(run.grads, StudentError):
        return run.grads
    if not isinstance(run.grads, dict):
        return run.grads  # diagnosed as wrong type
    if name not in run.grads:
        return StudentError({"kind": "exception", "type": "KeyError",
                             "message": f"gradients() has no key {name!r}", "where": ""})
    return run.grads[name]


# --- directional central differences of the reference forward ------------------------------------

def _scalar_objective(ref, case: LayerCase, inputs, params) -> float:
    h = ref.new(case.cls, *case.ctor)
    for k, v in params.items():
        ref.set(h, k, v)
    out = value_of(ref.call(h, "forward", *inputs))
    if case.loss:
        return float(case.upstream) * float(out)
    return float(np.sum(np.asarray(case.upstream, dtype=np.float64) * np.asarray(out, dtype=np.float64)))


def fd_finding(ref, case: LayerCase, grad, wrt: str, rng: np.random.Generator, *, what: str,
               step: float = 1e-5) -> Finding:
    """Compare ``<grad, V>`` with the central difference of the reference forward along random V."""
    grad = np.asarray(value_of(grad), dtype=np.float64)
    for _ in range(2):
        params = {k: v.astype(np.float64) for k, v in case.params.items()}
        inputs = list(case.inputs)
        base = params[wrt] if wrt in params else np.asarray(inputs[0], dtype=np.float64)
        V = rng.standard_normal(base.shape)
        plus, minus = np.asarray(base + step * V), np.asarray(base - step * V)
        if wrt in params:
            fp = _scalar_objective(ref, case, inputs, dict(params, **{wrt: plus}))
            fm = _scalar_objective(ref, case, inputs, dict(params, **{wrt: minus}))
        else:
            fp = _scalar_objective(ref, case, [plus] + inputs[1:], params)
            fm = _scalar_objective(ref, case, [minus] + inputs[1:], params)
        fd = (fp - fm) / (2 * step)
        an = float(np.sum(grad * V))
        # <g, V> for a standard normal V is typically of size ||g||: a near-orthogonal draw must not
        # turn rounding noise into a large relative error.
        err = abs(fd - an) / max(abs(fd), abs(an), float(np.linalg.norm(grad)), 1e-8)
        if not err <= FD_TOL:
            return Finding(False, "wrong_values",
                           f"{what} disagrees with central differences of the forward pass along a random "
                           f"direction (relative error {err:.2g}, tolerance {FD_TOL:g})")
    return Finding(True)


def modified_case(label: str, run: Run, method_hint: str) -> CaseResult | None:
    if run.modified:
        names = ", ".join(sorted(set(run.modified)))
        return CaseResult(label, False, "modifies_input",
                          f"{method_hint} changed its argument(s) {names} in place")
    return None
