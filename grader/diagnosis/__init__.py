"""Turning a wrong answer into a named cause (see ``causes.py`` for the catalogue)."""
from .causes import CAUSES, Cause
from .compare import Finding, diagnose_array, error_stats

__all__ = ["CAUSES", "Cause", "Finding", "diagnose_array", "error_stats"]
