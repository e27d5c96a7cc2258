"""Validation, comparison and diagnosis of one returned value against the correct one.

Order of the questions asked about a student's value ``a`` and the correct value ``n``:

1. Did a value come back at all, of exact type ``numpy.ndarray`` (or a number for losses)?
2. Right dtype? Right shape (exactly: no broadcasting)? Shape relations name a bug: the transpose's
   shape, the upstream gradient's shape for a bias, ``(1, M)`` from ``keepdims``.
3. Finite?
4. Within tolerance? Written positively: ``err <= tol`` passes, so NaN never passes.
5. If not: does it equal a known wrong answer (a *mutant* the check computed, e.g. the reference run
   with an all-ones upstream gradient), the transpose, or the right answer times a constant?
   The least-squares scale ``<a, n> / <n, n>`` with the cosine of the angle tells a factor N, 1/N
   or -1 apart from an unrelated error. A scalar (a loss) gets no scale: any two numbers are
   proportional, so only its known mutants are named.

Hidden cases never reveal ``n``: messages give error statistics, shapes and dtypes only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..sandbox.protocol import NumpyScalar, Opaque


@dataclass(frozen=True)
class Finding:
    """The verdict on one value: ``ok`` or a cause id with a sentence of detail."""

    ok: bool
    cause: str | None = None
    detail: str = ""
    #: other causes this very value is equally consistent with (e.g. a (1,) bias gradient for N = 1 is
    #: both "not summed" and "keepdims"); the check then takes the one its other cases name
    also: tuple = ()


OK = Finding(True)


def error_stats(actual: np.ndarray, desired: np.ndarray, tol: float) -> tuple[float, str]:
    """Normwise relative error ``max|a - n| / max|n|`` and a numpy.testing-style summary."""
    a = np.asarray(actual, dtype=np.float64)
    n = np.asarray(desired, dtype=np.float64)
    diff = np.abs(a - n)
    scale = float(np.max(np.abs(n))) if n.size else 0.0
    worst = float(np.max(diff)) if diff.size else 0.0
    err = worst / scale if scale > 0 else worst
    if not np.isfinite(err):
        err = float("inf")
    bad = int(np.count_nonzero(~(diff <= tol * max(scale, 1e-300))))
    nz = np.abs(n) > 0
    max_rel = float(np.max(diff[nz] / np.abs(n[nz]))) if np.any(nz) else float("nan")
    rel_text = f"{max_rel:.3g}" if np.isfinite(max_rel) else "n/a"
    if np.any(diff[~nz] > 0):
        rel_text += " (and nonzero where the correct value is exactly 0)"
    summary = (f"{bad} of {n.size} entries ({100.0 * bad / max(n.size, 1):.0f}%) differ; "
               f"largest absolute difference {worst:.3g}, largest relative {rel_text}, "
               f"relative error {err:.3g} against a tolerance of {tol:g}")
    return err, summary


def _as_number_array(value, *, scalar_ok: bool):
    """Unwrap what may stand for an array; returns (array or None, problem description)."""
    if isinstance(value, NumpyScalar):
        return (value.array, "") if scalar_ok else (None, f"a numpy scalar ({value.array.dtype}), not an ndarray")
    if type(value) is np.ndarray:
        return value, ""
    if scalar_ok and type(value) in (float, int) and not isinstance(value, bool):
        return np.asarray(float(value)), ""
    if isinstance(value, Opaque):
        return None, f"an object of type {value.type_name}"
    if value is None:
        return None, "None (is a `return` missing?)"
    return None, f"a {type(value).__name__}"


def diagnose_array(value, desired: np.ndarray, *, tol: float, what: str, scalar_ok: bool = False,
                   dtype: np.dtype | None = None, mutants=(), batch: int | None = None,
                   bias_of: tuple | None = None, unstable_context: bool = False) -> Finding:
    """Validate ``value`` and compare it with ``desired``; name the cause when it is wrong.

    Parameters
    ----------
    mutants : iterable of (cause id, array)
        Known wrong answers for this very input; an exact match names its cause.
    batch : int
        N, to recognise a factor N or 1/N (ignored when N == 1).
    bias_of : tuple
        The upstream gradient's shape, when ``value`` is a bias gradient.
    unstable_context : bool
        Large inputs: NaN/inf or inaccuracy is reported as numerical instability.
    """
    desired = np.asarray(desired)
    dtype = np.dtype(dtype) if dtype is not None else desired.dtype
    arr, problem = _as_number_array(value, scalar_ok=scalar_ok)
    if arr is None:
        return Finding(False, "wrong_type", f"{what} came back as {problem}; expected a numpy.ndarray"
                       + (" or a float" if scalar_ok else "") + f" of shape {desired.shape}")
    if arr.dtype.kind not in "f":
        return Finding(False, "wrong_dtype", f"{what} has dtype {arr.dtype}; expected {dtype}")
    if arr.shape != desired.shape and not (scalar_ok and arr.size == 1 and desired.size == 1 and arr.ndim == 0):
        return _shape_finding(arr, desired, what, bias_of, mutants, tol)
    if arr.dtype != dtype and not (scalar_ok and arr.ndim == 0):  # a scalar's precision is not policed
        return Finding(False, "wrong_dtype", f"{what} has dtype {arr.dtype}; expected {dtype} "
                       f"(the input's dtype)")
    if not np.all(np.isfinite(arr)):
        n_bad = int(np.count_nonzero(~np.isfinite(arr)))
        cause = "unstable" if unstable_context else "not_finite"
        return Finding(False, cause, f"{what} holds {n_bad} NaN or inf value(s) of {arr.size}")
    err, summary = error_stats(arr, desired, tol)
    if err <= tol:
        return OK
    # Wrong values: try to name the bug.
    hits = [(cause, note) for cause, candidate, note in _mutant_items(mutants) if _equals(arr, candidate, tol)]
    if hits:
        cause, note = hits[0]
        return Finding(False, cause, f"{what}{note}: {summary}", _others(cause, [c for c, _ in hits]))
    if desired.size == 1:
        return _scalar_finding(arr, desired, what, batch, err, tol, unstable_context)
    a = arr.astype(np.float64).ravel()
    n = desired.astype(np.float64).ravel()
    if arr.ndim == 2 and arr.shape[0] == arr.shape[1] and error_stats(arr.T, desired, max(tol, 1e-6))[0] <= max(tol, 1e-6):
        return Finding(False, "transposed", f"{what} equals the transpose of the correct value")
    nn, aa = float(n @ n), float(a @ a)
    if nn > 0 and aa > 0:
        s = float(a @ n) / nn
        cos = float(a @ n) / np.sqrt(nn * aa)
        if cos > 1 - 1e-6 or cos < -1 + 1e-6:
            named = _scale_cause(s, batch)
            if named:
                return Finding(False, named[0], f"{what} is the correct value times {named[1]}")
            return Finding(False, "wrong_values", f"{what} is the correct value times {s:.4g}")
    if unstable_context:
        return Finding(False, "unstable", f"{what} is inaccurate for large inputs: {summary}")
    return Finding(False, "wrong_values", f"{what}: {summary}")


def _equals(arr, candidate, tol) -> bool:
    c = np.asarray(candidate, dtype=np.float64)
    return c.shape == arr.shape and bool(np.all(np.isfinite(c))) and \
        error_stats(arr, c, max(tol, 1e-6))[0] <= max(tol, 1e-6)


def _others(cause, causes) -> tuple:
    return tuple(dict.fromkeys(c for c in causes if c != cause))


def _mutant_items(mutants):
    """Known wrong answers as (cause, array, note): a mutant may carry a few words saying what it is."""
    for m in mutants:
        cause, candidate = m[0], m[1]
        note = f" ({m[2]})" if len(m) > 2 and m[2] else ""
        yield cause, candidate, note


def _scalar_finding(arr, desired, what, batch, err, tol, unstable_context) -> Finding:
    """A wrong scalar (a loss). Any two numbers are proportional, so no least-squares scale: only the
    known mutants of a mean (the sum, the mean taken twice, the sign) are named; otherwise the value
    simply differs."""
    a, n = float(np.ravel(arr)[0]), float(np.ravel(desired)[0])

    def near(x, y):
        return abs(x - y) <= max(tol, 1e-6) * max(abs(y), 1e-300)
    if near(a, -n):
        return Finding(False, "sign", f"{what} has the opposite sign of the correct value")
    if batch and batch > 1:
        if near(a, n * batch):
            return Finding(False, "scale_N", f"{what} is N = {batch} times the correct value (a sum, not a mean)")
        if near(a, n / batch):
            return Finding(False, "scale_1_over_N", f"{what} is the correct value divided by N = {batch} once more")
    if unstable_context:
        return Finding(False, "unstable", f"{what} is inaccurate for large inputs: relative error {err:.3g} "
                       f"against a tolerance of {tol:g}")
    return Finding(False, "wrong_values", f"{what} differs from the correct value: relative error {err:.3g} "
                   f"against a tolerance of {tol:g}")


def _scale_cause(s: float, batch: int | None):
    def near(x, y):
        return abs(x - y) <= 1e-6 * max(1.0, abs(y))
    if near(s, -1.0):
        return "sign", "-1"
    if batch and batch > 1:
        if near(s, batch):
            return "scale_N", f"N = {batch}"
        if near(s, 1.0 / batch):
            return "scale_1_over_N", f"1/N = 1/{batch}"
        if near(s, -batch) or near(s, -1.0 / batch):
            return "sign", f"{s:.4g} (sign and a factor of N)"
    return None


def _shape_finding(arr, desired, what, bias_of, mutants, tol) -> Finding:
    got, want = arr.shape, desired.shape
    base = f"{what} has shape {got}; expected {want}"
    hits = [(c, note) for c, candidate, note in _mutant_items(mutants) if _equals(arr, candidate, tol)]
    named = [c for c, _ in hits]
    if bias_of is not None:
        keep = got == (1,) + tuple(want)  # with N == 1 the batch axis and a kept axis look the same
        if got == tuple(bias_of):
            words = (" (for N = 1 the batch axis and a kept axis of size 1 look the same)" if keep
                     else ": it still has the batch axis (one row per sample)")
            return Finding(False, "bias_not_summed", base + words,
                           _others("bias_not_summed", (["bias_keepdims"] if keep else []) + named))
        if keep:
            return Finding(False, "bias_keepdims", base, _others("bias_keepdims", named))
    if want == () and got == (1,):
        return Finding(False, "scalar_keepdims", base + ": a one-element array, not a number",
                       _others("scalar_keepdims", named))
    if hits:
        return Finding(False, hits[0][0], base + hits[0][1], _others(hits[0][0], named))
    if len(got) == 2 and got == want[::-1]:
        return Finding(False, "transposed", base + " (the transpose's shape)")
    return Finding(False, "wrong_shape", base)
