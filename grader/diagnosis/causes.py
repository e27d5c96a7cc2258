"""The catalogue of named causes: what went wrong, in words a student can act on.

Every diagnosis the grader gives is one of these ids; the known-buggy variants each declare the id
they must be given. Two layers (issue 17): :data:`GENERIC` holds the causes the grader's generic code
gives (run failures, symptoms, the comparison's patterns), in words that fit any assignment; the
assignment spec names a TOML file of its own causes (``[checks] causes``, one ``[id]`` table with a
``title`` and a ``hint`` each), written for its students, which add to the generic ones or replace
their wording. :data:`CAUSES` is the catalogue of the assignment being graded.
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

from ..tomlfile import read_toml


@dataclass(frozen=True)
class Cause:
    id: str
    title: str
    hint: str


#: The causes of the grader's generic code, worded for any assignment.
GENERIC: dict[str, Cause] = {c.id: c for c in [
    Cause("not_attempted", "not attempted", "The method still raises NotImplementedError: fill in its body."),
    Cause("exception", "raised an exception", "Run the public check locally and read the traceback line named here."),
    Cause("import_error", "the file could not be imported", "Fix the error named here: an error of the code itself is reproduced by `python -c 'import assignment'` run beside the package; a file the grader could not use says why (its name, place or encoding)."),
    Cause("missing_class", "class missing", "Keep the class names and signatures of the skeleton."),
    Cause("timeout", "took too long", "Look for an endless loop or a Python loop over array elements; use whole-array numpy operations."),
    Cause("crash", "crashed the worker", "Do not call sys.exit/os._exit or allocate huge arrays; the process was stopped."),
    Cause("grader_error", "the grader itself failed in this check", "Nothing to change in your code for this: the grader failed, not your submission; a resumed run grades it again."),
    Cause("wrong_type", "returned the wrong type", "Return a numpy.ndarray (a float for losses), not a list, matrix or custom object."),
    Cause("wrong_dtype", "wrong dtype", "Keep the input's floating dtype: no float64 constants forcing an upcast, no astype(int)."),
    Cause("wrong_shape", "wrong shape", "Each gradient has exactly the shape of what it differentiates; do not rely on broadcasting."),
    Cause("not_finite", "NaN or inf in the result", "Look for division by zero, log(0) or exp overflow."),
    Cause("unstable", "numerically unstable for large inputs", "Rewrite the formula so that nothing overflows for large inputs: subtract the maximum before exp, or use np.logaddexp."),
    Cause("transposed", "transposed", "The result is the transpose of the right one: check the order of the matrix product and which operand is transposed."),
    Cause("bias_not_summed", "bias gradient not summed over the batch", "b is shared by every row, so dL/db = G.sum(axis=0) with shape (out_features,)."),
    Cause("bias_keepdims", "bias gradient kept a batch axis", "G.sum(axis=0, keepdims=True) has shape (1, M); the gradient must have b's shape (M,)."),
    Cause("scale_N", "N times too large (mean missing)", "The loss is a mean over the batch: divide by N (once)."),
    Cause("scale_1_over_N", "N times too small (divided by N once too often)", "Divide by N only where the mean is taken; a layer's backward sums over the batch, it does not average."),
    Cause("sign", "sign flipped", "Check the sign: the result is the correct value times -1, so a minus of the formula is missing or doubled."),
    Cause("ignores_upstream", "ignores the upstream gradient", "backward must multiply by grad_output (the chain rule); do not assume it is all ones."),
    Cause("modifies_input", "modifies its input in place", "Never write into an argument (X[X < 0] = 0, G *= ...); build a new array instead."),
    Cause("stale_cache", "backward uses a stale forward", "Cache what backward needs in every forward call, so backward always uses the most recent one."),
    Cause("wrong_values", "wrong values", "The values differ from the correct ones with no known pattern; derive the formula again on a 2x3 example."),
    Cause("too_slow", "too slow", "Vectorise: no Python loops over samples or elements."),
    Cause("prints_too_much", "too slow: prints while training", "Remove the print statements from forward and backward (or print shapes, not whole arrays): formatting arrays on every call of training is what made it too slow."),
    Cause("inconsistent_training", "training gradients not those of the submitted layers", "During training the gradients returned were not what backpropagation through your components gives (a gradient far too large, or one that contradicts components which pass their own checks); the run is flagged for review."),
    Cause("not_learning", "the network does not learn", "Training with your layers did not reach the expected accuracy; check the gradient checks of each layer first."),
    Cause("untestable", "could not be checked", "This property is checked on your own results, which must be finite, nonzero numpy arrays: fix the value checks of this method first."),
    Cause("float32_inaccurate", "inaccurate in float32", "With float32 inputs the result should agree with your float64 result to float32 precision: compute in the input's dtype with the stable formulas."),
    Cause("mutates_cache", "backward changes what forward cached", "A second backward gave a different answer: an in-place operation (r = p; r -= y, or +=, -=, *= on a cached array) overwrote a value forward cached. Build a new array instead."),
    Cause("nonlinear_upstream", "not linear in the upstream gradient", "backward(c * G) must equal c * backward(G): multiply by the upstream gradient once; never clip, square or normalise it."),
    Cause("scalar_keepdims", "a (1,) array instead of a number", "A loss is one number: return float(total), not the shape (1,) array that keepdims=True (or [total]) gives."),
]}

class CausesError(ValueError):
    """An assignment's causes file is invalid; the message says where."""


@lru_cache(maxsize=16)
def load_causes(path: Path) -> Mapping[str, Cause]:
    """The causes in an assignment's TOML file (``[id]`` tables with ``title`` and ``hint``)."""
    data, _ = read_toml(path, "causes file", CausesError)
    out = {}
    for cid, table in data.items():
        if not re.fullmatch(r"[a-z][A-Za-z0-9_]*", cid) or not isinstance(table, dict) \
                or not all(isinstance(table.get(k), str) and table.get(k) for k in ("title", "hint")):
            raise CausesError(f"causes file {path}: [{cid}] needs an id of letters, digits and _, a title and a hint")
        out[cid] = Cause(cid, table["title"], table["hint"])
    return MappingProxyType(out)


@lru_cache(maxsize=16)
def catalogue_for(spec) -> Mapping[str, Cause]:
    """The generic causes with ``spec``'s own over them."""
    return MappingProxyType({**GENERIC, **(load_causes(spec.causes) if spec.causes is not None else {})})


class Catalogue(Mapping):
    """The catalogue of the assignment current when it is read (:func:`grader.spec.current_spec`)."""

    def _table(self) -> Mapping[str, Cause]:
        from ..spec import current_spec

        return catalogue_for(current_spec())

    def __getitem__(self, cid: str) -> Cause:
        return self._table()[cid]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())


CAUSES: Mapping[str, Cause] = Catalogue()

#: Symptom classes: what went wrong, not why. They never count as a named cause (issue 15).
SYMPTOMS = frozenset({"wrong_values", "wrong_shape", "exception", "untestable", "grader_error"})

#: Failures that stop a method from running at all; any check charges them, since no property of a
#: method that does not run can be verified.
RUN_FAILURES = frozenset({"not_attempted", "exception", "import_error", "missing_class", "timeout", "crash",
                          "untestable", "grader_error"})
