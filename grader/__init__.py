"""The autograder for backprop-by-hand homework.

A submission travels intake → sandbox → checks → diagnosis → scoring → report; each stage is a
sub-package of that name, and ``pipeline.py`` strings them together for one submission.
"""
__version__ = "1.0.0"
