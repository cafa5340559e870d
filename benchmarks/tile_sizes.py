"""A built-in model's tile size: time, peak memory and the largest change of its output.

    python benchmarks/tile_sizes.py --model em-affinity \
        --image ../shared/data/em/isbi2012/isbi2012_train_image.tif \
        [--tile 16 256 256 --tile 16 512 512 ...]
    python benchmarks/tile_sizes.py --model spine-2p \
        --image ../shared/data/two_photon/rr30a/rr30a_tp2.tif \
        [--tile 112 256 256 --tile 112 384 384 ...]

Each tile size is written into a copy of the package's model.yaml and the stack is run in a
fresh process (time and ``ru_maxrss`` are that process's own): em-affinity predicts every
channel of its affinities (`predict_affinities`), spine-2p detects spines as
``napari-spines detect`` does (`detect_spines`, the stack's own voxel size). The halo stays the
package's, so only the share of each tile spent on its halo changes: the output may differ by
float rounding only, which the last column shows against the first tile size (for spine-2p,
the largest change of a detection's score, or "differs" when the detections are not the same
spines).
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
image_path, model, package, out = sys.argv[1:5]
if model == "em-affinity":
    from napari_spines.segmentation.pipeline import predict_affinities
    image = tifffile.imread(image_path)
    started = time.perf_counter()
    output = predict_affinities(image, "ZYX", package, every_channel=True)
    seconds = time.perf_counter() - started
    np.save(out, output)
else:
    from napari_spines.io import read_volumes
    from napari_spines.spines.detection import detect_spines
    volume = read_volumes(image_path)[0]
    image = np.asarray(volume.levels[0])
    started = time.perf_counter()
    found = detect_spines(image, "ZYX", package, volume.voxel_size_um)
    seconds = time.perf_counter() - started
    np.savez(out, coords=found.coords, scores=found.scores)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mib": peak, "voxels": int(image.size)}))
"""

#: The tiles measured when none is given: the shipped one among them.
TILES = {
    "em-affinity": [[16, 256, 256], [16, 384, 384], [16, 512, 512]],
    "spine-2p": [[112, 256, 256], [112, 320, 320], [112, 384, 384]],
}


def change(model: str, output: object, reference: object) -> str:
    """Largest change of the output against the first tile size's, as printed."""
    if model == "em-affinity":
        return f"{float(np.abs(output - reference).max()):.2g}"
    if output["coords"].shape != reference["coords"].shape or not np.array_equal(
        output["coords"], reference["coords"]
    ):
        return "differs"
    return f"{float(np.abs(output['scores'] - reference['scores']).max()):.2g}"


def main() -> None:
    """Print one table row per tile size."""
    from napari_spines.models import find_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=tuple(TILES), default="em-affinity")
    parser.add_argument("--image", type=Path, required=True, help="a ZYX stack")
    parser.add_argument(
        "--tile", type=int, nargs=3, action="append", help="z y x; the first is the reference"
    )
    args = parser.parse_args()
    tiles = args.tile or TILES[args.model]
    builtin = find_model(args.model).root
    print("| tile (z y x) | time (s) | Mvoxel/s | peak memory (MiB) | largest change |")
    print("| --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        reference = None
        for tile in tiles:
            package = Path(tmp) / f"{args.model}-{'x'.join(map(str, tile))}"
            shutil.copytree(builtin, package)
            spec = yaml.safe_load((package / "model.yaml").read_text())
            spec["tiling"]["tile"] = list(tile)
            (package / "model.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
            out = Path(tmp) / f"{package.name}.{'npy' if args.model == 'em-affinity' else 'npz'}"
            command = [sys.executable, "-c", MEASURE, str(args.image), args.model]
            run = subprocess.run([*command, str(package), str(out)], capture_output=True, text=True)
            if run.returncode:
                raise SystemExit(f"tile {tile}: {run.stderr.strip().splitlines()[-1]}")
            row = json.loads(run.stdout.strip().splitlines()[-1])
            output = np.load(out)
            if reference is None:
                reference, changed = output, "0"
            else:
                changed = change(args.model, output, reference)
            rate = row["voxels"] / row["seconds"] / 1e6
            print(
                f"| {' × '.join(map(str, tile))} | {row['seconds']:.1f} | {rate:.2f} "
                f"| {row['peak_mib']:.0f} | {changed} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
