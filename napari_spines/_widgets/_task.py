"""Run one core function at a time in a napari ``thread_worker`` with a progress bar and Cancel."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Signal
from qtpy.QtWidgets import QHBoxLayout, QProgressBar, QPushButton, QWidget

from napari_spines.errors import first_line
from napari_spines.progress import CancellableProgress, Cancelled

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Outcome:
    """What the worker hands back: a result, or the error that stopped it (None if cancelled)."""

    result: Any = None
    error: BaseException | None = None
    cancelled: bool = False


def _run_guarded(func: Callable[..., Any], **kwargs: Any) -> _Outcome:
    """Call ``func`` and turn every exception into an outcome, so none escapes the thread.

    napari would otherwise show an uncaught worker exception as a traceback notification.
    """
    try:
        return _Outcome(result=func(**kwargs))
    except Cancelled:
        return _Outcome(cancelled=True)
    except Exception as exc:
        logger.exception("napari-spines task failed")
        return _Outcome(error=exc)


class TaskPanel(QWidget):
    """A progress bar with a Cancel button, shown while a task runs.

    The core function gets ``progress=`` a `CancellableProgress`; its calls arrive here through
    a Qt signal, so the bar is updated on the main thread. ``succeeded`` (with the result),
    ``failed`` (with the exception) and ``cancelled`` are emitted on the main thread too, which
    is where layers may be changed. A failure shows one line, never a traceback.
    """

    progressed = Signal(int, int)
    succeeded = Signal(object)
    failed = Signal(object)
    cancelled = Signal()
    finished = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bar = QProgressBar()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.bar)
        layout.addWidget(self.cancel_button)
        self.progressed.connect(self._show_progress)
        self.worker: Any = None
        self._progress: CancellableProgress | None = None
        self._on_result: Callable[[Any], None] = lambda _result: None
        self.setVisible(False)

    @property
    def busy(self) -> bool:
        """True while a task runs."""
        return self.worker is not None

    def run(self, func: Callable[..., Any], on_result: Callable[[Any], None], **kwargs: Any) -> Any:
        """Start ``func(progress=..., **kwargs)`` in a worker; None if a task already runs.

        ``on_result`` gets the return value on the main thread (not called on failure/cancel).
        """
        if self.busy:
            return None
        self._progress = CancellableProgress(self.progressed.emit)
        self.worker = create_worker(
            _run_guarded,
            func,
            progress=self._progress,
            **kwargs,
            _start_thread=False,
            _connect={"returned": self._on_returned},
        )
        self._on_result = on_result
        self.bar.setRange(0, 0)  # "busy" until the first progress report
        self.cancel_button.setEnabled(True)
        self.setVisible(True)
        self.worker.start()
        return self.worker

    def cancel(self) -> None:
        """Stop the running task at its next progress step."""
        if self._progress is not None:
            self._progress.cancel()
            self.cancel_button.setEnabled(False)

    def _show_progress(self, done: int, total: int) -> None:
        """Show ``done`` of ``total``; a total of 0 means "busy, no count" (a moving bar)."""
        self.bar.setRange(0, max(total, 0))
        self.bar.setValue(done)

    def _on_returned(self, outcome: _Outcome) -> None:
        self.worker = None
        self._progress = None
        self.setVisible(False)
        try:
            if outcome.cancelled:
                show_info("Cancelled.")
                self.cancelled.emit()
            elif outcome.error is not None:
                show_error(first_line(outcome.error))
                self.failed.emit(outcome.error)
            else:
                self._on_result(outcome.result)
                self.succeeded.emit(outcome.result)
        finally:
            self.finished.emit()
