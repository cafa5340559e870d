"""Time to the first plane and peak memory when opening a 1 GiB stack: lazy reader vs eager read.

Run:  .venv/bin/python benchmarks/open_large_stack.py [--gib 1.0]

Each measurement runs in a fresh process so peak RSS is its own. The baseline reads the whole
file into memory as napari's default TIFF reader (tifffile.imread) and a plain h5py read do.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import tifffile

MEASURE = r"""
import json, resource, sys, time
import numpy as np
t0 = time.perf_counter()
path, how = sys.argv[1], sys.argv[2]
if how == "napari-spines lazy":
    from napari_spines.io import read_volumes, volume_to_layer_data
    (volume,) = read_volumes(path)
    layer = volume_to_layer_data(volume)  # includes contrast limits from the middle plane
    plane = np.asarray(volume.data[0])
    lazy = volume.lazy
elif how == "tifffile.imread (eager)":
    import tifffile
    data = tifffile.imread(path); plane = data[0]; lazy = False
else:
    import h5py
    with h5py.File(path, "r") as f:
        data = f["raw"][()]
    plane = data[0]; lazy = False
seconds = time.perf_counter() - t0
peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mib": peak_mib, "lazy": lazy}))
"""


def make_stack(folder: Path, gib: float) -> tuple[Path, Path]:
    """Write a uint16 stack of about ``gib`` GiB as TIFF and as chunked HDF5."""
    plane = np.random.default_rng(0).integers(0, 4000, size=(1024, 2048), dtype=np.uint16)
    n = int(gib * 2**30 / plane.nbytes)
    tif, h5 = folder / "large.tif", folder / "large.h5"
    with tifffile.TiffWriter(tif, bigtiff=True, imagej=False) as writer:
        for i in range(n):
            writer.write(
                np.roll(plane, i, axis=1),
                contiguous=True,
                resolution=(1 / 0.12, 1 / 0.12),
                resolutionunit="CENTIMETER",
            )
    with h5py.File(h5, "w") as f:
        ds = f.create_dataset(
            "raw", shape=(n, *plane.shape), dtype=plane.dtype, chunks=(1, 512, 512)
        )
        for i in range(n):
            ds[i] = np.roll(plane, i, axis=1)
    return tif, h5


def measure(path: Path, how: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path), how], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        tif, h5 = make_stack(Path(tmp), args.gib)
        size = tif.stat().st_size / 2**20
        print(f"wrote {size:.0f} MiB stacks in {time.perf_counter() - t0:.0f} s")
        print("| file | reader | lazy | time to first plane (s) | peak memory (MiB) |")
        print("| --- | --- | --- | --- | --- |")
        for path, hows in (
            (tif, ["napari-spines lazy", "tifffile.imread (eager)"]),
            (h5, ["napari-spines lazy", "h5py read (eager)"]),
        ):
            for how in hows:
                r = measure(path, how)
                print(
                    f"| {path.suffix} {size:.0f} MiB | {how} | {r['lazy']} | "
                    f"{r['seconds']:.2f} | {r['peak_mib']:.0f} |"
                )


if __name__ == "__main__":
    main()
