"""Does the tile size change a spine-detection model's heatmap, or its detections?

Runs the model over one stack with the package's default tile and with each tile given, then
prints, for every pair, the largest absolute heatmap difference, how many voxels it moves
across the detection threshold, and how many detections (`napari-spines detect`'s
post-processing) have no counterpart. ``--save DIR`` keeps each heatmap and its detections as
``DIR/heatmap_<tile>.npy`` and ``DIR/spines_<tile>.npy``; ``--against DIR`` also compares
with those of an earlier run (another version of the engine or package).

Run:  .venv/bin/python scripts/tile_invariance.py ../shared/data/two_photon/rr30a/rr30a_tp2.tif \\
          --tile 32 128 128 --tile 48 256 256
"""

import argparse
import time
from itertools import combinations
from pathlib import Path

import numpy as np

from napari_spines.io import read_volumes
from napari_spines.models import run_model
from napari_spines.models.run import ready_model
from napari_spines.spines.detection import Heatmaps


def matched(a: np.ndarray, b: np.ndarray, tolerance: float = 0.5) -> int:
    """How many points of ``a`` have a point of ``b`` within ``tolerance`` voxels."""
    if not len(a) or not len(b):
        return 0
    distance = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1)
    return int((distance.min(axis=1) <= tolerance).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", type=Path)
    parser.add_argument("-m", "--model", default="spine-2p")
    parser.add_argument("--tile", type=int, nargs=3, action="append", default=[])
    parser.add_argument("--save", type=Path)
    parser.add_argument("--against", type=Path)
    args = parser.parse_args()

    volume = read_volumes(args.image)[0]
    data, axes, voxel = volume.levels[0], volume.axes, volume.voxel_size.for_model()
    ready = ready_model(args.model, "spine-detection")
    postprocessing = ready.spec.postprocessing
    print(f"{args.model}: tiling {ready.spec.tiling}", flush=True)
    results = {}
    for tile in [None, *map(tuple, args.tile)]:
        started = time.perf_counter()
        run = run_model(ready, data, axes, voxel, tile=tile, on_model_grid=True)
        seconds = time.perf_counter() - started
        names = [o.name for o in run.spec.outputs]
        shaft = run.output("dendrite")[0] if "dendrite" in names else None
        maps = Heatmaps(run.output("heatmap")[0], shaft, axes, tuple(voxel), run.factors)
        found = maps.postprocessed(postprocessing)
        name = "default" if tile is None else "x".join(map(str, tile))
        results[name] = (np.asarray(maps.heads), found)
        print(f"tile {name}: {len(found)} spines, {seconds:.1f} s", flush=True)
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            np.save(args.save / f"heatmap_{name}.npy", np.asarray(maps.heads))
            np.save(args.save / f"spines_{name}.npy", found.coords)

    threshold = float(postprocessing.get("threshold", 0.5))
    for (name, (heads, found)), (other_name, (other, other_found)) in combinations(
        results.items(), 2
    ):
        crossed = int(((heads >= threshold) != (other >= threshold)).sum())
        print(
            f"{other_name} vs {name}: max |Δ heatmap| {np.abs(other - heads).max():.2e}, "
            f"{crossed} voxels across the threshold, spines {len(other_found)} vs {len(found)}, "
            f"{len(found) - matched(found.coords, other_found.coords)} of {name}'s "
            "without a match within 0.5 voxel"
        )
    if args.against:
        for name, (heads, found) in results.items():
            path = args.against / f"heatmap_{name}.npy"
            if path.is_file():
                earlier = np.load(path)
                before = np.load(args.against / f"spines_{name}.npy")
                print(
                    f"{name} vs {path}: max |Δ heatmap| {np.abs(heads - earlier).max():.2e}, "
                    f"spines {len(found)} vs {len(before)}, "
                    f"{len(found) - matched(found.coords, before)} without a match"
                )


if __name__ == "__main__":
    main()
