"""Choose an affinity model's settings for a mode on held-out blocks: scale and threshold.

`choose_3d_settings` scores each gala block at the in-plane scale and threshold best on the
other blocks, so the figure it reports is on data the choice did not see; `record_3d_settings`
writes the settings best on all blocks into a package's ``postprocessing.modes``. Training
(`napari_spines.training.affinity.train_and_export`) and the cross-validation
(`napari_spines.training.em_folds`) both use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(8, 20))  # 0.4 to 0.95
#: The mutex watershed's biases to choose from (`mutex_watershed`): 0.05 to 0.75.
MUTEX_BIASES = tuple(round(0.05 * i, 2) for i in range(1, 16))
#: In-plane upsampling of gala's sections to choose from ("3d" mode's ``in_plane_scale``).
GALA_SCALES = (1.0, 1.5, 2.0, 2.5)


def errors_by_threshold(
    package: Any,
    image: np.ndarray,
    labels: np.ndarray,
    mode: str,
    thresholds: Sequence[float] = THRESHOLDS,
    in_plane_scale: float = 1.0,
    method: str | None = None,
    min_size: int = 0,
    affinities: np.ndarray | None = None,
) -> np.ndarray:
    """Adapted Rand errors of a segmentation at each threshold: per section in "2d", else 3D.

    The stack is segmented as `segment_image` does, on its own grid upsampled by
    ``in_plane_scale`` in y and x; a package whose ``postprocessing.method`` is
    ``mutex_watershed`` by `mutex_watershed`, each threshold a bias.

    Parameters
    ----------
    package
        An opened affinity model package (`napari_spines.models.open_package`).
    image, labels
        A raw ``(Z, Y, X)`` stack and its instance labels (0 ignored).
    mode
        ``"2d"``: scored per section; any other mode: scored as one volume.
    thresholds
        Agglomeration thresholds.
    in_plane_scale
        Upsampling of the sections before the network.
    method
        ``"agglomeration"`` (of the nearest-neighbour channels) or ``"mutex_watershed"``;
        None: the package's ``postprocessing.method``, agglomeration when it names none.
    min_size
        The mutex watershed's ``min_size``.
    affinities
        The package's `scoring_affinities` of ``image`` at ``in_plane_scale``, when they were
        computed already; None: computed here.

    Returns
    -------
    numpy.ndarray
        ``(thresholds, sections)`` in "2d", ``(thresholds, 1)`` otherwise.
    """
    from napari_spines.segmentation.metrics import score_per_section, score_segmentation
    from napari_spines.segmentation.mutex import mutex_watershed
    from napari_spines.segmentation.pipeline import segment_affinities

    spec = package.spec
    if affinities is None:
        affinities = scoring_affinities(package, image, in_plane_scale)
    method = method or spec.postprocessing.get("method", "agglomeration")
    if method == "mutex_watershed":
        offsets = spec.outputs[0].offsets
        segment = partial(mutex_watershed, affinities, offsets, mode=mode, min_size=min_size)
    else:  # the nearest-neighbour channels come first
        quantile = spec.postprocessing.get("quantile")
        segment = segment_affinities(affinities[:3], mode, quantile=quantile).labels
    rows = []
    for t in thresholds:
        predicted = segment(t)
        if mode == "2d":
            rows.append([s.adapted_rand_error for s in score_per_section(labels, predicted)])
        else:
            rows.append([score_segmentation(labels, predicted).adapted_rand_error])
    return np.array(rows)


def scoring_affinities(package: Any, image: np.ndarray, in_plane_scale: float = 1.0) -> np.ndarray:
    """A package's affinities of a stack on its own grid upsampled by ``in_plane_scale``.

    Parameters
    ----------
    package
        An opened affinity model package.
    image
        A raw ``(Z, Y, X)`` stack.
    in_plane_scale
        Upsampling of the sections before the network (the output is on the stack's grid).

    Returns
    -------
    numpy.ndarray
        float32 ``(channels, Z, Y, X)``.
    """
    from napari_spines.models import run_model

    z, y, x = package.spec.network_voxel_size_um
    voxel = None if in_plane_scale == 1 else (z, y * in_plane_scale, x * in_plane_scale)
    return np.asarray(run_model(package, image, "ZYX", voxel).outputs, np.float32)


def gala_block(data: Path, sections: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Raw gala sections and their 3D ids.

    Parameters
    ----------
    data
        Folder with ``gala/``.
    sections
        Consecutive section indices.

    Returns
    -------
    tuple of numpy.ndarray
        ``(image, labels)``.
    """
    import tifffile

    picked = list(sections)
    folder = data / "gala"
    return (
        tifffile.imread(folder / "gala_train_image.tif")[picked],
        tifffile.imread(folder / "gala_train_labels.tif")[picked],
    )


def choose_3d_settings(
    package: Path,
    data: Path,
    blocks: Sequence[Sequence[int]],
    thresholds: Sequence[float] = THRESHOLDS,
    scales: Sequence[float] = GALA_SCALES,
) -> dict:
    """Choose a package's "3d" in-plane scale and threshold on gala, cross-validated by block.

    Each block is scored at the settings best on the other blocks, so its figure is on data
    that the choice did not see; the settings to ship are then chosen on all the blocks.

    Parameters
    ----------
    package
        An affinity model package.
    data
        Folder with ``gala/``.
    blocks
        Runs of consecutive gala sections (at least two blocks), e.g. those the package's
        checkpoint was chosen on and that it never trained on.
    thresholds, scales
        The settings to choose from.

    Returns
    -------
    dict
        ``held_out``: per block its sections, the settings chosen on the others, its error at
        them and its own best error (an oracle); ``chosen``: ``threshold`` and
        ``in_plane_scale`` best over all blocks.
    """
    from napari_spines.models import open_package

    opened = open_package(package)
    errors = {}  # (scale, block) -> errors by threshold
    for b, block in enumerate(blocks):
        image, labels = gala_block(data, block)
        mode = "3d"
        for scale in scales:
            errors[scale, b] = errors_by_threshold(opened, image, labels, mode, thresholds, scale)[
                :, 0
            ]

    def best(chosen_on: Sequence[int]) -> tuple[float, int]:
        return min(
            ((s, t) for s in scales for t in range(len(thresholds))),
            key=lambda st: np.mean([errors[st[0], b][st[1]] for b in chosen_on]),
        )

    held_out = []
    for b, block in enumerate(blocks):
        scale, t = best([o for o in range(len(blocks)) if o != b])
        held_out.append(
            {
                "sections": [block[0], block[-1]],
                "in_plane_scale": scale,
                "threshold": thresholds[t],
                "error": round(float(errors[scale, b][t]), 4),
                "oracle_error": round(float(min(errors[s, b].min() for s in scales)), 4),
            }
        )
    scale, t = best(range(len(blocks)))
    return {
        "held_out": held_out,
        "chosen": {"in_plane_scale": scale, "threshold": thresholds[t]},
        "errors": {
            f"scale {s}, block {b}": [round(float(e), 4) for e in errors[s, b]] for s, b in errors
        },
    }


def record_3d_settings(package: Path, data: Path, sections: Sequence[int]) -> dict:
    """Choose a package's "3d" settings on two halves of gala ``sections``; write model.yaml.

    Parameters
    ----------
    package
        The affinity package; ``postprocessing.modes.3d`` of its model.yaml is rewritten.
    data
        Folder with ``gala/``.
    sections
        Consecutive gala sections the package never trained on (its validation sections).

    Returns
    -------
    dict
        The `choose_3d_settings` report.
    """
    import dataclasses

    from napari_spines.models import open_package
    from napari_spines.models.spec import write_spec

    run = list(sections)
    half = len(run) // 2
    report = choose_3d_settings(package, data, [run[:half], run[half:]])
    held_out = ", ".join(
        f"{h['sections'][0]}-{h['sections'][1]}: {h['error']}" for h in report["held_out"]
    )
    chosen_on = (
        f"gala sections {run[0]}-{run[-1]} (never trained on); each half scored at the "
        f"settings best on the other, adapted Rand error {held_out}"
    )
    spec = open_package(package).spec
    modes = {**(spec.postprocessing.get("modes") or {})}
    modes["3d"] = {**report["chosen"], "chosen_on": chosen_on}
    postprocessing = {**spec.postprocessing, "modes": modes}
    write_spec(
        Path(package) / "model.yaml", dataclasses.replace(spec, postprocessing=postprocessing)
    )
    return report
