"""MNIST accuracy tests: the grader trains the student's own layers and measures the result.

Integrity, in the terms of DESIGN.md: the training loop (``worker.run_segment``), the data and the
accuracy computation are the grader's. For speed the loop runs inside the worker, so its report is
not trusted: the worker returns a checkpoint of the parameters after every segment of
``segment_steps`` SGD steps, and the parent replays chosen segments itself, one call at a time
through the pipe with the student's layers, and requires each to land on the reported checkpoint.
The first segment (from the grader's own initialisation) and the last one (whose end is what gets
scored) are always replayed, plus one chosen at random after the report arrived. Weights shipped in
the submission, a different training rule or a faked report cannot satisfy those replays. Test
images and labels never enter the sandbox: accuracy is computed here, with trusted numpy, from the
final parameters.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from ..sandbox.client import LocalImpl, StudentError, _classify
from ..sandbox.protocol import ProtocolError, decode_value
from ..sandbox.worker import NetBuilder, TrainingError, run_segment
from .base import CaseResult, error_case, seed_for


@dataclass(frozen=True)
class Protocol:
    """A fixed training protocol; the reference is run under exactly the same one."""

    component: str
    kind: str                 #: "mlp" or "logreg"
    hidden: int = 0
    epochs: int = 1
    batch_size: int = 32
    lr: float = 0.1
    segment_steps: int = 25
    digits: tuple[int, int] = (3, 5)
    chance: float = 0.1
    # Budget: this many times the reference's training time, and at least min_budget seconds. Loops
    # over samples or finite-difference gradients are 100x slower or worse; correct but unusual code
    # (np.einsum without optimize=True is about 5x) must never hit it, also on a busy machine.
    time_factor: float = 25.0
    min_budget: float = 30.0


NETWORK_CLASSES = {"mlp": ("Linear", "ReLU", "LogSoftmax", "NLLLoss"), "logreg": ("LogisticRegression",)}
MLP = Protocol("MNIST-MLP", "mlp", hidden=100, epochs=3, batch_size=64, lr=0.3, segment_steps=25, chance=0.1)
LOGREG = Protocol("MNIST-LogReg", "logreg", epochs=2, batch_size=64, lr=0.5, segment_steps=20, chance=0.5)


@dataclass
class Dataset:
    X_train: np.ndarray   #: uint8 (N, 784)
    y_train: np.ndarray   #: int64
    X_test: np.ndarray    #: float32 (M, 784), stays in the parent
    y_test: np.ndarray


def datasets(root=None) -> dict[str, Dataset]:
    from assignment.data import load_raw

    raw = load_raw(root)
    Xtr = raw["train_images"].reshape(len(raw["train_images"]), -1)
    Xte = raw["test_images"].reshape(len(raw["test_images"]), -1).astype(np.float32) / np.float32(255.0)
    ytr, yte = raw["train_labels"].astype(np.int64), raw["test_labels"].astype(np.int64)
    a, b = LOGREG.digits
    tr = (ytr == a) | (ytr == b)
    te = (yte == a) | (yte == b)
    return {"mlp": Dataset(np.ascontiguousarray(Xtr), ytr, Xte, yte),
            "logreg": Dataset(np.ascontiguousarray(Xtr[tr]), (ytr[tr] == b).astype(np.int64), Xte[te], (yte[te] == b).astype(np.int64))}


def initial_params(p: Protocol, rng: np.random.Generator) -> dict[str, np.ndarray]:
    f32 = np.float32
    if p.kind == "mlp":
        return {"W1": (rng.standard_normal((784, p.hidden)) * np.sqrt(2 / 784)).astype(f32),
                "b1": np.zeros(p.hidden, f32),
                "W2": (rng.standard_normal((p.hidden, 10)) * np.sqrt(2 / p.hidden)).astype(f32),
                "b2": np.zeros(10, f32)}
    return {"w": (rng.standard_normal(784) * 0.01).astype(f32), "b": np.zeros((), f32)}


def accuracy(p: Protocol, params: dict[str, np.ndarray], X: np.ndarray, y: np.ndarray) -> float:
    """Trusted forward pass of the architecture, in numpy, on the test set."""
    if p.kind == "mlp":
        H = np.maximum(X @ params["W1"] + params["b1"], 0)
        pred = (H @ params["W2"] + params["b2"]).argmax(axis=1)
    else:
        pred = (X @ params["w"] + params["b"] > 0).astype(np.int64)
    return float(np.mean(pred == y))


@dataclass
class MnistRun:
    """What one training run under the protocol produced."""

    component: str
    accuracy: float | None = None
    seconds: float = 0.0
    steps: int = 0
    final_loss: float | None = None
    error: CaseResult | None = None
    verified_segments: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["error"] = None if self.error is None else asdict(self.error)
        return d


class _RemoteAPI:
    """The object API :class:`worker.Net` expects, over an oracle implementation."""

    def __init__(self, impl) -> None:
        self.impl = impl

    def new(self, cls, *args):
        return self.impl.new(cls, *args)

    def set(self, h, name, value):
        self.impl.set(h, name, value)

    def call(self, h, method, *args):
        return self.impl.call(h, method, *args)


def _order(p: Protocol, n: int, rng: np.random.Generator) -> np.ndarray:
    return np.concatenate([rng.permutation(n) for _ in range(p.epochs)]).astype(np.int64)


def train_and_score(impl, p: Protocol, data: Dataset, *, secret: str, budget: float | None = None) -> MnistRun:
    """Train ``impl``'s layers under ``p`` and return the run, verified, with its test accuracy."""
    rng = seed_for(secret, p.component)
    params0 = initial_params(p, rng)
    order = _order(p, len(data.X_train), rng)
    names = list(params0)
    spec = {"kind": p.kind, "hidden": p.hidden, "batch_size": p.batch_size, "lr": p.lr,
            "segment_steps": p.segment_steps}
    run = MnistRun(p.component)
    # A call this network needs already hung or crashed in the gradient checks: training would only
    # wait out the whole budget to fail the same way.
    needed = NETWORK_CLASSES[p.kind]
    for (cls, method), info in getattr(impl, "failed_methods", {}).items():
        if cls in needed:
            cause = "timeout" if info.get("kind") == "timeout" else "crash"
            run.error = CaseResult("training", False, cause,
                                   f"not trained: {cls}.{method} already {'timed out' if cause == 'timeout' else 'crashed the worker'} "
                                   "in the gradient checks, and training calls it on every step")
            return run
    impl.send_training_data(data.X_train, data.y_train)
    t0 = time.perf_counter()
    try:
        reply, arrays = impl.train(spec, params0, order, timeout=budget or 600.0)
    except StudentError as exc:
        run.seconds = time.perf_counter() - t0
        if exc.kind == "timeout":
            run.error = CaseResult("training", False, "too_slow",
                                   f"training did not finish within the time budget ({p.time_factor:g} times the "
                                   f"reference's training time, at least {p.min_budget:g} s): "
                                   "vectorise the layers, no Python loops over samples")
        else:
            run.error = error_case("training", exc, "training")
        return run
    run.seconds = time.perf_counter() - t0
    if not reply.get("ok"):
        info = reply.get("error") or {}
        steps = reply.get("steps_done", 0)
        if info.get("type") == "TrainingError":
            cause = "not_learning" if info.get("kind") == "diverged" else "wrong_shape"
            run.error = CaseResult("training", False, cause, f"training stopped at step {steps + 1}: {info.get('message')}")
        else:
            run.error = error_case("training", StudentError(_classify(info)), f"during training (step {steps + 1})")
        return run
    try:
        checkpoints = [[decode_value(v, arrays) for v in cp] for cp in reply["checkpoints"]]
        losses = [float(x) for x in reply.get("losses", [])]
    except (ProtocolError, KeyError, TypeError, ValueError) as exc:
        run.error = CaseResult("training", False, "crash", f"the training report was malformed ({exc})")
        return run
    bs, seg = p.batch_size, p.segment_steps
    batches = [order[i : i + bs] for i in range(0, len(order), bs)]
    n_seg = (len(batches) + seg - 1) // seg
    if len(checkpoints) != n_seg or any(len(cp) != len(names) for cp in checkpoints):
        run.error = CaseResult("training", False, "inconsistent_training",
                               f"the training report has {len(checkpoints)} checkpoints, expected {n_seg}")
        return run
    cps = []
    for cp in checkpoints:
        d = {}
        for k, v in zip(names, cp):
            if type(v) is not np.ndarray or v.shape != params0[k].shape or v.dtype != params0[k].dtype:
                run.error = CaseResult("training", False, "inconsistent_training", f"checkpoint parameter {k} is malformed")
                return run
            d[k] = v
        cps.append(d)
    # Replay: first, last and one random segment, chosen now that the report is in.
    chosen = sorted({0, n_seg - 1, int(rng.integers(n_seg))})
    net = NetBuilder(_RemoteAPI(impl), p.kind, p.hidden)
    for i in chosen:
        start = params0 if i == 0 else cps[i - 1]
        try:
            impl.drop()
            if i == 0:
                # Replays prove the run is reproducible, not that it is backpropagation: a "gradient"
                # that depends on the parameters alone (e.g. pulling them towards pretrained weights
                # pasted into the file) replays perfectly. At the grader's own starting point, the
                # student's first gradients must point where the reference's do.
                bad = _gradient_disagrees(net, start, data, batches[0])
                if bad:
                    run.error = CaseResult("replay", False, "inconsistent_training", bad)
                    return run
            replayed, _ = run_segment(net, start, data.X_train, data.y_train, batches[i * seg : (i + 1) * seg], p.lr)
        except StudentError as exc:
            run.error = error_case("replay", exc, f"replaying segment {i + 1}")
            return run
        except TrainingError as exc:
            run.error = CaseResult("replay", False, "inconsistent_training",
                                   f"replaying segment {i + 1} of training failed: {exc.info.get('message')}")
            return run
        for k in names:
            a, b = replayed[k].astype(np.float64), cps[i][k].astype(np.float64)
            scale = max(float(np.max(np.abs(a))), 1e-12)
            if not float(np.max(np.abs(a - b))) / scale <= 1e-5:
                run.error = CaseResult(
                    "replay", False, "inconsistent_training",
                    f"replaying SGD steps {i * seg + 1}-{min((i + 1) * seg, len(batches))} with your layers gave "
                    f"different {k} than the training run reported. This happens when layers keep state in "
                    "global or class variables, use randomness, or the run was tampered with; flagged for review")
                return run
        run.verified_segments.append(i)
    impl.drop()
    run.steps = len(batches)
    run.final_loss = float(np.mean(losses[-seg:])) if losses else None
    run.accuracy = accuracy(p, cps[-1], data.X_test, data.y_test)
    return run


