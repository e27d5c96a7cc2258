"""MNIST accuracy tests: the grader trains the student's own layers and measures the result.

Integrity (issue 20, DESIGN.md): the trusted parent owns the parameters and applies every SGD step.
The worker only answers "the gradients of your layers on this batch at these parameters"
(``grader/sandbox/training.py``; arrays through shared memory, ``shm.py`` / ``channel.py``), so
nothing it does between calls can move a parameter, and the accuracy is computed here, with trusted
numpy, from parameters this process produced. Test images and labels never enter the sandbox.

What the worker could still do is return a "gradient" that is not its layers' (a pull towards
weights shipped in the file). Every reply is therefore validated (exact shape, numbers, finite: a
wrong one fails, never skips), its norm must stay within NORM_FACTOR times the reference's at the
same step of the same protocol, and at the steps the parent picks after the reply has arrived
(``Protocol.verify_share``; the first step always) its direction must agree with backpropagation
at the same parameters and batch (cosine >= MIN_COSINE per parameter, computed here in numpy).
A scale error (a factor 2, 1/N) keeps the cosine at 1 and is left to the accuracy bands.
"""
from __future__ import annotations

import random
import time

import numpy as np

from ..sandbox.channel import GradientChannel, GradientRejected
from ..sandbox.clock import cpu_seconds
from ..sandbox.oracle import Oracle, StudentError
from ..sandbox.training import network_classes, param_owners
from .base import CaseResult, error_case, seed_for
from .mnist_protocol import (LOGREG, MIN_COSINE, MLP, NORM_FACTOR, SUBSET_SEED,  # noqa: F401
                             WALL_FACTOR, Dataset, MnistRun, Protocol, batch_order, accuracy, backprop, cosine,
                             datasets, initial_params, network, stratified)


PRINTED_A_LOT = 1 << 19  #: printed bytes during training that the too-slow hint names (the worker keeps 1 MiB)


def _already_failed(impl, p: Protocol, run: MnistRun) -> bool:
    """A call this network needs already hung or crashed in the gradient checks: training would only
    wait out the whole budget to fail the same way."""
    for (cls, method), info in getattr(impl, "failed_methods", {}).items():
        if cls in network_classes(network(p)):
            cause = "timeout" if info.get("kind") == "timeout" else "crash"
            what = "timed out" if cause == "timeout" else "crashed the worker"
            run.fail(cause, f"not trained: {cls}.{method} already {what} in the gradient checks, and training "
                     "calls it on every step", component=cls, method=method, kind=cause, step=0,
                     message=str(info.get("message", "")))
            return True
    return False


def train_and_score(impl: Oracle, p: Protocol, data: Dataset, *, secret: str, budget: float | None = None,
                    reference: dict | None = None) -> MnistRun:
    """Train ``impl``'s layers under ``p`` with the parent applying every step; score the result.

    ``reference`` is the reference's record under the same protocol and secret (``grad_norms``
    bounds every step's gradient norm); without it (the reference's own run) only shapes, finiteness
    and the direction checks apply."""
    rng = seed_for(secret, p.component)
    params = initial_params(p, rng)
    order = batch_order(p, len(data.X_train), rng)
    run = MnistRun(p.component)
    if _already_failed(impl, p, run):
        return run
    t0 = time.perf_counter()
    try:
        loop = _Training(impl, p, data, params, budget or 600.0, reference)
    except StudentError as exc:
        return _call_failed(run, p, exc, 0)
    bad = loop.run(run, order)
    run.seconds = time.perf_counter() - t0
    if bad is not None:
        return bad
    run.steps = len(loop.losses)
    if not all(np.isfinite(v).all() for v in loop.params.values()):
        return run.fail("not_learning", f"training diverged: the parameters became NaN or inf by step {run.steps}",
                        component=network_classes(network(p))[0], method="backward", kind="not_finite",
                        step=run.steps, message="parameters not finite")
    finite = [v for v in loop.losses[-50:] if np.isfinite(v)]  # the loss is reported, never trained on
    run.final_loss = float(np.mean(finite)) if finite else None
    run.accuracy = accuracy(p, loop.params, data.X_test, data.y_test)
    return run


