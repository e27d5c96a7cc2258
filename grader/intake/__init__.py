"""Intake: find the submissions, and copy each one's two student files into a fresh scratch folder.

Only ``layers.py`` and ``logistic_regression.py`` are ever taken from a submission; the provided
files (``module.py``, ``gradcheck.py``) always come from the grader's trusted copy, so a student
cannot change them, and nothing else they shipped (``conftest.py``, ``results.json``, pickles,
binaries) is even read.
"""
from .discover import Submission, UsageError, discover
from .extract import IntakeError, Prepared, prepare

__all__ = ["Submission", "UsageError", "discover", "IntakeError", "Prepared", "prepare"]
