"""The ``napari-spines`` command: one module per command group, the parser built here.

- `napari_spines.cli.viewer`: ``view``, ``demo`` (the only commands that import napari and Qt)
- `napari_spines.cli.models`: ``predict``, ``models``, ``devices``
- `napari_spines.cli.spines`: ``detect``, ``score``
- `napari_spines.cli.segmentation`: ``segment``, ``affinities``
- `napari_spines.cli.restoration`: ``crappify``, ``restore``, ``train restoration``
- `napari_spines.cli.training`: ``train spines``, ``train affinities``
- `napari_spines.cli.store`: ``training add``, ``training list``, ``finetune``
- `napari_spines.cli.files`: ``synthetic``, ``info``

Each module registers its commands with ``add_commands`` and names the function that runs each
(``handler``); heavy libraries are imported inside those functions, so ``--help`` is quick.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from napari_spines import __version__
from napari_spines.cli import (
    files,
    models,
    restoration,
    segmentation,
    sessions,
    spines,
    store,
    training,
    viewer,
)
from napari_spines.cli._common import OneLineParser, fail, fail_with, one_line_warnings
from napari_spines.errors import first_line
from napari_spines.validation import BadValue

#: The command groups, in the order ``--help`` lists them.
GROUPS = (viewer, models, spines, sessions, segmentation, restoration, training, store, files)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = OneLineParser(
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
    """Entry point of the ``napari-spines`` console script; returns the exit code.

    No exception reaches the user as a traceback: bad values and lack of memory end with exit
    code 2 and one line, an interruption with 130, anything else (a bug) with 1 and one line
    that asks for a report; ``NAPARI_SPINES_DEBUG=1`` shows the traceback instead.
    """
    args = build_parser().parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:  # no command: the viewer with the widgets
        return viewer.view()
    if os.environ.get("NAPARI_SPINES_DEBUG"):
        return handler(args)
    try:
        with one_line_warnings():
            return handler(args)
    except BadValue as exc:
        return fail_with(exc)
    except MemoryError as exc:
        return fail(f"not enough memory ({first_line(exc)}); try a smaller stack or --tile")
    except KeyboardInterrupt:
        print("\nnapari-spines: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: one line, and how to see more
        print(
            f"napari-spines: internal error: {type(exc).__name__}: {first_line(exc)} "
            "(please report it; NAPARI_SPINES_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 1