class _Training:
    """One run's SGD loop. The parent applies every step; a step picked for checking is checked
    while the worker computes the next one (its reply is read after the check), so the direction
    check costs no waiting. A step whose check fails ends the run at that step, as if nothing came
    after it: the request already sent is answered and dropped."""

    def __init__(self, impl: Oracle, p: Protocol, data: Dataset, params: dict, budget: float, reference: dict | None):
        self.impl, self.p, self.data, self.params, self.budget = impl, p, data, params, budget
        self.reference = reference
        # The budget is CPU time of the layers' process; a second clock only stops what hangs or
        # sleeps (WALL_FACTOR times the budget). It is the sandbox's load clock (wall time minus the
        # waits for a CPU, grader/sandbox/clock.py), so a correct submission graded on a busy machine
        # is not stopped for the time it spent waiting for a core; in-process, plain wall time.
        self.clock = getattr(impl, "clock", None) or time.monotonic
        now = self.clock()
        self.deadline, self.soft = now + WALL_FACTOR * budget, now + budget
        self.cpu0 = _layers_cpu(impl)
        self.printed0 = _printed(impl)
        net = network(p)
        self.owners = param_owners(net)
        self.chan = GradientChannel(impl, p.kind, net, params, data.X_train, data.y_train, p.batch_size,
                                    timeout=budget)
        self.ref_norms = (reference or {}).get("grad_norms") or []
        self.floors = ({k: float(np.median([s[i] for s in self.ref_norms])) for i, k in enumerate(params)}
                       if self.ref_norms else {})
        self.pick = random.SystemRandom()  # not from the secret: which steps are checked cannot be learnt
        self.losses: list[float] = []

    def run(self, run: MnistRun, order: np.ndarray) -> MnistRun | None:
        p, lr = self.p, np.float32(self.p.lr)
        held = None  #: (step, parameters, batch, gradients, anomaly) of a step still to be checked
        for step, start in enumerate(range(0, len(order), p.batch_size), 1):
            idx = order[start : start + p.batch_size]
            bad = self._ask(run, step, idx)
            if held is not None:
                verdict = self._verify(run, *held)
                held = None
                if verdict is not None:
                    if bad is None:
                        self.chan.drain()
                    return verdict
            if bad is not None:
                return bad
            got = self._answer(run, step)
            if isinstance(got, MnistRun):
                return got
            loss, grads, odd = got
            # drawn after the reply arrived: the worker cannot know which steps are checked
            if odd or step == 1 or self.pick.random() < p.verify_share:
                held = (step, dict(self.params), idx, grads, odd)
            self.losses.append(loss)
            for k in self.params:
                self.params[k] = self.params[k] - lr * grads[k]
        return self._verify(run, *held) if held is not None else None

    def _ask(self, run: MnistRun, step: int, idx: np.ndarray) -> MnistRun | None:
        try:
            left = self.deadline - self.clock()
            if left <= 0:
                raise StudentError({"kind": "timeout", "type": "Timeout", "message": "", "where": ""})
            self.chan.send(self.params, idx, timeout=left)
        except StudentError as exc:
            return _call_failed(run, self.p, exc, step, self.printed())
        return None

    def printed(self) -> int:
        return _printed(self.impl) - self.printed0

    def _answer(self, run: MnistRun, step: int):
        """(loss, gradients, norm anomaly) of the step asked last, or the run's failure."""
        p = self.p
        try:
            loss, grads = self.chan.receive()
        except StudentError as exc:
            return _call_failed(run, p, exc, step, self.printed())
        except GradientRejected as exc:
            cause = "wrong_shape" if exc.kind == "shape" else "wrong_type"
            return run.fail(cause, f"training stopped at step {step}: {exc.message}", component=exc.component,
                            method="gradients", kind=cause, step=step, message=exc.message)
        if self.clock() > self.soft and _layers_cpu(self.impl) - self.cpu0 > self.budget:
            return _call_failed(run, p, StudentError({"kind": "timeout", "type": "Timeout", "where": "",
                                                      "message": "CPU budget used up"}), step, self.printed())
        norms = [_norm(g) for g in grads.values()]
        if self.reference is None:
            run.grad_norms.append([float(f"{x:.4g}") for x in norms])
        bad = _finite(run, step, grads, norms, self.owners)
        if bad is not None:
            return bad
        # A norm far beyond the reference's is checked whatever the draw: with the right direction it
        # is a scale error that diverges (scored); with the wrong one, a jump (flagged).
        return loss, grads, _norm_anomaly(step, grads, norms, self.ref_norms, self.floors)

    def _verify(self, run: MnistRun, step: int, params: dict, idx: np.ndarray, grads: dict,
                odd: dict | None) -> MnistRun | None:
        run.verified_steps += 1
        xb = self.data.X_train[idx].astype(np.float32) / np.float32(255.0)
        want = backprop(self.p.kind, params, xb, self.data.y_train[idx])
        return _direction(run, step, grads, want, self.owners, odd)


