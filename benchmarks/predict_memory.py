"""Peak memory of `napari-spines predict`: a lazily read stack into Zarr vs everything in memory.

Run:  .venv/bin/python benchmarks/predict_memory.py [--slices 150]

The stack is uint8, S × 1024 × 1024 at 1.0 × 0.12 × 0.12 µm (like the two-photon data), so
spine-dog rescales it to 0.24 µm in y and x. Each run is a fresh process; peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import tifffile

MEASURE = r"""
import json, resource, sys, time
from napari_spines.io import read_volumes
from napari_spines.io.outputs import create_zarr_output
from napari_spines.models import run_model
path, mode, out_path = sys.argv[1:4]
t0 = time.perf_counter()
volume = read_volumes(path, lazy=(mode == "lazy into zarr"))[0]
out = None
if mode == "lazy into zarr":
    out = create_zarr_output(out_path, (1, *volume.shape), "CZYX", volume.voxel_size_um)
run_model("spine-dog", volume.data, volume.axes, volume.voxel_size_um, runtime="onnx", out=out)
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mib": peak, "lazy": volume.lazy}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=150)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    plane = (rng.random((1024, 1024)) * 60 + 20).astype(np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "stack.tif"
        with tifffile.TiffWriter(path, imagej=True) as writer:
            stack = np.stack([np.roll(plane, i, axis=0) for i in range(args.slices)])
            writer.write(
                stack,
                resolution=(1 / 0.12, 1 / 0.12),
                metadata={"axes": "ZYX", "spacing": 1.0, "unit": "um"},
            )
        input_mib = stack.nbytes / 2**20
        output_mib = 4 * stack.size / 2**20
        del stack
        print(
            f"input {args.slices} × 1024 × 1024 uint8 = {input_mib:.0f} MiB; "
            f"float32 output {output_mib:.0f} MiB"
        )
        print("| mode | time (s) | peak memory (MiB) |")
        print("| --- | --- | --- |")
        for mode in ("in memory", "lazy into zarr"):
            result = subprocess.run(
                [sys.executable, "-c", MEASURE, str(path), mode, str(Path(tmp) / "out.zarr")],
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(result.stdout.strip().splitlines()[-1])
            print(f"| {mode} | {r['seconds']:.1f} | {r['peak_mib']:.0f} |")


if __name__ == "__main__":
    main()
