"""The checks every entry point shares: numbers that are finite, positive and sane, and memory.

The command line, the widgets, the file readers and the model specs all call these, so a bad
value gets the same one-line message wherever it comes from, before any work starts or any
memory is allocated. Each message names the value and says what to do.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

#: Voxel sizes outside this range (µm) are typing errors or wrong units, not microscopes:
#: 0.1 nm is below any EM voxel, 1 mm above any light-microscopy voxel.
VOXEL_SIZE_RANGE_UM = (1e-4, 1000.0)
#: Longest tile side, in voxels, that a model spec or ``--tile`` may ask for.
MAX_TILE = 2048


class BadValue(ValueError):
    """A value given to napari-spines that it cannot use; the message says why, in one line."""


class NotEnoughMemory(BadValue):
    """A run would need far more memory than this machine has."""


def check_finite(value: float, name: str) -> float:
    """``value`` as a float when it is a finite number, else `BadValue`.

    Parameters
    ----------
    value
        The number.
    name
        What it is, as the user knows it (e.g. ``"--threshold"``).

    Returns
    -------
    float

    Examples
    --------
    >>> check_finite("0.5", "--threshold")
    0.5
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BadValue(f"{name} must be a number, not {value!r}") from None
    if not math.isfinite(number):
        raise BadValue(f"{name} must be a finite number, not {value}")
    return number


def check_range(
    value: float, name: str, low: float | None = None, high: float | None = None
) -> float:
    """``value`` when it is finite and within ``[low, high]`` (either may be None), else `BadValue`.

    Parameters
    ----------
    value
        The number.
    name
        What it is, as the user knows it.
    low, high
        Inclusive bounds; None for no bound.

    Returns
    -------
    float
    """
    number = check_finite(value, name)
    if (low is not None and number < low) or (high is not None and number > high):
        bounds = (
            f"between {low:g} and {high:g}"
            if low is not None and high is not None
            else (f"at least {low:g}" if low is not None else f"at most {high:g}")
        )
        raise BadValue(f"{name} must be {bounds}, not {number:g}")
    return number


def check_positive(value: float, name: str) -> float:
    """``value`` when it is a finite number above 0, else `BadValue`.

    Parameters
    ----------
    value
        The number.
    name
        What it is, as the user knows it.

    Returns
    -------
    float
    """
    number = check_finite(value, name)
    if number <= 0:
        raise BadValue(f"{name} must be positive, not {number:g}")
    return number


def check_positive_int(value: int, name: str, high: int | None = None) -> int:
    """``value`` when it is a whole number of at least 1 (and at most ``high``), else `BadValue`.

    Parameters
    ----------
    value
        The number.
    name
        What it is, as the user knows it.
    high
        Largest value allowed; None for no bound.

    Returns
    -------
    int
    """
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise BadValue(f"{name} must be a whole number, not {value!r}") from None
    if number != value and not isinstance(value, str):
        raise BadValue(f"{name} must be a whole number, not {value}")
    if number < 1:
        raise BadValue(f"{name} must be 1 or more, not {number}")
    if high is not None and number > high:
        raise BadValue(f"{name} must be at most {high}, not {number}")
    return number


def check_voxel_size(values: Sequence[float], name: str = "voxel size") -> tuple[float, ...]:
    """The voxel size in µm when every value is finite, positive and within `VOXEL_SIZE_RANGE_UM`.

    Parameters
    ----------
    values
        µm per spatial axis.
    name
        Where it came from (``"--voxel-size"``, a file's name).

    Returns
    -------
    tuple of float

    Raises
    ------
    BadValue
        A value that is not a number, not finite, not positive, or outside the sane range.

    Examples
    --------
    >>> check_voxel_size((1, 0.2, 0.2))
    (1.0, 0.2, 0.2)
    """
    low, high = VOXEL_SIZE_RANGE_UM
    sizes = tuple(check_positive(v, f"{name} (µm)") for v in values)
    for size in sizes:
        if not low <= size <= high:
            raise BadValue(
                f"{name} {_format(sizes)} µm is outside {low:g}–{high:g} µm; give it in micrometres"
            )
    return sizes


def check_tile(tile: Sequence[int], name: str = "tile") -> tuple[int, ...]:
    """A tile size when every side is a whole number from 1 to `MAX_TILE`.

    The engine grows a side that leaves no room inside the model's halo to the smallest that
    does, so a small tile is not an error.

    Parameters
    ----------
    tile
        Voxels per axis.
    name
        What it is, as the user knows it (``"--tile"``).

    Returns
    -------
    tuple of int

    Raises
    ------
    BadValue
        A side that is not a whole number, is 0 or less, or is larger than `MAX_TILE`.
    """
    return tuple(check_positive_int(t, name, high=MAX_TILE) for t in tile)


def memory_bytes() -> int:
    """The memory a run may plan for: ``$NAPARI_SPINES_MEMORY_GB``, else the machine's RAM.

    Returns
    -------
    int
        Bytes.
    """
    if env := os.environ.get("NAPARI_SPINES_MEMORY_GB"):
        return int(float(env) * 2**30)
    import psutil

    return int(psutil.virtual_memory().total)


def check_memory(nbytes: float, what: str, hint: str = "") -> None:
    """Raise `NotEnoughMemory` when ``nbytes`` is more than this machine's memory.

    Parameters
    ----------
    nbytes
        The estimated peak.
    what
        What needs it, e.g. ``"the output (3, 1750, 25600, 25600)"``.
    hint
        What the user can do, appended to the message.

    Raises
    ------
    NotEnoughMemory
        ``nbytes`` exceeds `memory_bytes`.
    """
    have = memory_bytes()
    if nbytes > have:
        message = (
            f"{what} needs about {format_bytes(nbytes)} of memory; "
            f"this machine has {format_bytes(have)}"
        )
        raise NotEnoughMemory(f"{message}; {hint}" if hint else message)


def format_bytes(nbytes: float) -> str:
    """``"3.7 GiB"``.

    Parameters
    ----------
    nbytes
        A size in bytes.

    Returns
    -------
    str

    Examples
    --------
    >>> format_bytes(3.7 * 2**30)
    '3.7 GiB'
    >>> format_bytes(512)
    '512 B'
    """
    for unit, size in (("PiB", 2**50), ("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if nbytes >= size:
            return f"{nbytes / size:.1f} {unit}"
    if nbytes >= 2**10:
        return f"{nbytes / 2**10:.1f} KiB"
    return f"{int(nbytes)} B"


def _format(values: Sequence[float]) -> str:
    return " × ".join(f"{v:g}" for v in values)
