"""The workers' fork server (grader/sandbox/zygote.py, spawner.py; issue 22).

A worker forked by the server must be indistinguishable, from inside, from one started as a new
interpreter: the same open descriptors (none of an earlier submission's), the same exit statuses,
and a server that died is replaced without losing a submission.
"""
from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

from conftest import make_submission
from grader.intake import Submission
from grader.pipeline import GradeOptions, grade_submission
from grader.sandbox import spawner

pytestmark = pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="the fork server needs pidfd_open")

FD_PROBE = '''
import os as _os
_open = []
for _fd in range(3, 512):
    try:
        _os.fstat(_fd)
        _open.append(_fd)
    except OSError:
        pass
raise ImportError("open descriptors: %d" % len(_open))
'''


def _grade(path: Path, name: str):
    return grade_submission(Submission(name, path, "dir"), GradeOptions(secret="spawner", mnist=False))


def _descriptors(r) -> int:
    m = re.search(r"open descriptors: (\d+)", r.reason)
    assert m, r.reason
    return int(m.group(1))


def test_a_forked_worker_holds_exactly_the_descriptors_of_a_started_one(tmp_path: Path, monkeypatch) -> None:
    probe = make_submission(tmp_path / "probe", layers=FD_PROBE)
    monkeypatch.setenv("GRADER_NO_FORK_SERVER", "1")
    started = _descriptors(_grade(probe, "probe-started"))  # the control: a new interpreter
    monkeypatch.delenv("GRADER_NO_FORK_SERVER")
    r = _grade(make_submission(tmp_path / "before"), "before")  # the server forks someone else first
    assert r.score == r.max_score and spawner.server_pid() is not None
    forked = _descriptors(_grade(probe, "probe-forked"))
    assert forked == started == 3, (forked, started)  # the two pipes and the arena, nothing else


def test_exit_status_of_a_forked_worker_is_reported(tmp_path: Path) -> None:
    sub = make_submission(tmp_path / "exit3", layers="import os\nos._exit(3)\n")
    r = _grade(sub, "exit3")
    assert spawner.server_pid() is not None
    assert r.status == "error" and "exited with status 3" in r.reason, r.reason
    assert r.score > 0  # logistic_regression.py is still graded


def test_a_killed_server_is_replaced_and_no_submission_is_lost(tmp_path: Path) -> None:
    good = make_submission(tmp_path / "good")
    r = _grade(good, "first")
    pid = spawner.server_pid()
    assert pid is not None and r.score == r.max_score
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.1)
    r = _grade(good, "second")
    assert r.status == "ok" and r.score == r.max_score, r.reason
    assert spawner.server_pid() not in (None, pid)


def test_without_the_server_workers_start_as_new_interpreters(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GRADER_NO_FORK_SERVER", "1")
    spawner.shutdown()
    r = _grade(make_submission(tmp_path / "plain"), "plain")
    assert r.status == "ok" and r.score == r.max_score
    assert spawner.server_pid() is None