MIN_COSINE = 0.9  # every known-buggy variant that gets MNIST credit is at 0.99 or more here


def _gradient_disagrees(net: NetBuilder, params: dict, data: Dataset, idx: np.ndarray) -> str:
    """Why the student's gradients on one MNIST batch are not backpropagation's, or "" if they are.

    One SGD step from ``params`` with fresh layer objects, by the student and by the reference; the
    cosine between the two gradients of every (non-scalar) parameter must be at least MIN_COSINE. A
    scale error (1/N, a factor 2) keeps the cosine at 1 and is left to the accuracy bands."""
    from ..pipeline import reference_impl

    ref = reference_impl()
    if not isinstance(ref, LocalImpl):  # the student release: no reference to compare with
        return ""
    xb = data.X_train[idx].astype(np.float32) / np.float32(255.0)
    _, got = net.build(params).step(xb, data.y_train[idx])
    _, want = NetBuilder(_RemoteAPI(ref), net.kind, net.hidden).build(params).step(xb, data.y_train[idx])
    for k in params:
        a = np.asarray(getattr(got.get(k), "array", got.get(k)), dtype=np.float64)
        b = np.asarray(want[k], dtype=np.float64)
        if a.shape != b.shape or b.size < 2:
            continue  # a wrong shape is reported by the replay itself; a scalar's cosine says nothing
        cos = float(a.ravel() @ b.ravel()) / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-30)
        if not cos >= MIN_COSINE:
            return (f"on the first MNIST batch your gradient of {k} does not point where backpropagation's "
                    f"does (cosine {cos:.2f} with the correct gradient), so training with it is not credited "
                    "(the gradient checks name the bug; a run that reached a good accuracy anyway is flagged "
                    "for review)")
    return ""
