"""Work in a child process: its answer, its errors, its progress, its warnings and Cancel."""

from __future__ import annotations

import os
import pickle
import time
import warnings

import pytest

from napari_spines.child_process import ChildProcessError, run_in_child
from napari_spines.errors import DataWarning
from napari_spines.progress import CancellableProgress, Cancelled


def counting(n: int, progress=None) -> int:
    for i in range(n):
        progress(i + 1, n)
    return os.getpid()


def failing(progress=None) -> None:
    raise ValueError("no such session: tp9")


def warning(progress=None) -> str:
    warnings.warn(DataWarning("the voxel size was assumed"), stacklevel=1)
    return "done"


def endless(progress=None) -> None:
    while True:
        progress(0, 0)
        time.sleep(0.05)


def silent(progress=None) -> None:
    time.sleep(3600)  # one long call that never reports, as into a C extension


def summing(image, scale=1.0, progress=None) -> tuple:
    return float(image.sum()) * scale, image.shape, str(image.dtype)


def dying(progress=None) -> None:
    os._exit(3)


def test_the_answer_and_the_progress_come_back_from_another_process():
    reports = []
    assert run_in_child(counting, 3, progress=lambda d, t: reports.append((d, t))) != os.getpid()
    assert reports == [(1, 3), (2, 3), (3, 3)]


def test_an_error_in_the_child_is_raised_here_with_its_message():
    with pytest.raises(ValueError, match="no such session: tp9"):
        run_in_child(failing)


def test_a_warning_in_the_child_is_warned_here():
    with pytest.warns(DataWarning, match="assumed"):
        assert run_in_child(warning) == "done"


def test_cancel_stops_the_child_at_its_next_step():
    progress = CancellableProgress()
    progress.cancel()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        run_in_child(endless, progress=progress)
    assert time.monotonic() - started < 30


def test_cancel_ends_a_child_that_never_reports_without_a_grace_period():
    """The mutex watershed's child: one call into mwatershed, no step to stop at."""
    progress = CancellableProgress()
    progress.cancel()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        run_in_child(silent, progress=progress, grace_s=0.0)
    assert time.monotonic() - started < 30  # not the hour, nor the default grace (60 s)


def test_a_child_that_dies_is_a_clear_error_not_a_hang():
    with pytest.raises(ChildProcessError, match="exit code 3"):
        run_in_child(dying)


def recording(n: int, on_record=None, progress=None) -> None:
    for i in range(n):
        on_record({"step": i})


def test_relayed_values_reach_their_callback_in_order():
    got = []
    run_in_child(recording, 3, relay={"on_record": got.append})
    assert got == [{"step": 0}, {"step": 1}, {"step": 2}]


def test_large_arrays_travel_through_shared_memory_and_are_freed(monkeypatch):
    """A pickle of a large array holds the GIL; shared memory is copied into without it."""
    import numpy as np

    from napari_spines import child_process

    made = []
    init = child_process.SharedArray.__init__

    def recording(self, array):
        init(self, array)
        made.append(self)

    monkeypatch.setattr(child_process.SharedArray, "__init__", recording)
    image = np.arange(3 * 256 * 512, dtype=np.float32).reshape(3, 256, 512)  # 1.5 MB
    small = np.ones(10, np.uint8)
    total, shape, dtype = run_in_child(summing, image, scale=2.0)
    assert (total, shape, dtype) == (float(image.sum()) * 2.0, image.shape, "float32")
    assert run_in_child(summing, small)[0] == 10.0
    assert len(made) == 1, "the large array went through shared memory, the small one not"
    from multiprocessing import shared_memory

    with pytest.raises(FileNotFoundError):  # freed once the child was done
        shared_memory.SharedMemory(name=made[0].name)
    with pytest.raises((pickle.PicklingError, AttributeError)):  # a lambda cannot be spawned
        run_in_child(lambda image, progress=None: 0, image)
    assert len(made) == 2
    with pytest.raises(FileNotFoundError):  # freed although no child ever started
        shared_memory.SharedMemory(name=made[1].name)
