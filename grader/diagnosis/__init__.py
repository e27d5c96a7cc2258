"""Turning a wrong answer into a named cause (see ``causes.py`` for the catalogue)."""
from .causes import CAUSES, Cause
from .compare import Finding, compare_array, diagnose_array, error_stats

__all__ = ["CAUSES", "Cause", "Finding", "compare_array", "diagnose_array", "error_stats"]
