"""The viewer commands: ``view`` (napari with the widgets, and files) and ``demo`` (sample data).

napari and Qt are imported only here, through `napari_spines._widgets._app`, when a window opens.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from napari_spines.cli._common import fail

#: Samples the demo opens when none is named.
DEMO_SAMPLES = ("two_photon",)


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``view`` and ``demo``."""
    view_ = commands.add_parser("view", help="open napari with the widgets docked (default)")
    view_.add_argument("files", nargs="*", type=Path, help="stacks or spine tables to open")
    view_.set_defaults(handler=lambda a: view(a.files))
    demo = commands.add_parser("demo", help="open napari with the sample data and the widgets")
    demo.add_argument(
        "--sample",
        action="append",
        choices=("two_photon", "two_photon_sessions", "em"),
        help="sample to load (repeatable; default: two_photon)",
    )
    demo.add_argument(
        "--screenshot", type=Path, metavar="PNG", help="save a screenshot of the window and quit"
    )
    demo.set_defaults(
        handler=lambda a: view(samples=a.sample or DEMO_SAMPLES, screenshot=a.screenshot)
    )


def view(
    files: Sequence[Path] = (), samples: Sequence[str] = (), screenshot: Path | None = None
) -> int:
    """Open napari with our widgets docked, the given files and samples loaded.

    Files are read before the window opens, so a bad one ends the command with one line.
    """
    from napari_spines._reader import layer_data_for
    from napari_spines.io import VolumeReadError

    try:
        layer_data = [ld for path in files for ld in layer_data_for(path)]
    except VolumeReadError as exc:
        return fail(str(exc))
    from napari_spines._widgets._app import open_viewer

    open_viewer(layer_data, samples, screenshot)
    return 0