def _printed(impl) -> int:
    """Bytes the layers' process has printed so far (0 where nobody counts them: in-process)."""
    count = getattr(impl, "printed_bytes", None)
    return int(count()) if callable(count) else 0


def _layers_cpu(impl) -> float:
    """CPU seconds used so far by the process running the layers (the worker, read from the kernel)."""
    pid = getattr(getattr(impl, "_proc", None), "pid", None)
    if pid is None:
        return time.process_time()
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return cpu_seconds(fh.read())
    except (OSError, ValueError, IndexError):
        return time.process_time()


def _norm(g: np.ndarray) -> float:
    n = float(np.sqrt(np.dot(g.ravel(), g.ravel())))
    return n if np.isfinite(n) else float(np.linalg.norm(g.astype(np.float64)))  # float32 squares overflow


def _call_failed(run: MnistRun, p: Protocol, exc: StudentError, step: int, printed: int = 0) -> MnistRun:
    """``printed``: bytes the layers printed during this run (a print left in forward is what makes
    a vectorised submission too slow, and then the hint says so)."""
    info = exc.info
    comp, method = str(info.get("component", "")), str(info.get("method", ""))
    where = f"{comp}.{method} " if comp and method else ""
    when = f"at training step {step}" if step else "while setting up the network"
    if exc.kind == "timeout":
        chatty = printed >= PRINTED_A_LOT
        why = (f"your layers printed {printed / 1e6:.1f} MB or more during training (a print of whole arrays left in "
               "forward or backward?): formatting that output is what takes the time, remove the print statements"
               if chatty else "vectorise the layers, no Python loops over samples")
        return run.fail("prints_too_much" if chatty else "too_slow", f"training did not finish within the time budget "
                        f"({p.time_factor:g} times the reference's training time, at least {p.min_budget:g} s; stopped "
                        f"at step {step}): {why}",
                        component=comp, method=method, kind="timeout", step=step, message=str(info.get("message", "")))
    if info.get("type") == "TrainingError":
        return run.fail("wrong_type", f"training stopped at step {step}: {info.get('message')}", component=comp,
                        method=method, kind=str(info.get("kind", "type")), step=step, message=str(info.get("message", "")))
    case = error_case("training", exc, f"{where}{when}".strip())
    run.error = case
    run.failure = {"component": comp, "method": method, "kind": exc.kind, "step": step,
                   "message": str(info.get("message", ""))[:800]}
    return run


