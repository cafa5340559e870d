"""Long work off napari's thread: `TaskPanel` (progress bar, Cancel) and `LatestWorker`."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from magicgui.widgets import Label
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QTimer, Signal
from qtpy.QtWidgets import QHBoxLayout, QProgressBar, QPushButton, QSizePolicy, QWidget

from napari_spines.errors import DataWarning, first_line
from napari_spines.progress import CancellableProgress, Cancelled

logger = logging.getLogger(__name__)


def status_label(value: str = "") -> Label:
    """A label for counts, scores and messages: it wraps long text instead of widening the dock."""
    label = Label(value=value)
    label.native.setWordWrap(True)
    policy = label.native.sizePolicy()
    policy.setHorizontalPolicy(QSizePolicy.Policy.Ignored)
    label.native.setSizePolicy(policy)
    return label


@dataclass(frozen=True)
class _Outcome:
    """What the worker hands back: a result, or the error that stopped it (None if cancelled)."""

    result: Any = None
    error: BaseException | None = None
    cancelled: bool = False


#: Modules napari imports the first time a result's layers are added (layer features are pandas
#: tables; label colours use skimage.color): 0.2 s on the main thread, so the worker imports
#: them first (docs/performance.md, "The GUI while work runs").
LAYER_MODULES = ("pandas", "skimage.color.colorconv")


def import_layer_modules() -> None:
    """Import `LAYER_MODULES` here (a worker thread), so adding layers does not."""
    import importlib
    import sys

    for name in LAYER_MODULES:
        if name not in sys.modules:
            importlib.import_module(name)


def _run_guarded(func: Callable[..., Any], **kwargs: Any) -> _Outcome:
    """Call ``func`` and turn every exception into an outcome, so none escapes the thread.

    napari would otherwise show an uncaught worker exception as a traceback notification.
    """
    try:
        result = func(**kwargs)
        import_layer_modules()
        return _Outcome(result=result)
    except Cancelled:
        return _Outcome(cancelled=True)
    except Exception as exc:
        logger.exception("napari-spines task failed")
        return _Outcome(error=exc)


def _show_data_warning(shown: tuple) -> None:
    """Show a `DataWarning` the worker raised (``showwarning``'s arguments) as a notification.

    Other warnings go to the log: they are for developers, not for the person at the viewer.
    """
    message, category = shown[0], shown[1]
    if issubclass(category, DataWarning):
        show_warning(str(message))
    else:
        logger.debug("warning in a task: %s", message)


class TaskPanel(QWidget):
    """A progress bar with a Cancel button, shown while a task runs.

    The core function gets ``progress=`` a `CancellableProgress`; its calls arrive here through
    a Qt signal, so the bar is updated on the main thread. ``succeeded`` (with the result),
    ``failed`` (with the exception) and ``cancelled`` are emitted on the main thread too, which
    is where layers may be changed. A failure shows one line, never a traceback.

    An ``on_result`` that is a generator function shows its result in steps: each step (up to
    a ``yield``) runs in its own turn of the event loop, so the viewer draws and answers
    between them (one layer added per step, not all at once). The panel stays busy until the
    last step, and then emits ``succeeded``.
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
        self._on_result: Callable[[Any], Any] = lambda _result: None
        self._steps: Iterator | None = None
        self.setVisible(False)

    @property
    def busy(self) -> bool:
        """True while a task runs or its result is still being shown."""
        return self.worker is not None or self._steps is not None

    def run(self, func: Callable[..., Any], on_result: Callable[[Any], Any], **kwargs: Any) -> Any:
        """Start ``func(progress=..., **kwargs)`` in a worker; None if a task already runs.

        ``on_result`` gets the return value on the main thread (not called on failure/cancel);
        a generator function shows it in steps, one per turn of the event loop.
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
            _connect={"returned": self._on_returned, "warned": _show_data_warning},
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
                shown = self._on_result(outcome.result)
                if inspect.isgenerator(shown):  # finished comes after its last step
                    self._steps = shown
                    QTimer.singleShot(0, lambda: self._step_on(outcome.result))
                else:
                    self.succeeded.emit(outcome.result)
        finally:
            if self._steps is None:
                self.finished.emit()

    def _step_on(self, result: Any) -> None:
        """Run the next step of the result being shown; come back on the next turn."""
        assert self._steps is not None
        try:
            next(self._steps)
        except StopIteration:
            self._steps = None
            self.succeeded.emit(result)
        except BaseException:
            self._steps = None
            raise
        else:
            QTimer.singleShot(0, lambda: self._step_on(result))
        finally:
            if self._steps is None:
                self.finished.emit()


def show_now(steps: Iterator[None]) -> None:
    """Run every step of a result shown in steps (see `TaskPanel`) at once, here."""
    for _step in steps:
        pass


class LatestWorker:
    """Work asked for again and again (a slider, a score): one worker at a time, latest wins.

    ``request()`` starts ``job()`` in a worker when none runs. While one runs, a request waits,
    and only the latest waiting one runs next; the result of the run it replaces is dropped,
    so ``on_result`` only ever sees the answer to the latest request. ``job`` is called on the
    main thread when the run starts (so it reads the slider's value then) and returns the
    callable for the worker, or None to run nothing. ``on_result`` and ``on_error`` run on the
    main thread, where layers may be changed; when the dock was closed meanwhile, their write
    to a deleted Qt widget is dropped.
    """

    def __init__(
        self,
        job: Callable[[], Callable[[], Any] | None],
        on_result: Callable[[Any], None],
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._job = job
        self._on_result = on_result
        self._on_error = on_error
        self._worker: Any = None
        self._pending = False
        self._dropped = False

    @property
    def busy(self) -> bool:
        """True while a run is in flight or a request waits."""
        return self._worker is not None or self._pending

    def request(self) -> None:
        """Ask for a run: now when idle, else after the one in flight (whose result is dropped)."""
        if self._worker is not None:
            self._pending = True
            return
        self._pending = self._dropped = False
        func = self._job()
        if func is None:
            return
        self._worker = create_worker(
            _run_guarded, func, _start_thread=False, _connect={"returned": self._returned}
        )
        self._worker.start()

    def discard(self) -> None:
        """Drop the result of the run in flight and forget a waiting request."""
        self._pending = False
        self._dropped = self._worker is not None

    def _returned(self, outcome: _Outcome) -> None:
        self._worker = None
        if self._pending:  # asked again meanwhile: this answer is out of date
            self.request()
            return
        if self._dropped:
            self._dropped = False
            return
        try:
            if outcome.error is not None:
                if self._on_error is None:
                    show_error(first_line(outcome.error))
                else:
                    self._on_error(outcome.error)
            elif not outcome.cancelled:
                self._on_result(outcome.result)
        except RuntimeError as exc:  # the dock widget was closed while the worker ran
            if "has been deleted" not in str(exc):
                raise
