"""Hidden checks show little student text: an error's message could carry a hidden input out.

:class:`HiddenTextCap` wraps the student's implementation for one hidden check (issue 21).
"""
from __future__ import annotations

from .sandbox.client import StudentError

#: Characters of student-controlled text (exception types, messages, places) shown per hidden test,
#: all its cases together. Enough to name an honest error ("ValueError: operands could not be
#: broadcast together ..."), too little to carry a hidden input out (issue 21: an exception whose
#: message was the input, base85-encoded, published every hidden case).
HIDDEN_TEXT_BUDGET = 120
_GRADER_TEXT_KINDS = ("timeout", "crash", "skipped")  # messages the grader wrote itself


class HiddenTextCap:
    """An oracle implementation whose errors carry at most ``budget`` characters of student text.

    Wraps the student's implementation for one hidden check; everything but the student-controlled
    fields of a :class:`StudentError` passes through unchanged."""

    def __init__(self, impl, budget: int = HIDDEN_TEXT_BUDGET) -> None:
        self._impl = impl
        self._left = budget

    def __getattr__(self, name):
        return getattr(self._impl, name)

    def _cap(self, exc: StudentError) -> StudentError:
        if exc.kind in ("missing", "not_attempted") or (
                exc.kind == "import" and exc.info.get("type") in ("SyntaxError", "IndentationError", "TabError")):
            # the parser's message quotes the submitted file, which the worker cannot write: nothing
            # hidden can be in it (an ImportError raised by the code itself stays capped)
            return exc
        info = dict(exc.info)
        fields = ("type",) + (() if exc.kind in _GRADER_TEXT_KINDS else ("message",)) + ("where",)
        for k in fields:
            v = str(info.get(k, "") or "")
            if not self._left:
                v = {"type": "...", "message": "[not shown for a hidden case]"}.get(k, "")
            elif len(v) > self._left:
                v = v[: self._left] + ("..." if k == "type" else " ...[rest not shown for a hidden case]")
            self._left = max(self._left - len(v), 0)
            info[k] = v
        return StudentError(info)

    def _through(self, fn, *args, **kw):
        try:
            return fn(*args, **kw)
        except StudentError as exc:
            raise self._cap(exc) from None

    def new(self, *a, **kw):
        return self._through(self._impl.new, *a, **kw)

    def set(self, *a, **kw):
        return self._through(self._impl.set, *a, **kw)

    def attr(self, *a, **kw):
        return self._through(self._impl.attr, *a, **kw)

    def call(self, *a, **kw):
        return self._through(self._impl.call, *a, **kw)

    def call_ex(self, *a, **kw):
        return self._through(self._impl.call_ex, *a, **kw)
