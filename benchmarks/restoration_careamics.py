"""CAREamics restoration baseline: train N2V or CARE on 2D image pairs and score the result.

Standalone script for an external baseline. It needs its own virtual environment with
CAREamics (tested with careamics 0.3.5 and CPU torch 2.13.0) and is not imported by
napari_spines. Setup used:

    python3.11 -m venv care-venv
    care-venv/bin/pip install torch==2.13.0
    care-venv/bin/pip install --no-deps careamics==0.3.5
    # then careamics' other requirements (minus torchvision) and torchvision==0.28.0, each
    # with `-c` on a constraints file holding torch==2.13.0: careamics caps torchvision at
    # 0.26.0, which would pull CUDA torch 2.11.0. See _allow_cuda_torchvision_on_cpu_torch.

Run:

    care-venv/bin/python benchmarks/restoration_careamics.py \
        --pairs PAIRS.npz --algorithm n2v --epochs 10 --out RESULT.json [--patch 64]

PAIRS.npz holds float32 arrays ``train_noisy``, ``train_clean``, ``test_noisy`` and
``test_clean``, each shaped (N, Y, X). N2V trains on ``train_noisy`` only (plus
``test_noisy`` with ``--n2v-on-test``); CARE trains on ``train_noisy`` -> ``train_clean``.
The JSON result holds timings, prediction throughput, and the mean PSNR/SSIM over the test
images against ``test_clean`` (data range taken over the whole clean test set).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def _allow_cuda_torchvision_on_cpu_torch() -> None:
    """Let PyPI's CUDA-built torchvision import against a CPU-only torch.

    Its compiled ops cannot load there, and torchvision's import then fails on two
    unguarded fake-op registrations (nms, qnms). CAREamics only needs torchvision's
    pure-Python transforms, so declaring those two op schemas is enough.
    """
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return
    lib = next(Path(spec.submodule_search_locations[0]).glob("_C*.so"), None)
    try:
        if lib is not None:
            torch.ops.load_library(str(lib))
            return
    except OSError:
        pass
    schema = "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
    for op in ("nms", "qnms"):
        torch.library.define(f"torchvision::{op}", schema)


def score(pred: np.ndarray, clean: np.ndarray) -> tuple[float, float]:
    """Mean PSNR and SSIM over images, with one data range for the whole clean set."""
    data_range = float(clean.max() - clean.min())
    pairs = list(zip(clean, pred, strict=True))
    psnr = [peak_signal_noise_ratio(c, p, data_range=data_range) for c, p in pairs]
    ssim = [structural_similarity(c, p, data_range=data_range) for c, p in pairs]
    return float(np.mean(psnr)), float(np.mean(ssim))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=Path, required=True, help="npz with the four arrays")
    parser.add_argument("--algorithm", choices=("n2v", "care"), required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True, help="result JSON path")
    parser.add_argument("--patch", type=int, default=64, help="training patch size (Y and X)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--n2v-on-test", action="store_true", help="N2V also trains on test_noisy")
    parser.add_argument("--save-predictions", action="store_true", help="write OUT stem + .npy")
    parser.add_argument("--accelerator", default="cpu", help="Lightning accelerator")
    parser.add_argument("--seed", type=int, default=1, help="CAREamics seed (> 0)")
    args = parser.parse_args(argv)

    _allow_cuda_torchvision_on_cpu_torch()
    import careamics
    from careamics import CAREamist
    from careamics.config import create_advanced_care_config, create_advanced_n2v_config

    with np.load(args.pairs) as npz:
        data = {k: np.asarray(npz[k], dtype=np.float32) for k in npz.files}
    test_noisy, test_clean = data["test_noisy"], data["test_clean"]

    common = {
        "experiment_name": f"baseline_{args.algorithm}",
        "data_type": "array",
        "axes": "SYX",
        "patch_size": [args.patch, args.patch],
        "batch_size": args.batch_size,
        "num_epochs": args.epochs,
        "trainer_params": {"accelerator": args.accelerator},
        "seed": args.seed,
    }
    if args.algorithm == "n2v":
        config = create_advanced_n2v_config(**common)
        extra = [test_noisy] if args.n2v_on_test else []
        train = {"train_data": [data["train_noisy"], *extra]}
    else:
        config = create_advanced_care_config(**common)
        train = {"train_data": data["train_noisy"], "train_data_target": data["train_clean"]}

    with tempfile.TemporaryDirectory() as work_dir:
        careamist = CAREamist(config, work_dir=work_dir, enable_progress_bar=False)
        start = time.perf_counter()
        careamist.train(**train)
        train_seconds = time.perf_counter() - start

        start = time.perf_counter()
        predictions, _ = careamist.predict(test_noisy)
        predict_seconds = time.perf_counter() - start
    shape = test_noisy.shape[1:]
    pred = np.concatenate([np.asarray(p, np.float32).reshape(-1, *shape) for p in predictions])

    psnr, ssim = score(pred, test_clean)
    psnr_in, ssim_in = score(test_noisy, test_clean)
    result = {
        "algorithm": args.algorithm,
        "careamics_version": careamics.__version__,
        "epochs": args.epochs,
        "train_seconds": train_seconds,
        "predict_seconds": predict_seconds,
        "mvoxels_per_second": test_noisy.size / predict_seconds / 1e6,
        "psnr": psnr,
        "ssim": ssim,
        "psnr_input": psnr_in,
        "ssim_input": ssim_in,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    if args.save_predictions:
        np.save(args.out.with_suffix(".npy"), pred)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
