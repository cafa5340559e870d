"""The training loop both trainers share: AdamW steps on a time budget, cosine learning rate."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Any

from napari_spines.progress import ProgressCallback, raise_if_cancelled


def timed_steps(
    net: Any,
    batches: Iterator[tuple[Any, ...]],
    loss_fn: Callable[..., Any],
    lr: float,
    minutes: float,
    started: float,
    first_step: int = 0,
    progress: ProgressCallback | None = None,
) -> Iterator[tuple[int, Any, bool]]:
    """Train ``net`` until ``minutes`` after ``started`` (a `time.monotonic` reading).

    Each step takes the next ``(images, targets, masks)`` of ``batches`` and minimises
    ``loss_fn(net(images), targets, masks)`` with AdamW (weight decay 1e-4). The learning rate
    decays from ``lr`` to 0 along a cosine over the budget.

    Parameters
    ----------
    net
        The torch module to train, on the batches' device.
    batches
        Endless iterator of ``(images, targets, masks)`` tensors (`example_batches`).
    loss_fn
        ``loss_fn(logits, targets, masks)`` → scalar loss tensor.
    lr
        Initial (peak) learning rate.
    minutes
        Time budget in minutes, counted from ``started``.
    started
        The `time.monotonic` reading the budget counts from.
    first_step
        Number of the step before the first (a resumed checkpoint's step).
    progress
        Gets ``(seconds spent, seconds of the budget)`` after each step and may raise
        `Cancelled`; None: no reports.

    Yields
    ------
    tuple
        ``(step, loss, last)``: the step's number (counting on from ``first_step``), its detached
        loss tensor, and whether the time is up. Nothing when the budget is spent already.

    Raises
    ------
    Cancelled
        Before a step, once ``progress`` (a `CancellableProgress`) was cancelled.
    """
    import torch

    optimiser = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    budget = minutes * 60
    step = first_step
    while time.monotonic() < started + budget:
        raise_if_cancelled(progress)
        fraction = min((time.monotonic() - started) / budget, 1.0)
        for group in optimiser.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * fraction))
        images, targets, masks = next(batches)
        loss = loss_fn(net(images), targets, masks)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        step += 1
        if progress is not None:
            progress(min(round(time.monotonic() - started), round(budget)), round(budget))
        yield step, loss.detach(), time.monotonic() >= started + budget
