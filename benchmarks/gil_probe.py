"""How long the mutex watershed of ISBI's affinities keeps a sleeping main thread waiting.

    python benchmarks/gil_probe.py --data DATA/em/isbi2012

A worker thread segments em-affinity's affinities of the 20 ISBI sections as the Segmentation
widget's worker does (``mutex_watershed``, which then runs in a child process), while the main
thread sleeps in 5 ms steps and records the longest gap between its wake-ups: the longest time
the worker kept the GIL. The affinities are predicted first (a few minutes on 2 cores), then
sent to the child through shared memory (as the widget does) and, side by side, as a pickle
(as before shared memory), two runs each.
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import numpy as np
import tifffile

from napari_spines import child_process
from napari_spines.models import find_model
from napari_spines.segmentation.mutex import mutex_watershed
from napari_spines.segmentation.pipeline import predict_affinities

SLEEP_S = 0.005


def longest_gap(work) -> tuple[float, float]:
    """``(longest gap between the main thread's wake-ups, seconds)`` while ``work`` runs."""
    worker = threading.Thread(target=work)
    started = last = time.perf_counter()
    longest = 0.0
    worker.start()
    while worker.is_alive():
        time.sleep(SLEEP_S)
        now = time.perf_counter()
        longest, last = max(longest, now - last), now
    return longest, time.perf_counter() - started


def main() -> None:
    """Print the longest gap and the time for one mutex watershed off the main thread."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the isbi2012 folder")
    args = parser.parse_args()
    image = tifffile.imread(args.data / "isbi2012_train_image.tif")
    package = find_model("em-affinity")
    affinities = predict_affinities(image, "ZYX", package, every_channel=True)
    settings = package.spec.postprocessing["modes"]["2d"]
    offsets = package.spec.outputs[0].offsets
    labels: list[np.ndarray] = []

    def segment() -> None:
        labels.append(
            mutex_watershed(affinities, offsets, settings["bias"], "2d", settings["min_size"])
        )

    shared_bytes = child_process.SHARED_BYTES
    for way, threshold in (("shared memory", shared_bytes), ("pickle", 1 << 62)):
        child_process.SHARED_BYTES = threshold  # arrays this large go through shared memory
        for run in range(2):  # the first also starts the child's imports cold
            gap, seconds = longest_gap(segment)
            print(
                f"{way}, run {run}: {np.asarray(affinities).nbytes / 1e6:.0f} MB of affinities, "
                f"{labels[-1].max()} segments: longest gap {gap * 1000:.0f} ms in {seconds:.1f} s"
            )


if __name__ == "__main__":
    main()
