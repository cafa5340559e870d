"""em-affinity's tile size: time, peak memory and the largest change of an affinity.

    python benchmarks/affinity_tiles.py --data ../shared/data/em/isbi2012 \
        [--tile 16 256 256 --tile 16 512 512 ...]

Each tile size is written into a copy of the em-affinity package's model.yaml, and every
channel of its affinities of the 20 ISBI sections (20 × 512 × 512) is predicted in a fresh
process (`predict_affinities`; time and ``ru_maxrss`` are that process's own). The halo stays
the package's, so only the share of each tile spent on its halo changes: the affinities may
differ by float rounding only, which the last column shows against the first tile size.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

MEASURE = r"""
import json, resource, sys, time
import numpy as np, tifffile
from napari_spines.segmentation.pipeline import predict_affinities
image_path, package, out = sys.argv[1:4]
image = tifffile.imread(image_path)
started = time.perf_counter()
affinities = predict_affinities(image, "ZYX", package, every_channel=True)
seconds = time.perf_counter() - started
np.save(out, affinities)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mib": peak, "voxels": int(image.size)}))
"""


def main() -> None:
    """Print one table row per tile size."""
    from napari_spines.models import find_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the isbi2012 folder")
    parser.add_argument(
        "--tile", type=int, nargs=3, action="append", help="z y x; the first is the reference"
    )
    args = parser.parse_args()
    tiles = args.tile or [[16, 256, 256], [16, 384, 384], [16, 512, 512]]
    builtin = find_model("em-affinity").root
    image = args.data / "isbi2012_train_image.tif"
    print("| tile (z y x) | time (s) | Mvoxel/s | peak memory (MiB) | largest change |")
    print("| --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        reference = None
        for tile in tiles:
            package = Path(tmp) / f"em-affinity-{'x'.join(map(str, tile))}"
            shutil.copytree(builtin, package)
            spec = yaml.safe_load((package / "model.yaml").read_text())
            spec["tiling"]["tile"] = list(tile)
            (package / "model.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
            out = Path(tmp) / f"{package.name}.npy"
            run = subprocess.run(
                [sys.executable, "-c", MEASURE, str(image), str(package), str(out)],
                capture_output=True,
                text=True,
            )
            if run.returncode:
                raise SystemExit(f"tile {tile}: {run.stderr.strip().splitlines()[-1]}")
            row = json.loads(run.stdout.strip().splitlines()[-1])
            affinities = np.load(out)
            if reference is None:
                reference, change = affinities, 0.0
            else:
                change = float(np.abs(affinities - reference).max())
            out.unlink()
            rate = row["voxels"] / row["seconds"] / 1e6
            print(
                f"| {' × '.join(map(str, tile))} | {row['seconds']:.1f} | {rate:.2f} "
                f"| {row['peak_mib']:.0f} | {change:.2g} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
