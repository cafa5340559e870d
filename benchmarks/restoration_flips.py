"""Does averaging restore-em over flipped inputs help? PSNR and SSIM with and without.

    python benchmarks/restoration_flips.py --data DATA/em/isbi2012

The pairs are those of ``benchmarks/restoration.py --kind em`` (ISBI 10–14 with seed 1 to
choose, 15–19 with seed 2 to report); each row runs a copy of the package whose model.yaml
asks the engine for those test-time flips. About 2 minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import tifffile
import yaml
from restoration import EM_VOXEL, crappy_pairs, summary

from napari_spines.models import find_model
from napari_spines.restoration.crappify import crappified_voxel_size, preset
from napari_spines.restoration.restore import restore

FLIPS = ((), ("x",), ("x", "y", "yx"))


def with_flips(source: Path, flips: tuple[str, ...], folder: Path) -> Path:
    """A copy of the package at ``source`` whose engine averages over ``flips``."""
    copy = folder / f"flips-{len(flips)}"
    shutil.copytree(source, copy)
    card = yaml.safe_load((copy / "model.yaml").read_text())
    if flips:
        card["test_time_flips"] = list(flips)
    (copy / "model.yaml").write_text(yaml.safe_dump(card, sort_keys=False))
    return copy


def main() -> None:
    """Print one line per part and flip set."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the isbi2012 folder")
    parser.add_argument("--model", default="restore-em")
    args = parser.parse_args()
    image = tifffile.imread(args.data / "isbi2012_train_image.tif")
    crappifier = preset("em-4x")
    voxel = crappified_voxel_size(crappifier, EM_VOXEL)
    source = Path(find_model(args.model).root)
    with tempfile.TemporaryDirectory() as folder:
        packages = {flips: with_flips(source, flips, Path(folder)) for flips in FLIPS}
        for part, sections, seed in (("choose", slice(10, 15), 1), ("report", slice(15, 20), 2)):
            pairs = crappy_pairs([image[sections]], crappifier, EM_VOXEL, seed=seed)
            for flips, package in packages.items():
                started = time.perf_counter()
                restored = [restore(p[0], "ZYX", str(package), voxel).image for p in pairs]
                row = summary(restored, pairs, time.perf_counter() - started, None)
                print(part, sections, "flips", list(flips), row, flush=True)


if __name__ == "__main__":
    main()
