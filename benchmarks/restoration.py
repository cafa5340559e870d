"""Restoration against classical baselines, and what it does for detection and segmentation.

Pairs are made by crappifying real stacks (`napari_spines.restoration.crappify`). Every choice
(a baseline's parameter, the model's checkpoint) is made on validation pairs; the table reports
other pairs that no choice saw:

- ``--kind em``: ISBI 2012 sections 10–14 choose, 15–19 report (the model trained on 0–9).
  Downstream: adapted Rand error of ``segment`` (em-affinity) per section on 15–19, clean,
  crappified (the engine reads the 16 nm input onto em-affinity's 4 nm grid) and restored.
- ``--kind two-photon``: rr30a_tp1 slices 20–43 choose, rr30a_tp2 slices 20–43 report (the
  model trained on rr30a_tp0). Downstream: spine F1 of ``detect`` on the whole rr30a_tp2, clean,
  crappified and restored.

Usage::

    python benchmarks/restoration.py --kind em --data DATA/em/isbi2012 \
        --model runs/restore-em/restore-em --out docs/restoration-em.json
    python benchmarks/restoration.py --kind two-photon --data DATA/two_photon/rr30a \
        --model runs/restore-2p/restore-2p --out docs/restoration-2p.json

``--pairs PAIRS.npz`` also writes the pairs for ``benchmarks/restoration_careamics.py``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import tifffile

from napari_spines.restoration.baselines import BASELINES, choose, upsampled
from napari_spines.restoration.crappify import crappified_voxel_size, preset
from napari_spines.restoration.quality import quality
from napari_spines.restoration.restore import restore

EM_VOXEL = (0.05, 0.004, 0.004)
TWO_PHOTON_SLICES = slice(20, 44)


def timed(func, *args):
    """``(result, seconds)`` of ``func(*args)``."""
    started = time.perf_counter()
    result = func(*args)
    return result, time.perf_counter() - started


def method_table(val_pairs, test_pairs, scale, model, voxel_crappy):
    """PSNR, SSIM, Mvoxel/s of each baseline (parameter chosen on ``val_pairs``) and the model."""
    rows, outputs = {}, {}
    for name, (method, _) in BASELINES.items():
        parameter = choose(name, val_pairs, scale)
        restored, seconds = [], 0.0
        for crappy, _good in test_pairs:
            out, s = timed(method, crappy, scale, parameter)
            restored.append(out)
            seconds += s
        outputs[name] = restored
        rows[name] = summary(restored, test_pairs, seconds, parameter)
        print(name, rows[name], flush=True)
    restored, seconds = [], 0.0
    for crappy, _good in test_pairs:
        out, s = timed(lambda c: restore(c, "ZYX", model, voxel_crappy).image, crappy)
        restored.append(out)
        seconds += s
    outputs["model"] = restored
    rows["model"] = summary(restored, test_pairs, seconds, None)
    print("model", rows["model"], flush=True)
    return rows, outputs


def summary(restored, pairs, seconds, parameter):
    """Mean quality over ``pairs`` and output Mvoxel per second."""
    scores = [
        quality(r[tuple(slice(0, n) for n in g.shape)], g)
        for r, (_, g) in zip(restored, pairs, strict=True)
    ]
    voxels = sum(g.size for _, g in pairs)
    return {
        "psnr_db": round(float(np.mean([q.psnr for q in scores])), 2),
        "ssim": round(float(np.mean([q.ssim for q in scores])), 4),
        "mvoxel_per_s": round(voxels / 1e6 / seconds, 3),
        "parameter": parameter,
    }


def crappy_pairs(stacks, crappifier, voxel, seed):
    """``(crappy, good cropped to fit)`` for each good stack."""
    pairs = []
    for i, good in enumerate(stacks):
        crappy = crappifier(good.astype(np.float32), voxel, seed=seed + i)
        shape = [n * s for n, s in zip(crappy.shape, crappifier.scale, strict=True)]
        pairs.append((crappy, good[tuple(slice(0, n) for n in shape)].astype(np.float32)))
    return pairs


def em(args):
    from napari_spines.segmentation.metrics import mean_score, score_per_section
    from napari_spines.segmentation.pipeline import segment_image
    from napari_spines.training.em_data import section_labels

    image = tifffile.imread(args.data / "isbi2012_train_image.tif")
    membranes = tifffile.imread(args.data / "isbi2012_train_membranes.tif")
    crappifier = preset("em-4x")
    voxel_crappy = crappified_voxel_size(crappifier, EM_VOXEL)
    val = crappy_pairs([image[10:15]], crappifier, EM_VOXEL, seed=1)
    test = crappy_pairs([image[15:20]], crappifier, EM_VOXEL, seed=2)
    if args.pairs:
        train = crappy_pairs([image[0:10]], crappifier, EM_VOXEL, seed=3)
        np.savez(
            args.pairs,
            train_noisy=upsampled(train[0][0], crappifier.scale),
            train_clean=train[0][1],
            test_noisy=upsampled(test[0][0], crappifier.scale),
            test_clean=test[0][1],
        )
    rows, outputs = method_table(val, test, crappifier.scale, args.model, voxel_crappy)
    truth = section_labels(membranes[15:20])
    best = max((n for n in BASELINES), key=lambda n: rows[n]["psnr_db"])
    inputs = {
        "clean": (image[15:20], EM_VOXEL),
        "crappified (16 nm; em-affinity reads it onto its 4 nm grid)": (test[0][0], voxel_crappy),
        "crappified, linear to 4 nm": (outputs["linear"][0], EM_VOXEL),
        "restored (model)": (outputs["model"][0], EM_VOXEL),
        f"restored ({best})": (outputs[best][0], EM_VOXEL),
    }
    downstream = {}
    for name, (stack, voxel) in inputs.items():
        labels = segment_image(stack, "ZYX", voxel_size_um=voxel).labels()
        if labels.shape != truth.shape:  # the crappified stack's labels are 4x coarser
            labels = np.kron(labels, np.ones((1, 4, 4), labels.dtype))
        score = mean_score(score_per_section(truth, labels))
        downstream[name] = {"adapted_rand_error": round(float(score.adapted_rand_error), 4)}
        print(name, downstream[name], flush=True)
    save_examples(args, image[17], test[0][0][2], outputs["model"][0][2], outputs[best][0][2])
    return {"table": rows, "downstream_segment_isbi_15_19": downstream}


def two_photon(args):
    from napari_spines.io import read_volumes
    from napari_spines.spines.detection import detect_spines
    from napari_spines.spines.evaluate import load_session, score_on_session

    stacks = {}
    for name in ("rr30a_tp1", "rr30a_tp2"):
        volume = read_volumes(args.data / f"{name}.tif")[0]
        stacks[name] = np.asarray(volume.levels[0])
        voxel = volume.voxel_size_um
    crappifier = preset("2p-low-photon")
    val = crappy_pairs([stacks["rr30a_tp1"][TWO_PHOTON_SLICES]], crappifier, voxel, seed=1)
    test = crappy_pairs([stacks["rr30a_tp2"][TWO_PHOTON_SLICES]], crappifier, voxel, seed=2)
    if args.pairs:
        tp0 = np.asarray(read_volumes(args.data / "rr30a_tp0.tif")[0].levels[0])
        train = crappy_pairs([tp0[TWO_PHOTON_SLICES]], crappifier, voxel, seed=3)
        np.savez(
            args.pairs,
            train_noisy=train[0][0],
            train_clean=train[0][1],
            test_noisy=test[0][0],
            test_clean=test[0][1],
        )
    rows, outputs = method_table(val, test, crappifier.scale, args.model, voxel)
    session = load_session(args.data / "rr30a_tp2.tif")
    whole = stacks["rr30a_tp2"]
    crappy = crappifier(whole.astype(np.float32), voxel, seed=2)
    best = max((n for n in BASELINES), key=lambda n: rows[n]["psnr_db"])
    method, _ = BASELINES[best]
    restored, seconds = timed(lambda: restore(crappy, "ZYX", args.model, voxel).image)
    inputs = {
        "clean": whole,
        "crappified": crappy,
        "restored (model)": restored,
        f"restored ({best})": method(crappy, crappifier.scale, rows[best]["parameter"]),
    }
    downstream = {"restore_seconds_whole_tp2": round(seconds, 1)}
    for name, stack in inputs.items():
        found = detect_spines(stack, "ZYX", voxel_size_um=voxel)
        score = score_on_session(found.coords, session)
        downstream[name] = {
            "f1": round(score.f1, 3),
            "precision": round(score.precision, 3),
            "recall": round(score.recall, 3),
        }
        print(name, downstream[name], flush=True)
    z = 12
    save_examples(args, test[0][1][z], test[0][0][z], outputs["model"][0][z], outputs[best][0][z])
    return {"table": rows, "downstream_detect_rr30a_tp2": downstream}


def save_examples(args, clean, crappy, restored, baseline):
    """The four pictures of one section side by side as a PNG beside ``--out``."""
    from skimage.io import imsave
    from skimage.transform import resize

    tiles = [np.asarray(a, np.float32) for a in (crappy, baseline, restored, clean)]
    tiles[0] = resize(tiles[0], tiles[-1].shape, order=0)
    low, high = np.percentile(tiles[-1], [1, 99.8])
    row = np.concatenate([np.clip((t - low) / (high - low), 0, 1) for t in tiles], axis=1)
    imsave(args.out.with_suffix(".png"), (row * 255).astype(np.uint8), check_contrast=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("em", "two-photon"), required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", required=True, help="restoration package")
    parser.add_argument("--out", type=Path, required=True, help="result .json")
    parser.add_argument("--pairs", type=Path, help="also write the pairs for CAREamics (.npz)")
    args = parser.parse_args()
    started = time.perf_counter()
    result = em(args) if args.kind == "em" else two_photon(args)
    result["seconds"] = round(time.perf_counter() - started)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
