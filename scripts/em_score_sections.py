"""Score affinity packages side by side, at their default settings, on chosen sections.

    python scripts/em_score_sections.py --data ../shared/data/em --isbi 0 15 --gala 0 35 \
        --package napari_spines/models/builtin/em-affinity runs/em-affinity-every/em-affinity

ISBI sections ``[A, B)`` are scored per section in "2d" and gala's ``[C, D)`` as one block in
"3d" (`napari_spines.training.shipped_settings.score_defaults`). To compare weights trained on
different sections, score them on sections every one of them trained on (or none did): the
default, ISBI 0–14 and gala 0–34, trained em-affinity 0.3.0 and weights trained on every
section alike. A few minutes per package on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from napari_spines.training.em_data import Split
from napari_spines.training.shipped_settings import score_defaults


def main() -> None:
    """Print each package's scores as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with isbi2012/, gala/")
    parser.add_argument("--package", type=Path, nargs="+", required=True)
    parser.add_argument("--isbi", type=int, nargs=2, default=(0, 15), metavar=("FROM", "TO"))
    parser.add_argument("--gala", type=int, nargs=2, default=(0, 35), metavar=("FROM", "TO"))
    args = parser.parse_args()
    split = Split(
        isbi_train=(),
        isbi_validate=tuple(range(*args.isbi)),
        gala_train=(),
        gala_validate=tuple(range(*args.gala)),
    )
    for package in args.package:
        print(json.dumps({str(package): score_defaults(package, args.data, split)}), flush=True)


if __name__ == "__main__":
    main()
