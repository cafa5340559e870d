"""What the command modules share: one-line errors, progress on stderr, common options."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from napari_spines.errors import first_line
from napari_spines.voxel_size import VoxelSize

#: Exit code of a run stopped by bad input (argparse uses it too).
EXIT_BAD_INPUT = 2


def fail(message: str) -> int:
    """Print a one-line error for the user and return the bad-input exit code."""
    print(f"napari-spines: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def fail_with(exc: BaseException, prefix: str = "") -> int:
    """`fail` with the first line of ``exc``'s message, after ``prefix`` (e.g. a file name)."""
    return fail(f"{prefix}{first_line(exc)}")


def warn(message: str) -> None:
    """Print a one-line warning for the user."""
    print(f"napari-spines: warning: {message}", file=sys.stderr)


class TextProgress:
    """``(done, total)`` progress printed on one line of stderr, at most a few times a second."""

    def __init__(self, label: str, unit: str = "tiles") -> None:
        self.label = label
        self.unit = unit
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self._last < 0.25:
            return
        self._last = now
        end = "\n" if done >= total else ""
        percent = 100 * done // max(total, 1)
        print(
            f"\r{self.label}: {done}/{total} {self.unit} ({percent}%)",
            end=end,
            file=sys.stderr,
            flush=True,
        )


def add_voxel_size_option(parser: argparse.ArgumentParser) -> None:
    """``--voxel-size Z Y X`` in µm, overriding the file's."""
    parser.add_argument(
        "--voxel-size",
        nargs=3,
        type=float,
        metavar=("Z", "Y", "X"),
        help="voxel size of the stack in µm (default: from the file)",
    )


def add_runtime_options(parser: argparse.ArgumentParser) -> None:
    """``--runtime`` and ``--device`` of the commands that run a model."""
    parser.add_argument("--runtime", choices=("auto", "onnx", "torch"), default="auto")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")


def model_voxel_size(
    volume: Any,
    override: Sequence[float] | None,
    source: Path,
    model_voxel_um: Sequence[float] | None = None,
) -> VoxelSize:
    """The voxel size a command runs a model at: ``--voxel-size``, else the file's.

    When neither gives one, the model runs at its own voxel size, and a warning says so.

    Parameters
    ----------
    volume
        The `~napari_spines.io.volume.Volume` read from the input file.
    override
        ``--voxel-size``, or None.
    source
        The input file, named in the warning.
    model_voxel_um
        The model's voxel size, named in the warning when given.

    Returns
    -------
    VoxelSize
        Pass its ``for_model()`` to the core functions.
    """
    voxel = volume.voxel_size.given(override)
    if not voxel.known:
        assumed = f"{tuple(model_voxel_um)} µm" if model_voxel_um else "voxel size"
        warn(f"{source.name} has no voxel size; assuming the model's {assumed} (set --voxel-size)")
    return voxel


def non_negative_int(text: str) -> int:
    """Parse an integer of 0 or more (an argparse ``type``)."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value
