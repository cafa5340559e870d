"""Training batches: random augmented crops, made in worker processes when asked.

On a GPU the network step takes milliseconds while one augmented crop takes tens of them on a
CPU core, so the crops are made by ``workers`` processes (torch's `DataLoader`) and the GPU is
kept busy. With ``workers=0`` everything runs in the calling process, as on a laptop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

#: makes one training example (arrays) from a random generator
MakeExample = Callable[[np.random.Generator], tuple[np.ndarray, ...]]


def resolve_device(device: str = "auto") -> str:
    """``auto`` → ``cuda`` when torch sees a GPU, else ``cpu``; other names pass through.

    Parameters
    ----------
    device
        ``auto``, ``cpu``, ``cuda`` or another torch device name, e.g. ``cuda:1``.

    Returns
    -------
    str
        The torch device name to use.

    Raises
    ------
    ValueError
        If a CUDA device is asked for and torch sees no CUDA GPU.
    """
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA GPU here")
    return device


def example_batches(
    make_example: MakeExample, batch_size: int, seed: int, workers: int = 0, device: str = "cpu"
) -> Iterator[tuple[Any, ...]]:
    """An endless stream of batches (tensors on ``device``) of ``make_example``'s arrays.

    Each worker draws from its own generator, seeded from ``seed`` and its index, so a run is
    repeatable for a given number of workers.

    Parameters
    ----------
    make_example
        Makes one example, a tuple of arrays, from a `numpy.random.Generator`.
    batch_size
        Examples per batch, stacked along a new first axis.
    seed
        Seed of the generators (with each worker's index).
    workers
        Worker processes making the examples; 0: they are made in the calling process.
    device
        Torch device the batches are moved to; memory is pinned for ``cuda`` devices.

    Yields
    ------
    tuple of torch.Tensor
        One batched tensor per array of an example, on ``device``.
    """
    import torch
    from torch.utils.data import DataLoader

    from napari_spines.training.example_stream import ExampleStream

    loader = DataLoader(
        ExampleStream(make_example, seed),
        batch_size=batch_size,
        num_workers=workers,
        pin_memory=device.startswith("cuda"),
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers else None,
        # workers start from a clean process: a child forked from one with Qt, ONNX Runtime
        # or OpenGL threads can hang for ever on a lock one of them held
        multiprocessing_context="forkserver" if workers else None,
    )
    for batch in loader:
        yield tuple(torch.as_tensor(b).to(device, non_blocking=True) for b in batch)
