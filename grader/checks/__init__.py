"""The hidden and public gradient checks, one module per component.

``REGISTRY`` maps check ids (``"Linear.backward_bias"``) to specs; importing this package fills it.
"""
from . import linear, relu, logsoftmax, nll, logreg  # noqa: F401  (registration)
from .base import PUBLIC_SEED, REGISTRY, CheckResult, CheckSpec, CaseResult, run_check

COMPONENTS = ("Linear", "ReLU", "LogSoftmax", "NLLLoss", "LogisticRegression")

__all__ = ["COMPONENTS", "PUBLIC_SEED", "REGISTRY", "CheckResult", "CheckSpec", "CaseResult", "run_check"]
