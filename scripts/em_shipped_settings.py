"""Set an affinity package's default settings per mode from its recipe's cross-validation.

    python scripts/em_shipped_settings.py --package runs/em-affinity-long-range/em-affinity \
        --cross-validation runs/em-cv-long-range --data ../shared/data/em

Reads ``cross_validation_agglomeration.json`` and ``cross_validation.json`` (the mutex
watershed, for the long-range recipe) from the cross-validation folder, writes the median of the
folds' choices per mode into the package's model.yaml (`napari_spines.training.shipped_settings`)
with the cross-validated figures, then scores the package at those defaults on the sections that
chose its checkpoint. A few minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from napari_spines.training.shipped_settings import write_shipped_settings

#: report file → how its packages were segmented
REPORTS = {
    "cross_validation_agglomeration.json": "agglomeration",
    "cross_validation.json": "mutex_watershed",
}


def main() -> None:
    """Write the settings and print what was written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", type=Path, required=True, help="affinity package folder")
    parser.add_argument("--cross-validation", type=Path, required=True, help="its CV folder")
    parser.add_argument("--data", type=Path, required=True, help="folder with isbi2012/, gala/")
    args = parser.parse_args()
    reports = {}
    for name, method in REPORTS.items():
        path = args.cross_validation / name
        if path.exists():
            reports[method] = json.loads(path.read_text())
    written = write_shipped_settings(args.package, reports, args.data)
    print(json.dumps(written, indent=1))


if __name__ == "__main__":
    main()
