"""A second, small homework written from scratch in a folder (issue 17): one ``Scale`` layer.

``build(root)`` writes its spec, student skeleton, reference, check module, one known-buggy variant,
rubric, its own wording of one cause and two submissions (correct, buggy). Nothing in ``grader/`` knows about it: the spec is the
only way in.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

SPEC = """\
[assignment]
name = "Scale by hand"

[student]
package = "assignment"
dir = "skeleton"
files = ["scale.py"]
provided = ["module.py", "gradcheck.py"]
provided_names = ["Module", "Sequential", "numerical_gradient", "rel_error", "check_gradient"]

[reference]
package = "scale_reference"
dir = "reference"

[checks]
modules = ["checks/scale_checks.py"]
rubric = "rubric.toml"
buggy = "buggy"
causes = "causes.toml"

[[component]]
id = "Scale"
module = "scale"
task = 1
"""

RUBRIC = """\
[rubric]
name = "Scale"
public_share = 0.25
partial_credit = true

[checks]
"Scale.forward" = 4
"Scale.backward" = 6
"""

# This homework's own wording of a generic cause (the generic one speaks of no layer).
CAUSES = """\
[sign]
title = "sign flipped"
hint = "Scale multiplies by the factor in both directions: backward(G) is factor * G, with no minus."
"""
SIGN_HINT = "backward(G) is factor * G, with no minus"

MODULE = '''\
"""Provided: the base class of every layer."""


class Module:
    def parameters(self):
        return {}

    def gradients(self):
        return {}


class Sequential(Module):
    def __init__(self, *layers):
        self.layers = list(layers)
'''

GRADCHECK = '''\
"""Provided: numerical gradients for self-checks."""
import numpy as np


def numerical_gradient(f, x, h=1e-5):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        up = f(x)
        x[i] = old - h
        down = f(x)
        x[i] = old
        g[i] = (up - down) / (2 * h)
    return g


def rel_error(a, b):
    return float(np.max(np.abs(a - b) / np.maximum(1e-12, np.abs(a) + np.abs(b))))


def check_gradient(f, x, analytic, h=1e-5):
    return rel_error(numerical_gradient(f, x, h), analytic)
'''

SKELETON = '''\
"""Task 1: a layer that multiplies its input by a fixed factor."""
import numpy as np

from .module import Module


class Scale(Module):
    def __init__(self, factor: float = 2.0):
        self.factor = float(factor)

    def forward(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError("Need to implement for Task 1: Scale.forward")

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        raise NotImplementedError("Need to implement for Task 1: Scale.backward")
'''

SOLUTION = '''\
"""Task 1: a layer that multiplies its input by a fixed factor."""
import numpy as np

from .module import Module


class Scale(Module):
    def __init__(self, factor: float = 2.0):
        self.factor = float(factor)

    def forward(self, X: np.ndarray) -> np.ndarray:
        return X * np.asarray(self.factor, dtype=X.dtype)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return grad_output * np.asarray(self.factor, dtype=grad_output.dtype)
'''

# A correct solution written differently from the reference (absolute import, np.multiply, a cache).
STUDENT_CORRECT = '''\
import numpy as np

from assignment.module import Module


class Scale(Module):
    def __init__(self, factor=2.0):
        self.factor = factor

    def forward(self, X):
        self._shape = X.shape
        return np.multiply(X, X.dtype.type(self.factor))

    def backward(self, grad_output):
        return np.multiply(grad_output, grad_output.dtype.type(self.factor))
'''

STUDENT_BUGGY = STUDENT_CORRECT.replace("return np.multiply(grad_output,", "return -np.multiply(grad_output,")

CHECKS = '''\
"""Checks of ``Scale``: ``factor * X`` and ``factor * G``."""
import numpy as np

from grader.checks.base import check
from grader.checks.generic import VALUE_CAUSES, check_part, distinct_dims
from grader.checks.runs import LayerCase

C = "Scale"


def cases(rng):
    N, D = distinct_dims(rng, (5, 9), (10, 14))
    factor = float(rng.uniform(1.5, 3.0))
    return [LayerCase(C, (factor,), {}, (rng.standard_normal((N, D)),), rng.standard_normal((N, D)),
                      f"shape ({N}, {D}), factor {factor:.3f}"),
            LayerCase(C, (factor,), {}, (rng.standard_normal((1, D)),), rng.standard_normal((1, D)),
                      f"shape (1, {D}), factor {factor:.3f}")]


def mutants(part, case, ref):
    if part == "input":
        return [("ignores_upstream", case.ctor[0] * np.ones_like(case.upstream), "factor * ones")]
    return []


@check(C, "forward: factor * X", public=True, owns=VALUE_CAUSES)
def check_scale_forward(ctx):
    """The output is the input times the factor."""
    return check_part(ctx, cases(ctx.rng), "forward", mutants)


@check(C, "backward: factor * G", public=True, owns=VALUE_CAUSES + ("ignores_upstream",))
def check_scale_backward(ctx):
    """backward(G) is G times the factor, against the reference and central differences."""
    return check_part(ctx, cases(ctx.rng), "input", mutants)
'''

BUGGY = '''\
"""Scale.backward: the sign of the gradient flipped."""
import numpy as np

COMPONENT = "Scale"
CAUSE = "sign"


class Scale:
    def __init__(self, factor=2.0):
        self.factor = float(factor)

    def forward(self, X):
        return X * self.factor

    def backward(self, grad_output):
        return -grad_output * self.factor
'''


def build(root: Path) -> Path:
    """Write the assignment under ``root``; returns the spec file."""
    files = {
        "spec.toml": SPEC, "rubric.toml": RUBRIC, "causes.toml": CAUSES,
        "skeleton/module.py": MODULE, "skeleton/gradcheck.py": GRADCHECK, "skeleton/scale.py": SKELETON,
        "skeleton/__init__.py": "",
        "reference/module.py": MODULE, "reference/gradcheck.py": GRADCHECK, "reference/scale.py": SOLUTION,
        "reference/__init__.py": "",
        "checks/scale_checks.py": CHECKS, "buggy/scale_sign.py": BUGGY,
        "submissions/correct/scale.py": STUDENT_CORRECT, "submissions/buggy/scale.py": STUDENT_BUGGY,
    }
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text), encoding="utf-8")
    return root / "spec.toml"
