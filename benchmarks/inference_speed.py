"""Inference speed: ONNX Runtime vs TorchScript, tiled vs whole volume, against the matmul ceiling.

Run:  .venv/bin/python benchmarks/inference_speed.py [--shape 32 256 256] [--device cpu]

For every built-in model and a 3D U-Net of the size the learned models use (random weights,
exported here), on a random volume at the model's voxel size:

- voxels per second through `napari_spines.inference.predict`, with the model's tiles and with
  one tile covering the whole volume;
- achieved GFLOP/s: the convolution FLOPs of every tile the engine ran (halo included), over the
  wall time;
- the ceiling: the float32 matrix-multiply GFLOP/s of this machine, measured in the same run
  (numpy and torch, the better of the two).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np


def matmul_gflops(n: int = 2048, repeats: int = 5) -> dict[str, float]:
    """Best float32 matrix-multiply rate of numpy (BLAS) and torch."""
    import torch

    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    results = {}
    for name, fn, x in (("numpy", np.matmul, a), ("torch", torch.matmul, torch.from_numpy(a))):
        fn(x, x)
        best = min(_timed(lambda f=fn, x=x: f(x, x)) for _ in range(repeats))
        results[name] = 2 * n**3 / best / 1e9
    return results


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def unet_package(folder: Path):
    """A width-16 anisotropic 3D U-Net with random weights, as ONNX and TorchScript."""
    from napari_spines.training.export import export_package
    from napari_spines.training.unet import build_unet, size_multiple

    spec = {
        "format_version": 1,
        "name": "unet-w16-random",
        "version": "0",
        "task": "restoration",
        "description": "benchmark network",
        "license": "BSD-3-Clause",
        "input": {
            "axes": "zyx",
            "channels": 1,
            "voxel_size_um": [1.0, 0.24, 0.24],
            "normalisation": {"kind": "percentile", "low": 1, "high": 99.8},
        },
        "tiling": {"tile": [32, 128, 128], "multiple": list(size_multiple()), "halo": [4, 16, 16]},
        "outputs": [{"name": "output", "channels": 1}],
    }
    return export_package(build_unet(width=16), folder, spec, (1, 1, 16, 64, 64)), build_unet


def tile_flops(package, plans, network_flops) -> int:
    """FLOPs of every tile of a run (network_flops: FLOPs of one tile of the given shape)."""
    shape = tuple(p.tile for p in plans)
    return network_flops(shape) * math.prod(len(p.starts) for p in plans)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", nargs=3, type=int, default=(32, 256, 256))
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import torch

    from napari_spines.inference import plan_axis
    from napari_spines.models import list_models, open_package, ready_model, run_model
    from napari_spines.training import classical
    from napari_spines.training.unet import conv_flops

    ceiling = matmul_gflops()
    print(
        f"float32 matmul ceiling: numpy {ceiling['numpy']:.1f} GFLOP/s, "
        f"torch {ceiling['torch']:.1f} GFLOP/s, {torch.get_num_threads()} threads"
    )
    best = max(ceiling.values())
    volume = np.random.default_rng(0).random(args.shape, dtype=np.float32) * 1000
    n_voxels = volume.size

    with tempfile.TemporaryDirectory() as tmp:
        unet_dir, build_unet = unet_package(Path(tmp) / "unet")
        networks = {"spine-dog": classical.build_network(), "unet-w16-random": build_unet(width=16)}
        packages = [p for p in list_models() if p.spec.name in networks]
        packages.append(open_package(unet_dir))
        print(f"volume {args.shape} = {n_voxels / 1e6:.1f} Mvoxel at each model's voxel size")
        print("| model | runtime | tiling | tiles | time (s) | Mvoxel/s | GFLOP/s | % of ceiling |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for package in packages:
            spec = package.spec
            network = networks[spec.name]

            def flops(shape, network=network):
                return conv_flops(network, (1, 1, *shape))

            for runtime in package.runtimes:
                model = ready_model(package, runtime=runtime, device=args.device)
                for label, tile in (
                    ("tiled", tuple(spec.tiling.tile)),
                    (
                        "whole",
                        tuple(n + 2 * h for n, h in zip(args.shape, spec.tiling.halo, strict=True)),
                    ),
                ):
                    plans = [
                        plan_axis(n, t, h, m)
                        for n, t, h, m in zip(
                            args.shape, tile, spec.tiling.halo, spec.tiling.multiple, strict=True
                        )
                    ]
                    run_model(model, volume[:8, :64, :64], "ZYX", tile=tile)  # warm up
                    seconds = _timed(lambda m=model, t=tile: run_model(m, volume, "ZYX", tile=t))
                    gflops = tile_flops(package, plans, flops) / seconds / 1e9
                    n_tiles = math.prod(len(p.starts) for p in plans)
                    print(
                        f"| {spec.name} | {runtime} ({model.provider}) | {label} "
                        f"{tuple(p.tile for p in plans)} | {n_tiles} | {seconds:.2f} | "
                        f"{n_voxels / seconds / 1e6:.2f} | {gflops:.1f} | "
                        f"{100 * gflops / best:.0f}% |"
                    )


if __name__ == "__main__":
    main()
