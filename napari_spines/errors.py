"""Turning exceptions into the one-line messages users see."""

from __future__ import annotations

#: Longer first lines (a library's dump of a tensor, say) are cut here.
MAX_MESSAGE = 300


def first_line(exc: BaseException) -> str:
    r"""The first line of an exception's message, or its type name when it has none.

    Parameters
    ----------
    exc
        Any exception.

    Returns
    -------
    str
        At most `MAX_MESSAGE` characters.

    Examples
    --------
    >>> first_line(ValueError("bad value\nmore detail"))
    'bad value'
    >>> first_line(KeyError())
    'KeyError'
    """
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:MAX_MESSAGE]


class DataWarning(UserWarning):
    """Something about the input a user should know, that napari-spines worked around.

    For example NaN or infinite voxels replaced before normalisation. The command line shows
    these as one ``warning:`` line; napari shows them as notifications.
    """
