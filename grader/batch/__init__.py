"""Batch grading: a folder of submissions, in parallel, resumable, with every report written."""
from .executor import make_executor
from .runner import BatchOutcome, grade_batch

__all__ = ["make_executor", "BatchOutcome", "grade_batch"]
