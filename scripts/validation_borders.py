"""em-affinity's held-out volumes run whole (one call) and through the tiled engine.

Prints, per volume, the mean absolute difference of the affinities and the best-threshold
adapted Rand error of each (the figure training validation chooses checkpoints by), and the
difference once the engine's halo is set to 0 (no mirrored border).

Run:  .venv/bin/python scripts/validation_borders.py ../shared/data/em
"""

import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

from napari_spines.models import open_package, run_model
from napari_spines.segmentation.metrics import mean_score, score_per_section, score_segmentation
from napari_spines.segmentation.pipeline import segment_affinities
from napari_spines.training.affinity import POOLS, QUANTILE, model_spec
from napari_spines.training.em_data import ISBI_VALIDATE, SHIPPED_SPLIT, load_gala, load_isbi
from napari_spines.training.network import engine_spec
from napari_spines.training.unet import size_multiple

THRESHOLDS = (0.6, 0.7, 0.75, 0.8, 0.85)  # those of training validation


class Scripted:
    """The shipped TorchScript weights (sigmoid and flips inside) as a ready model."""

    runtime, provider = "torch", "cpu"

    def __init__(self, net, spec):
        self.net, self.spec = net, spec

    def __call__(self, batch):
        with torch.no_grad():
            return self.net(torch.from_numpy(batch)).numpy()


def whole(net, image):
    """The volume in one call, padded at its end to the network's size multiple."""
    pad = [(0, -n % m) for n, m in zip(image.shape, size_multiple(POOLS), strict=True)]
    with torch.no_grad():
        out = net(torch.from_numpy(np.pad(image, pad, mode="reflect")[None, None])).numpy()[0]
    return out[(slice(None), *(slice(0, n) for n in image.shape))]


def best_error(volume, affinities):
    mode = "3d" if volume.z_known else "2d"
    segmentation = segment_affinities(affinities, mode, quantile=QUANTILE)
    scores = [
        score_segmentation(volume.labels, segmentation.labels(t))
        if volume.z_known
        else mean_score(score_per_section(volume.labels, segmentation.labels(t)))
        for t in THRESHOLDS
    ]
    return min(s.adapted_rand_error for s in scores)


def main(data: Path) -> None:
    package = open_package(Path(__file__).parents[1] / "napari_spines/models/builtin/em-affinity")
    net = torch.jit.load(str(package.root / "model.pt")).eval()
    spec = engine_spec(model_spec())  # the volumes below are normalised already
    no_halo = dataclasses.replace(spec, tiling=dataclasses.replace(spec.tiling, halo=(0, 0, 0)))
    volumes = {
        "ISBI 15-19": load_isbi(data / "isbi2012", ISBI_VALIDATE),
        "gala 35-49": load_gala(data / "gala", SHIPPED_SPLIT.gala_validate)[0],
    }
    print("| volume | mean abs. difference | error, whole | error, engine | difference, halo 0 |")
    print("| --- | --- | --- | --- | --- |")
    for name, volume in volumes.items():
        a = whole(net, volume.image)
        b = run_model(Scripted(net, spec), volume.image, "ZYX").outputs
        tile = tuple(n + 8 for n in volume.image.shape)  # one tile, no border beyond the volume
        c = run_model(Scripted(net, no_halo), volume.image, "ZYX", tile=tile).outputs
        print(
            f"| {name} {volume.image.shape} | {np.abs(a - b).mean():.4f} | "
            f"{best_error(volume, a):.4f} | {best_error(volume, b):.4f} | "
            f"{np.abs(a - c).max():.4f} |"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("../shared/data/em"))
