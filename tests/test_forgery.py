"""Worker-side forgeries of MNIST training (issue 20), each on 20 secrets, in the real sandbox.

Every forger is a copy of the reference layers with ``tests/fixtures/forgery/attack.py`` appended: it
reaches the worker's training op through ``sys.modules`` and, on the steps its mode picks, returns a
"gradient" that moves the parent's parameters towards weights it trained itself with correct numpy
code. Honest layers (pass every check: a forgery must be *flagged*) and scale-buggy layers (grad_W
divided by N: they train badly, a forgery would *gain* a band) are both tried. A run escapes when it
is credited (an accuracy, no error); the README's guarantee quotes ``escapes`` from here.

``FORGERY_SECRETS`` (default 20) sets the number of secrets.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

from grader.checks.mnist import MLP, flag_for_review, train_and_score
from grader.intake import Submission, prepare
from grader.pipeline import mnist_data, reference_mnist
from grader.sandbox.client import SandboxConfig, SandboxImpl

ROOT = Path(__file__).resolve().parent.parent
ATTACK = (ROOT / "tests/fixtures/forgery/attack.py").read_text()
SECRETS = [f"forgery-{i}" for i in range(int(os.environ.get("FORGERY_SECRETS", "20")))]
SCALE_BUG = ("self.grad_W = X.T @ grad_output", "self.grad_W = X.T @ grad_output / X.shape[0]")
MODES = [("middle_segment", 1), ("jump_random", 1), ("spread", 5), ("spread", 50), ("spread", 200),
         ("guess", 1), ("rewrite", 1)]

pytestmark = pytest.mark.slow


def forger(dest: Path, mode: str, k: int, *, buggy: bool) -> Path:
    dest.mkdir(parents=True)
    layers = (ROOT / "solutions/layers.py").read_text()
    if buggy:
        assert SCALE_BUG[0] in layers
        layers = layers.replace(*SCALE_BUG)
    attack = (ATTACK.replace('MODE = "middle_segment"', f'MODE = "{mode}"').replace("K = 1 ", f"K = {k} ")
              .replace("LR, EPOCHS, BATCH = 0.3, 1, 64", f"LR, EPOCHS, BATCH = {MLP.lr}, {MLP.epochs}, {MLP.batch_size}"))
    (dest / "layers.py").write_text(layers + "\n\n" + attack)
    (dest / "logistic_regression.py").write_text((ROOT / "solutions/logistic_regression.py").read_text())
    return dest


def train_sandboxed(folder: Path, secret: str):
    ref = reference_mnist(secret)["MNIST-MLP"]
    scratch = Path(tempfile.mkdtemp(prefix="bpg-forgery-"))
    prepared = prepare(Submission(folder.name, folder, "dir"), scratch)
    with SandboxImpl(prepared.package_dir, SandboxConfig()) as impl:
        budget = max(MLP.min_budget, MLP.time_factor * ref["seconds"])
        return train_and_score(impl, MLP, mnist_data(None)["mlp"], secret=secret, budget=budget, reference=ref), ref


@pytest.mark.parametrize("buggy", [False, True], ids=["honest_layers", "scale_buggy_layers"])
@pytest.mark.parametrize("mode,k", MODES, ids=[f"{m}-{k}" for m, k in MODES])
def test_forgery_gets_no_credit(tmp_path: Path, mode: str, k: int, buggy: bool) -> None:
    folder = forger(tmp_path / f"{mode}_{k}", mode, k, buggy=buggy)
    escapes = []
    for secret in SECRETS:
        run, _ = train_sandboxed(folder, secret)
        flag_for_review(run, checks_passed=not buggy)
        if run.accuracy is not None or run.error is None:
            escapes.append(secret)
            continue
        assert run.failure and run.failure["kind"] in ("direction", "norm"), run.failure
        if not buggy:  # the layers pass their checks: not an ordinary bug, the instructor must see it
            assert run.review is not None and "flagged for review" in run.error.detail, run.error
        elif run.failure["kind"] == "direction":  # as far as anyone can tell an ordinary bug: worded as one
            assert run.error.cause == "not_learning" and "flagged" not in run.error.detail, run.error
        else:  # far too large and pointing elsewhere: flagged whatever the layer checks said
            assert run.review is not None and run.error.cause == "inconsistent_training", run.error
    assert not escapes, f"{mode}-{k}: credited on {len(escapes)}/{len(SECRETS)} secrets"


def test_subtle_forgery_gain_is_bounded(tmp_path: Path) -> None:
    """A forgery that keeps every step's cosine at 0.95 passes by construction: what can it gain?

    Scale-buggy layers (grad_W / N, which train badly) plus the largest pull the checks allow, against
    the same layers honest. Measured, not assumed: the README quotes these numbers."""
    subtle = forger(tmp_path / "subtle", "subtle", 1, buggy=True)
    honest = tmp_path / "honest_buggy"
    honest.mkdir()
    (honest / "layers.py").write_text((ROOT / "solutions/layers.py").read_text().replace(*SCALE_BUG))
    (honest / "logistic_regression.py").write_text((ROOT / "solutions/logistic_regression.py").read_text())
    gains = []
    for secret in SECRETS[:5]:
        a, ref = train_sandboxed(subtle, secret)
        b, _ = train_sandboxed(honest, secret)
        assert a.error is None and b.error is None, (a.error, b.error)
        gains.append((a.accuracy - b.accuracy, ref["accuracy"] - a.accuracy))
    print("subtle forgery: accuracy gained over the honest buggy run, and still below the reference:", gains)
    # It can move the weights only along directions within ~18 degrees of backpropagation's.
    assert all(below > 0.005 for _, below in gains), gains  # never reaches full marks
