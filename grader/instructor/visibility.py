"""What students see on Gradescope: the rubric's ``[visibility]`` and ``[leaderboard]`` tables.

Gradescope's visibility values are ``visible``, ``hidden``, ``after_due_date`` and
``after_published``. Defaults (CONTRACT.md): public tests ``visible``, hidden tests ``after_due_date``,
the autograder's stdout ``hidden``. The top-level ``visibility`` (the score) is by default the most
restrictive visibility of any test: Gradescope does not show the total while a test is hidden, and a
total shown before the due date would reveal the hidden tests' points in aggregate; tests with their
own ``visible`` stay visible. Outputs are written as Markdown (``"output_format": "md"``), with every
character Markdown would interpret escaped, so that feedback renders and student-derived text cannot
become a link, an image or HTML.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

VISIBILITIES = ("visible", "after_published", "after_due_date", "hidden")  #: least to most restrictive
KEYS = {"public", "hidden", "stdout", "score"}
LEADERBOARD_KEYS = {"enabled", "accuracy", "training_time", "component"}


class VisibilityError(ValueError):
    pass


def _end_to_end_ids(spec=None) -> tuple[str, ...]:
    from ..spec import current_spec

    return (spec or current_spec()).end_to_end_ids


def _default_board(spec=None) -> str:
    """The leaderboard's test by default: the assignment's first end-to-end test (if any)."""
    ids = _end_to_end_ids(spec)
    return ids[0] if ids else ""


@dataclass(frozen=True)
class Presentation:
    public: str = "visible"
    hidden: str = "after_due_date"
    stdout: str = "hidden"
    score: str = "auto"                      #: "auto" or a visibility value
    leaderboard: bool = False
    board_accuracy: bool = True
    board_time: bool = True
    board_component: str = field(default_factory=_default_board)

    def test(self, kind: str) -> str:
        return self.public if kind == "public" else self.hidden


DEFAULT = Presentation()


def parse_presentation(vis: dict | None, board: dict | None, where: str, spec=None) -> Presentation:
    vis, board = vis or {}, board or {}
    for name, table, keys in (("visibility", vis, KEYS), ("leaderboard", board, LEADERBOARD_KEYS)):
        unknown = sorted(set(table) - keys)
        if unknown:
            raise VisibilityError(f"{where} [{name}]: unknown keys {', '.join(unknown)}; known: {', '.join(sorted(keys))}")
    for k in ("public", "hidden", "stdout", "score"):
        allowed = VISIBILITIES + (("auto",) if k == "score" else ())
        if k in vis and vis[k] not in allowed:
            raise VisibilityError(f"{where} [visibility]: {k} must be one of {', '.join(allowed)}, not {vis[k]!r}")
    for k in ("enabled", "accuracy", "training_time"):
        if k in board and not isinstance(board[k], bool):
            raise VisibilityError(f"{where} [leaderboard]: {k} must be true or false")
    ids = _end_to_end_ids(spec)
    comp = board.get("component", _default_board(spec))
    if comp not in ids and (comp or board.get("enabled")):
        raise VisibilityError(f"{where} [leaderboard]: component must be {' or '.join(ids) or 'an end-to-end test'}")
    return Presentation(vis.get("public", "visible"), vis.get("hidden", "after_due_date"), vis.get("stdout", "hidden"),
                        vis.get("score", "auto"), bool(board.get("enabled", False)), board.get("accuracy", True),
                        board.get("training_time", True), comp)


_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")        #: special anywhere in a line
_MD_LINE_START = re.compile(r"^([#>+=-])")      #: special only where a line starts
_MD_ORDERED = re.compile(r"^(\d+)([.)])")     #: "1." would start a numbered list


def markdown(text: str) -> str:
    """Plain text as Markdown that renders as the same text: specials escaped, HTML neutralised,
    lines kept as lines (hard breaks), ``What to try:`` in bold."""
    out = []
    for line in text.splitlines():
        s = line.strip()
        s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        s = _MD_SPECIAL.sub(r"\\\1", s)
        s = _MD_LINE_START.sub(lambda m: "\\" + m.group(1), s)
        s = _MD_ORDERED.sub(lambda m: m.group(1) + "\\" + m.group(2), s)
        s = s.replace("://", ":\\/\\/").replace("www.", "www\\.")  # no automatic links
        if s.startswith("What to try:"):
            s = "**What to try:**" + s[len("What to try:"):]
        out.append(s)
    return "  \n".join(out)


def most_restrictive(values) -> str:
    return max(values, key=VISIBILITIES.index, default="visible")


def present(doc: dict, result, pres: Presentation | None = None) -> dict:
    """Apply visibility, Markdown output and the leaderboard to a results.json document in place."""
    pres = pres or DEFAULT
    for t, src in zip(doc["tests"], result.tests):
        t["visibility"] = pres.test(src.visibility)
        t["output"] = markdown(t["output"])
        t["output_format"] = "md"
    doc["output"] = markdown(doc["output"])
    doc["output_format"] = "md"
    doc["visibility"] = (most_restrictive(t["visibility"] for t in doc["tests"]) if pres.score == "auto"
                         else pres.score)
    doc["stdout_visibility"] = pres.stdout
    if pres.leaderboard:
        board = leaderboard(result, pres)
        if board:
            doc["leaderboard"] = board
    return doc


def leaderboard(result, pres: Presentation) -> list[dict]:
    """Gradescope leaderboard entries: test accuracy (higher first) and training time (lower first) of
    the rubric's MNIST test, from what trusted code measured; nothing when it did not run."""
    comp = pres.board_component
    acc = (result.mnist.get(comp) or {}).get("accuracy")
    seconds = result.timings.get(comp)
    out = []
    if pres.board_accuracy and isinstance(acc, (int, float)):
        out.append({"name": f"{comp} accuracy", "value": round(float(acc), 4)})
    if pres.board_time and isinstance(seconds, (int, float)) and isinstance(acc, (int, float)):
        out.append({"name": f"{comp} training time (s)", "value": round(float(seconds), 2), "order": "asc"})
    return out
