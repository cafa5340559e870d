"""Run a long core function in a child process, with its progress, warnings and Cancel relayed.

Work that holds Python's GIL for seconds at a time (importing torch, exporting to ONNX) freezes
napari's window even from a worker thread. In a child process it holds only the child's GIL:
the worker thread in napari just waits for messages (docs/performance.md, "The GUI while work
runs"). The child is started with ``spawn``, never ``fork``, which is unsafe in a process that
runs Qt and threads.

Large numpy arguments travel through shared memory (`SharedArray`), not a pickle: pickling a
few hundred MB holds the GIL for most of a second, copying into shared memory does not.
"""

from __future__ import annotations

import queue
import warnings
from collections.abc import Callable
from typing import Any

from napari_spines.progress import Cancelled, ProgressCallback

#: Seconds a cancelled child may take to stop at its next step before it is terminated.
CANCEL_GRACE_S = 60.0
#: Seconds between looks at a child that sends nothing.
POLL_S = 0.1
#: numpy arguments of at least this many bytes go through shared memory.
SHARED_BYTES = 1 << 20


class ChildProcessError(RuntimeError):
    """The child process ended without an answer (killed, or out of memory)."""


class SharedArray:
    """A numpy array copied into shared memory; it pickles as its name, shape and dtype.

    The parent makes one per large argument and `release`s it when the child is done; the
    child `attach`es to it without a copy.
    """

    def __init__(self, array: Any) -> None:
        from multiprocessing import shared_memory

        import numpy as np

        self.shape, self.dtype = array.shape, array.dtype
        self._memory = shared_memory.SharedMemory(create=True, size=max(array.nbytes, 1))
        self.name = self._memory.name
        np.copyto(self.array(), array)  # releases the GIL, unlike a pickle

    def array(self) -> Any:
        """The array, a view of the shared memory."""
        import numpy as np

        return np.ndarray(self.shape, self.dtype, buffer=self._memory.buf)

    def __getstate__(self) -> dict:
        return {"name": self.name, "shape": self.shape, "dtype": self.dtype}

    def __setstate__(self, state: dict) -> None:
        from multiprocessing import shared_memory

        self.__dict__.update(state)
        self._memory = shared_memory.SharedMemory(name=self.name)

    def release(self) -> None:
        """Free the shared memory (the parent's side, once the child has finished)."""
        self._memory.close()
        try:
            self._memory.unlink()
        except FileNotFoundError:
            pass


def _shared(value: Any) -> Any:
    """``value``, or a `SharedArray` of it when it is a numpy array of `SHARED_BYTES` or more."""
    import numpy as np

    large = isinstance(value, np.ndarray) and value.nbytes >= SHARED_BYTES
    return SharedArray(value) if large and not value.dtype.hasobject else value


def _attached(value: Any) -> Any:
    return value.array() if isinstance(value, SharedArray) else value


def run_in_child(
    func: Callable[..., Any],
    *args: Any,
    progress: ProgressCallback | None = None,
    relay: dict[str, Callable[[Any], None]] | None = None,
    grace_s: float = CANCEL_GRACE_S,
    **kwargs: Any,
) -> Any:
    """Call ``func(*args, progress=..., **kwargs)`` in a spawned process and return its result.

    Parameters
    ----------
    func
        A module-level function (it is pickled by name) that takes ``progress=``.
    *args, **kwargs
        Its arguments; they must pickle.
    progress
        Gets the child's ``(done, total)`` reports here; when it raises `Cancelled`, the child
        is asked to stop at its next step, and terminated after `CANCEL_GRACE_S`. In the child,
        ``progress.cancelled`` says whether a stop was asked (`raise_if_cancelled` works).
        A `CancellableProgress` that is cancelled while the child reports nothing is noticed
        too, within `POLL_S`.
    grace_s
        Seconds a cancelled child has to stop by itself before it is terminated (0 for work
        that never reports progress, e.g. one call into a C extension).
    relay
        ``{keyword: callback}``: ``func`` gets a callable for each keyword, and what it is
        called with in the child (a picklable value) reaches the callback here, in order.

    Returns
    -------
    Any
        What ``func`` returned.

    Raises
    ------
    Cancelled
        ``progress`` asked to stop, or the child was cancelled.
    Exception
        What ``func`` raised (as a `RuntimeError` with its message if it does not pickle).
    ChildProcessError
        The child died without an answer.
    """
    args = tuple(_shared(value) for value in args)
    kwargs = {name: _shared(value) for name, value in kwargs.items()}
    try:
        return _talk_to_child(func, args, kwargs, progress, relay, grace_s)
    finally:  # also when the child could not even start
        for value in (*args, *kwargs.values()):
            if isinstance(value, SharedArray):
                value.release()


