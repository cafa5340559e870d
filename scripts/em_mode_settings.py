"""Choose em-affinity's "3d" settings (in-plane scale, threshold) on gala, cross-validated.

    python scripts/em_mode_settings.py --data ../shared/data/em [--write]

The shipped weights never trained on gala 35-49 (their checkpoint was chosen on it). The two
blocks 35-41 and 42-49 are each scored at the settings best on the other; then the settings
best on both are printed, and with ``--write`` recorded as ``postprocessing.modes.3d`` in the
built-in package's model.yaml. About a minute on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from napari_spines.models.registry import builtin_dir
from napari_spines.training.mode_settings import choose_3d_settings, record_3d_settings

SECTIONS = range(35, 50)


def main() -> None:
    """Choose, print and (with --write) record the settings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with gala/")
    parser.add_argument("--write", action="store_true", help="record them in model.yaml")
    args = parser.parse_args()
    package = builtin_dir() / "em-affinity"
    if args.write:
        report = record_3d_settings(package, args.data, SECTIONS)
    else:
        report = choose_3d_settings(package, args.data, [SECTIONS[:7], SECTIONS[7:]])
    print(json.dumps({key: report[key] for key in ("held_out", "chosen")}, indent=1))


if __name__ == "__main__":
    main()
