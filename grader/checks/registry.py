"""The check registry: check id (``"<component>.<check>"``) -> its :class:`~grader.checks.base.CheckSpec`.

A module of its own, importing nothing, so that the assignment spec (which imports the check modules
and reads what they registered) and the checks (whose causes come from the spec) do not import each
other. Filled by :func:`grader.checks.base.check`.
"""
from __future__ import annotations

REGISTRY: dict = {}
