"""Intake: find the submissions, and copy each one's two student files into a fresh scratch folder.

Only ``layers.py`` and ``logistic_regression.py`` are ever taken from a submission; the provided
files (``module.py``, ``gradcheck.py``) always come from the grader's trusted copy, so a student
cannot change them, and nothing else they shipped (``conftest.py``, ``results.json``, pickles,
binaries) is even read.
"""
from .archives import IntakeError
from .collect import LAYOUTS, Found, collect, discover
from .discover import Submission, UsageError, folder_name, student_id
from .extract import Prepared, prepare

__all__ = ["Submission", "UsageError", "discover", "collect", "Found", "LAYOUTS", "IntakeError", "Prepared",
           "prepare", "folder_name", "student_id"]
