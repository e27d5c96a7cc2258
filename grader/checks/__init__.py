"""The hidden and public gradient checks, one module per component.

``REGISTRY`` maps check ids (``"<component>.<check>"``) to specs; the check modules that fill it are
named by the assignment spec (``grader/spec.py``), and importing this package registers those of the
current assignment.
"""
import importlib as _importlib
import importlib.util as _importlib_util

from ..spec import current_spec
from .base import PUBLIC_SEED, REGISTRY, CheckResult, CheckSpec, CaseResult, run_check

current_spec().load_checks()  # registration
if _importlib_util.find_spec(f"{__name__}.hidden") is not None:  # hidden-only checks; not in the student release
    _importlib.import_module(f"{__name__}.hidden")
COMPONENTS = current_spec().component_ids  #: the components of the assignment current at import

__all__ = ["COMPONENTS", "PUBLIC_SEED", "REGISTRY", "CheckResult", "CheckSpec", "CaseResult", "run_check"]
