"""The limits and layer switches of one sandbox worker, and the refusal to run without them."""
from __future__ import annotations

import os
from dataclasses import dataclass

from .worker import BLOCKED_IMPORTS

#: Layers that can be switched off for a run, by configuration or by GRADER_SANDBOX_OFF="a,b".
SWITCHABLE = ("landlock", "seccomp", "network", "view", "uid")


class SandboxRefused(RuntimeError):
    """The machine does not offer enough isolation to run untrusted code (and no opt-in was given)."""


@dataclass(frozen=True)
class SandboxConfig:
    """Limits of one worker. Times in seconds, sizes in bytes."""

    call_timeout: float = 5.0
    start_timeout: float = 20.0
    cpu_seconds: int = 300
    address_space: int = 3 << 30
    file_size: int = 16 << 20
    open_files: int = 64
    processes: int = 64
    max_restarts: int = 6
    max_reply_bytes: int = 128 << 20
    #: Cap on the arrays of one reply to a single call (new/set/attr/call): the largest legitimate
    #: one, gradients of the MNIST network, is 0.3 MB. Only training reports may be larger. Checked
    #: before the parent allocates anything (issue 21: 130 MB replies took a grading process down).
    max_call_reply_bytes: int = 16 << 20
    output_cap: int = 16 << 10
    #: Total seconds a submission's answered calls may take (training runs aside, they have their own
    #: budget); None: 6 x call_timeout. Without it, a call that always answers just under call_timeout
    #: keeps one submission busy for hours (some 450 calls).
    answer_budget: float | None = None
    work_dir_bytes: int = 64 << 20  #: size of the private tmpfs over the writable folder (root only)
    uid_base: int = 850_000
    #: seconds to import one student file (its imports included: scipy, matplotlib, ...); not part of
    #: the call timeout, so a slow import never costs a correct submission its first check
    import_timeout: float = 20.0
    landlock: bool = True
    seccomp: bool = True
    network: bool = True
    view: bool = True        #: the file-system view (a private read-only root, as root)
    private_uid: bool = True  #: as root, drop to a private uid
    #: grade even when the machine lacks the layers that hide the grader (no view and no landlock) or
    #: when student code would keep root; the instructor's explicit choice (also GRADER_SANDBOX_ALLOW_WEAK=1)
    allow_weak: bool = False
    #: class name -> student module, sent to the worker (the assignment spec's, grader/spec.py);
    #: empty: the current assignment's
    student_modules: tuple[tuple[str, str], ...] = ()
    #: the import policy: top-level module name -> library name shown in the message (None: default)
    blocked_imports: tuple[tuple[str, str], ...] | None = None

    def effective(self) -> dict[str, bool]:
        """The layer switches after GRADER_SANDBOX_OFF / GRADER_SANDBOX_ALLOW_WEAK from the environment."""
        off = {x.strip() for x in os.environ.get("GRADER_SANDBOX_OFF", "").split(",") if x.strip()}
        unknown = off - set(SWITCHABLE)
        if unknown:
            raise SandboxRefused(f"GRADER_SANDBOX_OFF names unknown layers {sorted(unknown)}; known: {', '.join(SWITCHABLE)}")
        return {"landlock": self.landlock and "landlock" not in off, "seccomp": self.seccomp and "seccomp" not in off,
                "network": self.network and "network" not in off, "view": self.view and "view" not in off,
                "private_uid": self.private_uid and "uid" not in off,
                "allow_weak": self.allow_weak or os.environ.get("GRADER_SANDBOX_ALLOW_WEAK", "") == "1"}

    def blocked(self) -> dict[str, str]:
        return dict(BLOCKED_IMPORTS if self.blocked_imports is None else self.blocked_imports)
