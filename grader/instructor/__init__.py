"""The instructor's week (issue 19): regrading a subset with history, overrides, the late policy,
Gradescope visibility and leaderboard, and GitHub Classroom's points.

Everything here works on stored per-student records, after grading: nothing in this package runs
student code or changes how a check scores.
"""
