"""All-or-nothing writes: fsync, stale temporaries of killed writers, interrupted folder swaps."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from napari_spines.io import atomic
from napari_spines.io.atomic import (
    atomic_folder,
    atomic_path,
    is_temporary,
    recover_folder,
    remove_stale_temporaries,
)
from napari_spines.io.labels_tiff import read_edit_log, write_labels_tiff
from napari_spines.io.outputs import zarr_output
from napari_spines.segmentation.edit_log import Edit, load_log, load_saved_edits, log_json


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The id of a process that ran and was reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def live_pid():
    """The id of a running child process (ended after the test)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield child.pid
    child.kill()
    child.wait()


def ours(folder: Path, target: str, pid: int, kind: str = "tmp", host: str | None = None) -> Path:
    """The name `atomic_path` / `atomic_folder` give a temporary of process ``pid``."""
    suffix = Path(target).suffix
    return folder / f".{target}.{pid}-{host or atomic._HOST}-0.napari-spines-{kind}{suffix}"


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_atomic_path_fsyncs_the_file_then_the_folder(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}") if sys.platform == "linux" else fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    target = tmp_path / "out.txt"
    with atomic_path(target) as tmp:
        assert is_temporary(tmp) and tmp.suffix == ".txt" and f".{os.getpid()}-" in tmp.name
        tmp.write_text("new")
    assert target.read_text() == "new" and names(tmp_path) == ["out.txt"]
    assert len(synced) == 2
    if sys.platform == "linux":
        assert synced[0].endswith(".txt") and synced[1] == str(tmp_path)


def test_atomic_folder_fsyncs_every_file_and_folder(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(fd))
    with atomic_folder(tmp_path / "pkg") as tmp:
        (tmp / "sub").mkdir()
        (tmp / "sub" / "a").write_text("a")
        (tmp / "b").write_text("b")
    # a, b, sub, the temporary folder, the parent after the rename
    assert len(calls) == 5
    assert (tmp_path / "pkg" / "sub" / "a").read_text() == "a"


def test_stale_temporaries_of_dead_processes_go_live_ones_and_foreign_files_stay(
    tmp_path, dead_pid, live_pid
):
    dead_file = ours(tmp_path, "x.tif", dead_pid)
    dead_folder = ours(tmp_path, "y.zarr", dead_pid)
    live_file = ours(tmp_path, "x.tif", live_pid)
    mine = ours(tmp_path, "z.tif", os.getpid())
    other_host = ours(tmp_path, "x.tif", dead_pid, host="0123abcd")
    foreign = [tmp_path / n for n in ("x.tif", ".x.ab12cd34.tif", "notes.napari-spines-tmp")]
    for path in (dead_file, live_file, mine, other_host, *foreign):
        path.write_bytes(b"data")
    dead_folder.mkdir()
    (dead_folder / "zarr.json").write_text("{}")
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted([dead_file, dead_folder])
    assert names(tmp_path) == sorted(p.name for p in (live_file, mine, other_host, *foreign))
    assert remove_stale_temporaries(tmp_path / "missing") == []


def test_every_atomic_write_cleans_its_folder_first(tmp_path, dead_pid):
    stale = ours(tmp_path, "big.tif", dead_pid)
    stale.write_bytes(b"\0" * 1000)
    write_labels_tiff(tmp_path / "labels.tif", np.ones((2, 4, 4), np.uint8), (1, 1, 1))
    assert names(tmp_path) == ["labels.tif"]
    stale.write_bytes(b"\0" * 1000)
    with atomic_folder(tmp_path / "pkg") as tmp:
        (tmp / "a").write_text("a")
    assert names(tmp_path) == ["labels.tif", "pkg"]


@pytest.mark.parametrize("make", [atomic_path, atomic_folder])
def test_a_failure_leaves_the_target_as_it_was(tmp_path, make):
    target = tmp_path / "out"
    with pytest.raises(RuntimeError), make(target) as tmp:
        raise RuntimeError("disk full")
    assert names(tmp_path) == []
    if make is atomic_path:
        target.write_text("old")
    else:
        target.mkdir()
        (target / "a").write_text("old")
    with pytest.raises(KeyboardInterrupt), make(target) as tmp:
        if tmp.is_dir():
            (tmp / "a").write_text("half")
        else:
            tmp.write_text("half")
        raise KeyboardInterrupt
    assert names(tmp_path) == ["out"]
    assert (target / "a" if target.is_dir() else target).read_text() == "old"


