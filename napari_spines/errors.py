"""Turning exceptions into the one-line messages users see."""

from __future__ import annotations

#: Longer first lines (a library's dump of a tensor, say) are cut here.
MAX_MESSAGE = 300


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type name when it has none."""
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:MAX_MESSAGE]
