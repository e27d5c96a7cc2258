"""Process clean-up: every process of a sandbox's private uid is found and killed at the end."""
from __future__ import annotations

import os
import signal
import time


def live_uids(*, live: bool = False) -> dict[int, int]:
    """pid -> real uid of every process (``live``: zombies left out)."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/status") as fh:
                    for line in fh:
                        if live and line.startswith("State:") and line.split()[1] in ("Z", "X"):
                            break  # a zombie: already dead, waiting for init to reap it
                        if line.startswith("Uid:"):
                            out[int(entry)] = int(line.split()[1])
                            break
            except OSError:
                pass
    return out


def processes_of_uid(uid: int) -> list[int]:
    """Live processes of ``uid`` (killed ones linger as zombies until reaped; they cannot be killed)."""
    return [pid for pid, u in live_uids(live=True).items() if u == uid]


def kill_uid(uid: int) -> int:
    """Kill every process running as ``uid`` (a sandbox uid nothing else uses); returns how many."""
    killed = 0
    for _ in range(50):
        pids = processes_of_uid(uid)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except OSError:
                pass
        time.sleep(0.01)
    return killed


def describe_exit(status: int | None) -> str:
    if status is None:
        return "the worker process ended without answering"
    if status < 0:
        sig = -status
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        why = {"SIGKILL": " (killed: memory or CPU-time limit, or the grader)", "SIGXCPU": " (CPU-time limit)",
               "SIGSEGV": " (segmentation fault)", "SIGXFSZ": " (file-size limit: too much output?)",
               "SIGSYS": " (a forbidden system call)"}.get(name, "")
        return f"the worker process was killed by {name}{why}"
    return f"the worker process exited with status {status} (sys.exit or os._exit in the submission?)"
