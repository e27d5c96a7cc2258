"""Submissions that attack the grader around its sandbox (issue 21), as builders for tests and bench.

Each builder writes one submission folder (the reference files with one hostile edit) and returns
its path. They are used by ``tests/test_boundaries.py`` and ``bench/load_independence.py``.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from conftest import ROOT, make_submission

# ReLU.forward raises an exception whose message holds a lone surrogate: it crosses the JSON pipe
# intact, and writing it as UTF-8 raised UnicodeEncodeError for the whole batch.
SURROGATE = ("return np.maximum(X, 0)", "raise ValueError('bad value \\ud800 here')")

# Every method of the MLP layers raises its first input, base85-encoded, as the message.
LEAK_PREFIX = "LEAK:"
LEAK_HELPER = '''
import base64 as _b64


def _leak(*arrays):
    raise ValueError("LEAK:" + "".join(_b64.b85encode(np.ascontiguousarray(a).tobytes()).decode()
                                         for a in arrays if isinstance(a, np.ndarray)))
'''

# Linear.gradients returns a list instead of a dict.
LIST_GRADIENTS = ('return {"W": self.grad_W, "b": self.grad_b}', 'return [self.grad_W, self.grad_b]')

# Outside the worker's own training loop (in the parent's MNIST direction check), Linear.gradients
# answers with two 60 MB float16 arrays: under the old 128 MB reply cap, and each converted to
# float64 in the parent (480 MB for one layer), enough to take a grading process (and every
# submission queued with it) down in a batch under a memory limit.
HUGE_REPLY = ('return {"W": self.grad_W, "b": self.grad_b}', '''import sys as _sys
        f = _sys._getframe(1)
        training = False
        while f is not None:
            training = training or f.f_code.co_name == "_train"
            f = f.f_back
        if not training and getattr(self, "_X", None) is not None and self._X.shape[0] == 64:
            big = np.ones(30_000_000, dtype=np.float16)
            return {"W": big, "b": big.copy()}
        return {"W": self.grad_W, "b": self.grad_b}''')

# At import, patch the worker's dispatcher: every call answers just under the 5 s call time-out,
# the training-data message just under its 60 s, training just under ten minutes.
STALL = '''
import sys as _sys
import time as _time

# the worker's module: "__main__" when started as a script, "worker" in a child of the fork server
_D = (getattr(_sys.modules.get("worker"), "Dispatcher", None)
      or getattr(_sys.modules.get("__main__"), "Dispatcher", None))
if _D is not None and not getattr(_D, "_stalled", False):
    _orig = _D.handle

    def _slow(self, head, arrays):
        op = head.get("op")
        _time.sleep({"data": 58.0, "train": 590.0, "call": 4.7}.get(op, 0.0))
        return _orig(self, head, arrays)

    _D.handle = _slow
    _D._stalled = True
'''


def surrogate_message(dest: Path) -> Path:
    return make_submission(dest, replace={"layers.py": SURROGATE})


def base85_leak(dest: Path) -> Path:
    text = (ROOT / "solutions" / "layers.py").read_text()
    marker = "\n\nclass Linear"
    assert marker in text
    text = text.replace(marker, "\n" + LEAK_HELPER + marker, 1)
    for old in ("return X @ self.W + self.b", "return np.maximum(X, 0)"):
        assert old in text
        text = text.replace(old, "_leak(X)")
    return make_submission(dest, layers=text)


def list_gradients(dest: Path) -> Path:
    return make_submission(dest, replace={"layers.py": LIST_GRADIENTS})


def huge_replies(dest: Path) -> Path:
    return make_submission(dest, replace={"layers.py": HUGE_REPLY})


def stalling(dest: Path) -> Path:
    d = make_submission(dest)
    text = (d / "layers.py").read_text()
    (d / "layers.py").write_text(text + "\n" + STALL)
    return d


def nonutf8_symlink(dest: Path) -> Path:
    """``layers.py`` is a link whose target name is not UTF-8 (the target exists and is correct)."""
    d = make_submission(dest)
    target = os.fsencode(d) + b"/real\xff\xfe.py"
    shutil.move(str(d / "layers.py"), target)
    os.symlink(b"real\xff\xfe.py", os.fsencode(d / "layers.py"))
    return d


def nonutf8_folder(parent: Path, stem: bytes = b"caf\xe9_latin1") -> Path:
    """A correct submission whose folder name is not UTF-8 (a Latin-1 name from an old archive)."""
    path = Path(os.fsdecode(os.fsencode(parent) + b"/" + stem))
    return make_submission(path)


def correct(dest: Path, i: int) -> Path:
    """The i-th correct submission: the reference or one of the correct styles in the fixtures."""
    styles = sorted(p for p in (ROOT / "tests/fixtures/correct").iterdir() if p.is_dir())
    if i % (len(styles) + 1) == len(styles):
        return make_submission(dest)
    shutil.copytree(styles[i % (len(styles) + 1)], dest)
    return dest