def _talk_to_child(
    func: Callable[..., Any],
    args: tuple,
    kwargs: dict[str, Any],
    progress: ProgressCallback | None,
    relay: dict[str, Callable[[Any], None]] | None,
    grace_s: float,
) -> Any:
    """Start the child, pass its messages on until its answer, and return that (`run_in_child`)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    messages = context.Queue()
    stop = context.Event()
    child = context.Process(
        target=_child_main,
        args=(messages, stop, func, args, kwargs, tuple(relay or ())),
        daemon=True,
    )
    child.start()
    cancelled_at: float | None = None
    try:
        while True:
            try:
                kind, *payload = messages.get(timeout=POLL_S)
            except queue.Empty:
                if not child.is_alive():
                    return _answer_after_exit(messages, child)
                cancelled_at = _check_cancel(progress, stop, child, cancelled_at, grace_s)
                continue
            if kind == "progress":
                try:
                    if progress is not None and cancelled_at is None:
                        progress(*payload)
                except Cancelled:
                    cancelled_at = _check_cancel(None, stop, child, None, grace_s, asked=True)
            elif kind == "warning":
                category, message = payload
                warnings.warn(category(message), stacklevel=2)
            elif kind == "relay":
                name, value = payload
                (relay or {})[name](value)
            else:
                return _finish(kind, payload)
    finally:
        child.join(timeout=5)
        if child.is_alive():
            child.terminate()
            child.join()


def _check_cancel(
    progress: ProgressCallback | None,
    stop: Any,
    child: Any,
    cancelled_at: float | None,
    grace_s: float,
    asked: bool = False,
) -> float | None:
    """Pass a Cancel on to the child; terminate it once it had its grace period."""
    import time

    if cancelled_at is None and not asked and getattr(progress, "cancelled", False):
        asked = True
    if asked and cancelled_at is None:
        stop.set()
        return time.monotonic()
    if cancelled_at is not None and time.monotonic() - cancelled_at >= grace_s:
        child.terminate()
        raise Cancelled("cancelled")
    return cancelled_at


def _answer_after_exit(messages: Any, child: Any) -> Any:
    """The answer a child sent just before it exited, or `ChildProcessError`."""
    try:
        kind, *payload = messages.get(timeout=1.0)
    except queue.Empty:
        raise ChildProcessError(
            f"the work's process ended without an answer (exit code {child.exitcode}); "
            "it may have run out of memory"
        ) from None
    return _finish(kind, payload)


def _finish(kind: str, payload: list) -> Any:
    if kind == "result":
        return payload[0]
    if kind == "cancelled":
        raise Cancelled("cancelled")
    raise payload[0]


class _ChildProgress:
    """The child's progress callback: sends reports, raises `Cancelled` once a stop is asked."""

    def __init__(self, messages: Any, stop: Any) -> None:
        self._messages, self._stop = messages, stop

    @property
    def cancelled(self) -> bool:
        """True once the parent asked the work to stop."""
        return self._stop.is_set()

    def __call__(self, done: int, total: int) -> None:
        """Send ``(done, total)``; raise `Cancelled` if a stop was asked."""
        if self._stop.is_set():
            raise Cancelled("cancelled")
        self._messages.put(("progress", int(done), int(total)))


def _child_main(
    messages: Any, stop: Any, func: Callable, args: tuple, kwargs: dict, relayed: tuple
) -> None:
    """The child's side: run ``func``, send progress, warnings, relayed values and the answer."""
    import pickle

    progress = _ChildProgress(messages, stop)
    for name in relayed:
        kwargs[name] = lambda value, name=name: messages.put(("relay", name, value))

    def relay(message: Any, category: type, *_args: Any, **_kwargs: Any) -> None:
        messages.put(("warning", category, str(message)))

    warnings.showwarning = relay
    args = tuple(_attached(value) for value in args)
    kwargs = {name: _attached(value) for name, value in kwargs.items()}
    try:
        result = func(*args, progress=progress, **kwargs)
    except Cancelled:
        messages.put(("cancelled",))
    except Exception as exc:  # sent to the parent, which raises it there
        try:
            pickle.dumps(exc)
        except Exception:
            exc = RuntimeError(str(exc))
        messages.put(("error", exc))
    else:
        messages.put(("result", result))
