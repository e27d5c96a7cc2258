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
    Cause("grader_error", "the grader itself failed in this check", "Nothing to change in your code for this: the grader failed, not your submission; a resumed run grades it again."),
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
    # named causes added for issue 15
    Cause("untestable", "could not be checked", "This property is checked on your own results, which must be finite, nonzero numpy arrays: fix the value checks of this method first."),
    Cause("float32_inaccurate", "inaccurate in float32", "With float32 inputs the result should agree with your float64 result to float32 precision: compute in the input's dtype with the stable formulas."),
    Cause("int_labels_upcast", "integer labels turn float32 into float64", "p - y with integer labels y is computed in float64 (numpy promotes float32 with int64): convert the labels first, y = y.astype(X.dtype)."),
    Cause("mutates_cache", "backward changes what forward cached", "A second backward gave a different answer: an in-place operation (r = p; r -= y, or +=, -=, *= on a cached array) overwrote a value forward cached. Build a new array instead."),
    Cause("nonlinear_upstream", "not linear in the upstream gradient", "backward(c * G) must equal c * backward(G): multiply by the upstream gradient once; never clip, square or normalise it."),
    Cause("relu_output_mask", "multiplies by the output instead of the 0/1 indicator", "The derivative of max(X, 0) is 1 where X > 0 and 0 elsewhere: G * (X > 0), not G * max(X, 0)."),
    Cause("relu_inverted_mask", "ReLU mask inverted", "Pass the gradient where X > 0 (the units that were active), not where X < 0."),
    Cause("relu_of_gradient", "applies ReLU to the upstream gradient", "The mask comes from the forward input X, not from the sign of G: G * (X > 0), not np.maximum(G, 0)."),
    Cause("leaky_relu", "a leaky ReLU instead of max(X, 0)", "Negative inputs give exactly 0: np.maximum(X, 0), no slope for X < 0."),
    Cause("missing_bias", "bias not added", "The layer computes X @ W + b: add the bias, broadcast over the rows."),
    Cause("returns_softmax", "returns softmax, not its log", "LogSoftmax returns log-probabilities T - logsumexp(T); softmax would be exp of that."),
    Cause("row_offset", "off by a constant in each row (the max is subtracted and never added back)", "logsumexp(t) = m + log(sum exp(t - m)): after subtracting the row maximum m inside the exp, add it back (or subtract it from T as well)."),
    Cause("mean_not_sum", "mean instead of sum over the classes", "The normaliser sums over the classes: log(sum_j exp(T_ij)), and the Jacobian term uses G.sum(axis=1, keepdims=True), not a mean."),
    Cause("softmax_not_normalised", "exp(T) used instead of softmax(T)", "softmax(T) = exp(T - logsumexp(T)) = exp(Y): normalise the exponentials of each row."),
    Cause("scalar_keepdims", "a (1,) array instead of a number", "A loss is one number: return float(total), not the shape (1,) array that keepdims=True (or [total]) gives."),
    Cause("not_reduced", "loss not reduced over the batch", "The loss is one number: the mean (or sum) of the per-sample losses, not the array of them."),
    Cause("fused_softmax_gradient", "returns softmax minus one-hot from NLLLoss.backward", "(softmax - one-hot) / N is the combined gradient of LogSoftmax followed by NLLLoss; NLLLoss.backward alone returns -grad_output / N at [i, target[i]] and 0 elsewhere, and LogSoftmax.backward does the rest."),
    Cause("wrong_batch_size", "divides by the wrong size", "The mean is over the batch: divide by N = log_probs.shape[0], not by the number of classes."),
    Cause("dx_wrong_factor", "dL/dX built from the wrong factor", "dL/dX multiplies the upstream gradient by the weights: G @ W.T for Linear, outer(p - y, w) / N for the logistic regression; not X and not grad_W."),
    Cause("zero_input_gradient", "dL/dX returned as zeros", "The input's gradient is what earlier layers need: return dL/dX = outer(p - y, w) / N * grad_output, even though X is data."),
]}

#: Symptom classes: what went wrong, not why. They never count as a named cause (issue 15).
SYMPTOMS = frozenset({"wrong_values", "wrong_shape", "exception", "untestable", "grader_error"})

#: Failures that stop a method from running at all; any check charges them, since no property of a
#: method that does not run can be verified.
RUN_FAILURES = frozenset({"not_attempted", "exception", "import_error", "missing_class", "timeout", "crash",
                          "untestable", "grader_error"})
