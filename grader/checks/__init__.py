"""The hidden and public gradient checks, one module per component.

``REGISTRY`` maps check ids (``"<component>.<check>"``) to specs; the check modules that fill it are
named by the assignment spec (``grader/spec.py``), and importing this package registers those of the
current assignment.
"""
from ..spec import current_spec
from .base import PUBLIC_SEED, REGISTRY, CheckResult, CheckSpec, CaseResult, run_check

current_spec().load_checks()  # registration
COMPONENTS = current_spec().component_ids  #: the components of the assignment current at import


def planned(*, public: bool) -> list[CheckSpec]:
    """The checks of a run, in a stable order: every check, or only the public subset."""
    return [s for s in REGISTRY.values() if s.public or not public]


__all__ = ["COMPONENTS", "PUBLIC_SEED", "REGISTRY", "CheckResult", "CheckSpec", "CaseResult", "planned", "run_check"]
