"""Progress reporting and cancellation for long core functions, with no Qt in sight.

Core functions take ``progress: ProgressCallback | None`` and call ``progress(done, total)``
between steps; ``progress(0, 0)`` says "busy, with no count to show" (e.g. exporting). A
`CancellableProgress` passed as that callback raises `Cancelled` at the next step once
`CancellableProgress.cancel` was called, so cancelling needs no other plumbing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

ProgressCallback = Callable[[int, int], None]


class Cancelled(Exception):
    """Raised inside long work when the user asked to stop it."""


class CancellableProgress:
    """A progress callback that forwards to ``report`` and raises `Cancelled` when cancelled."""

    def __init__(self, report: ProgressCallback | None = None) -> None:
        self._report = report
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        """Ask the work to stop at its next progress step (thread-safe)."""
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        """True once `cancel` was called."""
        return self._cancelled.is_set()

    def __call__(self, done: int, total: int) -> None:
        """Report ``done`` of ``total`` steps; raise `Cancelled` if cancel was asked."""
        if self._cancelled.is_set():
            raise Cancelled("cancelled")
        if self._report is not None:
            self._report(done, total)


def raise_if_cancelled(progress: ProgressCallback | None) -> None:
    """Raise `Cancelled` now if ``progress`` is a `CancellableProgress` that was cancelled.

    Long loops call this before each expensive step, so a Cancel never waits for one more.

    Parameters
    ----------
    progress
        The callback handed to the long function; None or a plain callback never raises.

    Raises
    ------
    Cancelled
        ``progress.cancel()`` was called.
    """
    if getattr(progress, "cancelled", False):
        raise Cancelled("cancelled")