def _finite(run, step, grads, norms, owners: dict[str, str]) -> MnistRun | None:
    for k, n in zip(grads, norms):
        if not np.isfinite(n):
            return run.fail("not_learning", f"training stopped at step {step}: the gradient of {k} is NaN or "
                            "inf (training diverged, or exp overflow, log(0) or a division by zero)",
                            component=owners[k], method="backward", kind="not_finite", step=step,
                            message=f"gradient {k} not finite")
    return None


def _norm_anomaly(step, grads, norms, ref_norms, floors) -> dict | None:
    """The first parameter whose gradient is over NORM_FACTOR times the reference's at this step of
    the protocol (or its median over the run, when that is larger)."""
    if not ref_norms:
        return None
    ref = ref_norms[min(step, len(ref_norms)) - 1]
    for i, (k, n) in enumerate(zip(grads, norms)):
        if not n <= NORM_FACTOR * max(ref[i], floors[k]):
            return {"reason": "gradient norm out of range and direction wrong", "param": k, "step": step,
                    "norm": float(f"{n:.4g}"), "reference_norm": ref[i], "factor": NORM_FACTOR}
    return None


def _direction(run, step, grads, want, owners: dict[str, str], odd: dict | None = None) -> MnistRun | None:
    """The student's gradient must point where backpropagation's does, parameter by parameter."""
    for k, g in grads.items():
        w = want[k]
        if w.size < 2 or not float(np.linalg.norm(w)) > 1e-12:
            continue  # a scalar's cosine says nothing; a zero gradient has no direction
        cos = cosine(g, w)
        if cos >= MIN_COSINE:
            continue
        if odd is not None:
            run.review = dict(odd, cosine=round(cos, 4))
            return run.fail("inconsistent_training",
                            f"a gradient of {odd['param']} returned during training is "
                            f"{odd['norm'] / max(odd['reference_norm'], 1e-30):.3g} times the size of the reference's "
                            "at the same point of the protocol and points elsewhere than backpropagation's; the run "
                            "is not credited and is flagged for review",
                            component=owners[odd["param"]], method="backward", kind="norm", step=step,
                            message=f"|grad {odd['param']}| = {odd['norm']}, cosine {cos:.3f}")
        where = ("on the first MNIST batch" if step == 1 else
                 "on a batch during training (at the parameters and batch the grader gave)")
        detail = (f"your gradients {where} disagree with backpropagation: cosine {cos:.2f} between your "
                  f"dL/d{k} and the correct one (at least {MIN_COSINE} needed), so training with them is not "
                  "credited" + ("; the gradient checks above name the bug" if step == 1 else
                                "; the gradient checks above name the bug (state kept between calls, such as "
                                "accumulating gradients or a stale cache, or a forward pass that is not the "
                                "network's, such as a missing bias, does this once training has moved the "
                                "parameters)"))
        run.fail("not_learning", detail, component=owners[k], method="backward", kind="direction",
                 step=step, message=f"cosine {cos:.3f} for {k}")
        run.failure.update(cosine=round(cos, 4), param=k)  # fields, so review never parses the message
        return run
    return None


def flag_for_review(run: MnistRun, checks_passed: bool) -> MnistRun:
    """A direction check that fails although every layer of the network passed its own checks is not
    an ordinary bug: the layers answer MNIST calls differently (state, shape sniffing, a loop
    rewritten in the worker). Reworded, and the evidence recorded for the batch summary."""
    f = run.failure
    if checks_passed and f and f.get("kind") == "direction" and run.review is None:
        run.review = {"reason": "gradient direction disagrees although the layer checks passed",
                      "param": f.get("param"), "cosine": f.get("cosine"),
                      "component": f["component"]}
        run.error = CaseResult("training", False, "inconsistent_training",
                               f"your layers pass their own checks, but during MNIST training they returned gradients "
                               f"that disagree with backpropagation at the same parameters and batch "
                               f"(cosine {f.get('cosine')}); the run is not credited and is flagged for review")
    return run


from .mnist_cache import reference_cache  # noqa: E402  (re-exported: pipeline.reference_mnist uses it)
