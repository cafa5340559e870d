"""The ``napari-spines`` command: one module per command group, the parser built here.

- `napari_spines.cli.viewer`: ``view``, ``demo`` (the only commands that import napari and Qt)
- `napari_spines.cli.models`: ``predict``, ``models``, ``devices``
- `napari_spines.cli.spines`: ``detect``, ``score``
- `napari_spines.cli.segmentation`: ``segment``, ``affinities``
- `napari_spines.cli.training`: ``train spines``, ``train affinities``
- `napari_spines.cli.files`: ``synthetic``, ``info``

Each module registers its commands with ``add_commands`` and names the function that runs each
(``handler``); heavy libraries are imported inside those functions, so ``--help`` is quick.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from napari_spines import __version__
from napari_spines.cli import files, models, segmentation, spines, training, viewer

#: The command groups, in the order ``--help`` lists them.
GROUPS = (viewer, models, spines, segmentation, training, files)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(
        prog="napari-spines",
        description="Dendritic spines and EM neuron segmentation in napari. "
        "Without a command, opens napari with the napari-spines widgets docked.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in GROUPS:
        group.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``napari-spines`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:  # no command: the viewer with the widgets
        return viewer.view()
    return handler(args)
