"""Scoring: the rubric (points per check) and the results model every report is written from."""
from .rubric import MnistRule, Rubric, load_rubric
from .results import STATUSES, SubmissionResult, TestResult

__all__ = ["MnistRule", "Rubric", "load_rubric", "STATUSES", "SubmissionResult", "TestResult"]