def test_atomic_folder_replaces_a_folder_or_a_file(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "stale").write_text("old")
    with atomic_folder(target) as tmp:
        (tmp / "new").write_text("new")
    assert names(target) == ["new"] and names(tmp_path) == ["out"]
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o777 & ~mask
    target.joinpath("new").unlink()
    target.rmdir()
    target.write_text("a file")
    with atomic_folder(target) as tmp:
        (tmp / "new").write_text("new")
    assert names(target) == ["new"] and names(tmp_path) == ["out"]


def test_a_failed_second_rename_puts_the_old_folder_back(tmp_path, monkeypatch):
    target = tmp_path / "out"
    target.mkdir()
    (target / "a").write_text("old")
    real, calls = os.replace, []

    def replace(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:
            raise OSError("no space")
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="no space"), atomic_folder(target) as tmp:
        (tmp / "a").write_text("new")
    assert names(tmp_path) == ["out"] and (target / "a").read_text() == "old"


def test_an_interrupted_swap_is_recovered(tmp_path, dead_pid, live_pid):
    """A kill between the renames leaves the old folder renamed away and the new one beside."""
    target = tmp_path / "out.zarr"
    old = ours(tmp_path, "out.zarr", dead_pid, "old")
    new = ours(tmp_path, "out.zarr", dead_pid, "tmp")
    for folder, text in ((old, "old"), (new, "new")):
        folder.mkdir()
        (folder / "a").write_text(text)
    assert recover_folder(target)
    assert names(tmp_path) == ["out.zarr"] and (target / "a").read_text() == "old"
    assert not recover_folder(target)  # nothing to do

    # a kill after the second rename: the new folder is in place, the old one goes
    old.mkdir()
    (old / "a").write_text("older")
    with atomic_folder(tmp_path / "other") as tmp:
        (tmp / "a").write_text("other")
    assert names(tmp_path) == ["other", "out.zarr"] and (target / "a").read_text() == "old"

    # the next write recovers too, before it writes; a live writer's swap is left alone
    os.replace(target, old)
    busy = ours(tmp_path, "busy", live_pid, "old")
    busy.mkdir()
    with atomic_folder(tmp_path / "third") as tmp:
        pass
    assert (target / "a").read_text() == "old" and busy.is_dir()
    assert not recover_folder(tmp_path / "busy")


def test_zarr_output_replaces_the_earlier_array_only_when_complete(tmp_path):
    path = tmp_path / "pred.zarr"
    with zarr_output(path, (1, 4, 8, 8), "CZYX", (1.0, 0.5, 0.5)) as out:
        assert not path.exists()
        out[:] = 1
    earlier = zarr.open_array(str(path), mode="r")
    assert earlier.attrs["axes"] == "CZYX" and earlier.attrs["voxel_size"] == [1.0, 0.5, 0.5]
    with (
        pytest.raises(RuntimeError),
        zarr_output(path, (2, 4, 8, 8), "CZYX", (1.0, 0.5, 0.5)) as out,
    ):
        out[0] = 7
        raise RuntimeError("prediction failed")
    again = zarr.open_array(str(path), mode="r")
    assert again.shape == (1, 4, 8, 8) and (again[:] == 1).all()
    assert names(tmp_path) == ["pred.zarr"]


@pytest.mark.parametrize("high", [3, 70000])  # ImageJ TIFF, OME-TIFF
def test_labels_tiff_carries_its_edit_log(tmp_path, high):
    labels = np.zeros((2, 8, 8), np.uint32)
    labels[0, :2, :2] = high
    edits = [Edit("delete", [high], [], [[0.0, 1.0, 1.0]]), Edit("merge", [1, 2], [1])]
    path = write_labels_tiff(tmp_path / "seg.tif", labels, (1, 1, 1), edit_log=log_json(edits))
    np.testing.assert_array_equal(tifffile.imread(path), labels)
    assert read_edit_log(path) == log_json(edits)
    assert load_saved_edits(path) == load_log(path) == [e.to_dict() for e in edits]


def test_saved_edits_of_a_tiff_without_a_log_come_from_the_file_beside_it(tmp_path):
    path = write_labels_tiff(tmp_path / "seg.tif", np.ones((4, 4), np.uint8), (1, 1))
    assert read_edit_log(path) is None
    with pytest.raises(ValueError, match="no edit log"):
        load_saved_edits(path)
    (tmp_path / "seg.edits.json").write_text(log_json([Edit("delete", [1], [])]))
    assert [e["operation"] for e in load_saved_edits(path)] == ["delete"]
