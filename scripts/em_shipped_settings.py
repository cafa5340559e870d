"""Set an affinity package's default settings per mode from its recipe's cross-validation.

    python scripts/em_shipped_settings.py --package runs/em-affinity-long-range/em-affinity \
        --cross-validation runs/em-cv-long-range --data ../shared/data/em

Reads ``cross_validation_agglomeration.json`` and ``cross_validation.json`` (the mutex
watershed, for the long-range recipe) from the cross-validation folder, writes the median of the
folds' choices per mode into the package's model.yaml (`napari_spines.training.shipped_settings`)
with the cross-validated figures, then scores the package at those defaults on the sections that
chose its checkpoint. A few minutes on a 2-core CPU.

Weights trained again with the same recipe take the settings of a package made so:

    python scripts/em_shipped_settings.py --package runs/em-affinity-every/em-affinity \
        --settings-from napari_spines/models/builtin/em-affinity --data ../shared/data/em \
        --trained-on-every-section
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from napari_spines.training.shipped_settings import (
    settings_of_package,
    shipped_settings,
    write_shipped_settings,
)

#: report file → how its packages were segmented
REPORTS = {
    "cross_validation_agglomeration.json": "agglomeration",
    "cross_validation.json": "mutex_watershed",
}


def main() -> None:
    """Write the settings and print what was written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", type=Path, required=True, help="affinity package folder")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--cross-validation", type=Path, help="its recipe's CV folder")
    source.add_argument(
        "--settings-from", type=Path, help="a package of the same recipe whose settings to take"
    )
    parser.add_argument("--data", type=Path, required=True, help="folder with isbi2012/, gala/")
    parser.add_argument(
        "--trained-on-every-section",
        action="store_true",
        help="the weights trained on the scored sections: record the scores as a check only",
    )
    args = parser.parse_args()
    if args.settings_from is not None:
        settings = settings_of_package(args.settings_from)
    else:
        reports = {}
        for name, method in REPORTS.items():
            path = args.cross_validation / name
            if path.exists():
                reports[method] = json.loads(path.read_text())
        settings = shipped_settings(reports)
    written = write_shipped_settings(
        args.package, settings, args.data, trained_on_them=args.trained_on_every_section
    )
    print(json.dumps(written, indent=1))


if __name__ == "__main__":
    main()
