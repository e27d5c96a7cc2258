"""The catalogue of named causes: what went wrong, in words a student can act on.

Every diagnosis the grader gives is one of these ids; the known-buggy variants in
``tests/fixtures/buggy/`` each declare the id they must be given.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cause:
    id: str
    title: str
    hint: str


CAUSES: dict[str, Cause] = {c.id: c for c in [
    Cause("not_attempted", "not attempted", "The method still raises NotImplementedError: fill in its body."),
    Cause("exception", "raised an exception", "Run the public check locally and read the traceback line named here."),
    Cause("import_error", "the file could not be imported", "Fix the error named here; `python -c 'import assignment'` reproduces it."),
    Cause("missing_class", "class missing", "Keep the class names and signatures of the skeleton."),
    Cause("timeout", "took too long", "Look for an endless loop or a Python loop over array elements; use whole-array numpy operations."),
    Cause("crash", "crashed the worker", "Do not call sys.exit/os._exit or allocate huge arrays; the process was stopped."),
    Cause("wrong_type", "returned the wrong type", "Return a numpy.ndarray (a float for losses), not a list, matrix or custom object."),
    Cause("wrong_dtype", "wrong dtype", "Keep the input's floating dtype: no float64 constants forcing an upcast, no astype(int)."),
    Cause("wrong_shape", "wrong shape", "Each gradient has exactly the shape of what it differentiates; do not rely on broadcasting."),
    Cause("not_finite", "NaN or inf in the result", "Look for division by zero, log(0) or exp overflow."),
    Cause("unstable", "numerically unstable for large inputs", "Subtract the row maximum before exp (logsumexp trick); for the logistic loss use np.logaddexp(0, z)."),
    Cause("transposed", "transposed", "The result is the transpose of the right one: check the order of the matrix product (X.T @ G, G @ W.T)."),
    Cause("bias_not_summed", "bias gradient not summed over the batch", "b is shared by every row, so dL/db = G.sum(axis=0) with shape (out_features,)."),
    Cause("bias_keepdims", "bias gradient kept a batch axis", "G.sum(axis=0, keepdims=True) has shape (1, M); the gradient must have b's shape (M,)."),
    Cause("missing_keepdims", "reduction without keepdims broadcasts the wrong way", "Reduce over axis=1 with keepdims=True so an (N, 1) result lines up with the rows of (N, K)."),
    Cause("wrong_axis", "reduced over the wrong axis", "Each row (sample) is independent: reduce over axis=1 (the classes), not axis=0 or the whole array."),
    Cause("scale_N", "N times too large (mean missing)", "The loss is a mean over the batch: divide by N (once)."),
    Cause("scale_1_over_N", "N times too small (divided by N once too often)", "Divide by N only where the mean is taken; a layer's backward sums over the batch, it does not average."),
    Cause("sign", "sign flipped", "Check the sign: the negative log-likelihood has a minus, and gradients point uphill."),
    Cause("accumulates", "gradients accumulate across backward calls", "Assign parameter gradients (=), do not add to them (+=): a second backward must give the same values."),
    Cause("ignores_upstream", "ignores the upstream gradient", "backward must multiply by grad_output (the chain rule); do not assume it is all ones."),
    Cause("upstream_scale_ignored", "ignores grad_output", "Multiply the gradient by the scalar grad_output passed to backward."),
    Cause("modifies_input", "modifies its input in place", "Never write into an argument (X[X < 0] = 0, G *= ...); build a new array instead."),
    Cause("relu_at_zero", "wrong derivative at exactly 0", "The derivative of ReLU at 0 is taken as 0: use X > 0, not X >= 0."),
    Cause("wrong_reduction", "mean and sum reductions mixed up", "reduction='sum' adds the per-sample losses; 'mean' divides that sum by N."),
    Cause("wrong_index", "picks the wrong entries", "Pick one log-probability per row: log_probs[np.arange(N), target]."),
    Cause("softmax_jacobian", "wrong log-softmax Jacobian", "dL/dT = G - softmax(T) * G.sum(axis=1, keepdims=True): every output of a row depends on every input of that row."),
    Cause("stale_cache", "backward uses a stale forward", "Cache what backward needs in every forward call, so backward always uses the most recent one."),
    Cause("wrong_values", "wrong values", "The values differ from the correct ones with no known pattern; derive the formula again on a 2x3 example."),
    Cause("too_slow", "too slow", "Vectorise: no Python loops over samples or elements."),
    Cause("inconsistent_training", "training gradients not those of the submitted layers", "During MNIST training the gradients returned were not what backpropagation through your layers gives (a gradient far too large, or one that contradicts layers which pass their own checks); the run is flagged for review."),
    Cause("not_learning", "the network does not learn", "Training with your layers did not reach the expected accuracy; check the gradient checks of each layer first."),
]}
