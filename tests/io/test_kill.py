"""``kill -9`` during a write never loses the earlier output, nor shows a half new one.

Each test runs a real writer in a child process and kills it with SIGKILL at a marker the child
prints: when it starts (then after a delay), while the slow part runs, or right before one of
our renames (the child then waits, so the moment is exact, not a race). The child counts our
renames; when it was killed before the first, the earlier output must be unchanged, byte for
byte; otherwise it is the earlier or the complete new output. After the next successful write
no temporary of ours is left.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from napari_spines.io.atomic import is_temporary, recover_folder

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

ROOT = Path(__file__).resolve().parents[2]

#: Run in the child first: our renames are counted and announced; with ``PAUSE_AT=n`` the
#: child stops right before the n-th one (and is killed there).
PRELUDE = """
import os, sys, time
_real_replace = os.replace
_renames = 0
def _replace(src, dst, *args, **kwargs):
    global _renames
    names = os.path.basename(os.fspath(src)), os.path.basename(os.fspath(dst))
    if ".napari-spines-tmp" in names[0] or ".napari-spines-old" in names[1]:
        _renames += 1
        print(f"RENAME {_renames}", flush=True)
        if _renames == int(os.environ.get("PAUSE_AT", "0")):
            print("PAUSED", flush=True)
            time.sleep(600)
    return _real_replace(src, dst, *args, **kwargs)
os.replace = _replace
"""


@dataclass
class Killed:
    """What a killed child printed."""

    lines: list[str]

    @property
    def renamed(self) -> bool:
        """Whether it got to one of our renames (it may not have made it)."""
        return any(line.startswith("RENAME") for line in self.lines)

    @property
    def finished(self) -> bool:
        """Whether it was done before the kill came (a delay longer than the write)."""
        return any(line.startswith("DONE") for line in self.lines)


def kill_at(code: str, marker: str, delay: float = 0.0, pause_at: int = 0) -> Killed:
    """Run ``code`` in a child; SIGKILL it ``delay`` s after it prints ``marker``."""
    env = {**os.environ, "PAUSE_AT": str(pause_at), "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    watchdog = threading.Timer(60, child.kill)
    watchdog.start()
    lines = []
    try:
        assert child.stdout is not None
        for line in child.stdout:
            lines.append(line.strip())
            if line.strip() == marker:
                time.sleep(delay)
                break
        child.send_signal(signal.SIGKILL)
        lines += [line.strip() for line in child.stdout]
    finally:
        watchdog.cancel()
        child.wait()
    assert marker in lines, f"the child ended before {marker!r}: {lines}"
    return Killed(lines)


def temporaries(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if is_temporary(p)]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# -- a large float TIFF -----------------------------------------------------------------------

TIFF_CHILD = """
import numpy as np
from napari_spines.io.outputs import write_float_tiff
array = np.random.default_rng(1).random((48, 512, 512), dtype=np.float32)
print("START", flush=True)
write_float_tiff({path!r}, array, "ZYX", (1, 0.1, 0.1))
print("DONE", flush=True)
"""


def test_killed_float_tiff_write_keeps_the_earlier_file(tmp_path):
    from napari_spines.io.outputs import write_float_tiff

    path = tmp_path / "out.ome.tif"
    earlier = write_float_tiff(path, np.ones((4, 64, 64)), "ZYX", (1, 0.1, 0.1)).read_bytes()
    code = TIFF_CHILD.format(path=str(path))
    new = np.random.default_rng(1).random((48, 512, 512), dtype=np.float32)
    left = []
    for marker, delay, pause_at in [
        ("START", 0.1, 0),
        ("START", 0.3, 0),
        ("START", 0.6, 0),
        ("PAUSED", 0, 1),  # the new file is complete and about to be renamed into place
    ]:
        killed = kill_at(code, marker, delay, pause_at)
        if pause_at or not killed.renamed:
            assert path.read_bytes() == earlier
        else:  # a fast machine: the write was done before the delay ran out
            np.testing.assert_array_equal(tifffile.imread(path), new)
        left += temporaries(tmp_path)
        path.write_bytes(earlier)
    assert left  # the killed writers left their temporaries behind ...
    write_float_tiff(path, new, "ZYX", (1, 0.1, 0.1))
    assert temporaries(tmp_path) == []  # ... and the next write removed them
    np.testing.assert_array_equal(tifffile.imread(path), new)


# -- a Zarr prediction ------------------------------------------------------------------------

PREDICT_CHILD = """
import zarr
_real_setitem = zarr.Array.__setitem__
def _setitem(self, key, value):
    if not getattr(zarr, "_announced", False):
        zarr._announced = True
        print("WRITING", flush=True)
    _real_setitem(self, key, value)
zarr.Array.__setitem__ = _setitem
from napari_spines.cli import main
print("START", flush=True)
rc = main(["predict", {image!r}, "-m", "spine-dog", "-o", {out!r}])
print("DONE", rc, flush=True)
"""


def test_killed_zarr_prediction_keeps_the_earlier_output(tmp_path):
    from napari_spines.cli import main

    for seed, name in ((0, "a.tif"), (1, "b.tif")):
        args = ["synthetic", "two-photon", "-o", str(tmp_path / name), "--shape", "32", "256"]
        assert main([*args, "256", "--seed", str(seed)]) == 0
    out = tmp_path / "pred.zarr"
    assert main(["predict", str(tmp_path / "a.tif"), "-m", "spine-dog", "-o", str(out)]) == 0
    earlier = zarr.open_array(str(out), mode="r")[:]
    files = tree(out)
    code = PREDICT_CHILD.format(image=str(tmp_path / "b.tif"), out=str(out))
    left = []
    for marker, delay, pause_at in [
        ("START", 0.1, 0),
        ("WRITING", 0.05, 0),  # while the tiles are predicted and written
        ("PAUSED", 0, 1),  # the earlier output is about to be renamed away
        ("PAUSED", 0, 2),  # it was renamed away; the new one is about to take its name
    ]:
        killed = kill_at(code, marker, delay, pause_at)
        assert pause_at or not killed.renamed, killed.lines  # the kill fell inside the run
        left += temporaries(tmp_path)
        assert out.exists() == (pause_at != 2)
        recover_folder(out)  # what a reader does first: after the last kill, it is needed
        assert tree(out) == files
        np.testing.assert_array_equal(zarr.open_array(str(out), mode="r")[:], earlier)
    assert left  # the killed writers left their temporaries behind ...
    assert main(["predict", str(tmp_path / "b.tif"), "-m", "spine-dog", "-o", str(out)]) == 0
    assert temporaries(tmp_path) == []  # ... and the next write removed them
    new = zarr.open_array(str(out), mode="r")[:]
    assert new.shape == earlier.shape and not np.array_equal(new, earlier)


# -- labels and their edit log ----------------------------------------------------------------

#: Defines ``save(path, seed, n)``: random labels and ``n`` edits saved by the session.
LABELS_SAVE = """
import numpy as np
from napari_spines.segmentation.edit_log import Edit
from napari_spines.segmentation.proofreading import Proofreader
from napari_spines.segmentation.session import SegmentationSession

class Saved:
    save_log = Proofreader.save_log

    def __init__(self, labels, n):
        self.labels = labels
        self.edits = [Edit("delete", [i + 1], [], [], "2026-01-01T00:00:00.000Z") for i in range(n)]

def labels_of(seed):
    return np.random.default_rng(seed).integers(0, 60000, (64, 512, 512), dtype=np.uint16)

def save(path, seed, n, announce=False):
    session = SegmentationSession(None, None, None)
    session.proofreader = Saved(labels_of(seed), n)
    if announce:
        print("START", flush=True)
    session.save(path, (1.0, 0.1, 0.1))
"""


def saved_pair(path: Path) -> tuple[str, int]:
    """The labels (their sha256) and the number of edits, as loaded back."""
    from napari_spines.segmentation.edit_log import load_saved_edits

    return hashlib.sha256(tifffile.imread(path).tobytes()).hexdigest(), len(load_saved_edits(path))


def test_killed_labels_save_keeps_labels_and_log_together(tmp_path):
    path = tmp_path / "seg.tif"
    saving: dict = {}
    exec(LABELS_SAVE, saving)
    saving["save"](path, 0, 10)
    earlier, earlier_bytes = saved_pair(path), path.read_bytes()
    new = (hashlib.sha256(saving["labels_of"](1).tobytes()).hexdigest(), 400)
    assert earlier[1] == 10 and earlier != new
    left = []
    code = LABELS_SAVE + f"save({str(path)!r}, 1, 400, announce=True)\nprint('DONE')\n"
    for marker, delay, pause_at, expected in [
        ("START", 0.1, 0, earlier),
        ("START", 0.3, 0, earlier),
        ("PAUSED", 0, 1, earlier),  # the TIFF is about to be renamed into place
        ("PAUSED", 0, 2, new),  # it was; the JSON beside it still holds the earlier log
    ]:
        killed = kill_at(code, marker, delay, pause_at)
        if pause_at or not killed.renamed:
            assert saved_pair(path) == expected
        else:  # a fast machine: the TIFF was in place before the delay ran out
            assert saved_pair(path) in (earlier, new)
        if saved_pair(path) == earlier:
            assert path.read_bytes() == earlier_bytes
        left += temporaries(tmp_path)
        saving["save"](path, 0, 10)  # the next save cleans up after the killed one
        assert temporaries(tmp_path) == [] and path.read_bytes() == earlier_bytes
    assert left
    saving["save"](path, 1, 400)
    assert saved_pair(path) == new and temporaries(tmp_path) == []
    assert saved_pair(path)[1] == len(
        json.loads(path.with_name("seg.edits.json").read_text())["edits"]
    )


# -- a model package --------------------------------------------------------------------------

EXPORT_CHILD = """
from pathlib import Path
import torch
from tests.models.tiny import make_tiny_package
_real_trace = torch.jit.trace
def _trace(*args, **kwargs):
    print("TRACING", flush=True)
    return _real_trace(*args, **kwargs)
torch.jit.trace = _trace
print("START", flush=True)
make_tiny_package(Path({folder!r}), runtimes=("torch",), seed=1)
print("DONE", flush=True)
"""


def test_killed_package_export_keeps_the_earlier_package(tmp_path):
    from napari_spines.models import open_package
    from tests.models.tiny import make_tiny_package

    folder = tmp_path / "tiny"
    make_tiny_package(folder, runtimes=("torch",), seed=0)
    (folder / "README.md").write_text("notes kept across exports")
    files = tree(folder)
    code = EXPORT_CHILD.format(folder=str(folder))
    left = []
    for marker, delay, pause_at in [
        ("TRACING", 0, 0),  # while the network is traced and saved
        ("PAUSED", 0, 1),  # model.yaml is about to be renamed inside the new package
        ("PAUSED", 0, 2),  # the earlier package is about to be renamed away
        ("PAUSED", 0, 3),  # it was; the new one is about to take its name
    ]:
        killed = kill_at(code, marker, delay, pause_at)
        assert pause_at or not killed.renamed, killed.lines  # the kill fell inside the export
        left += temporaries(tmp_path)
        assert folder.exists() == (pause_at != 3)
        recover_folder(folder)  # what a reader does first: after the last kill, it is needed
        assert tree(folder) == files
        weights = open_package(folder).spec.weights.values()  # checks their sha256 too
        assert all(sha256(folder / w.file) == w.sha256 for w in weights)
    assert left
    make_tiny_package(folder, runtimes=("torch",), seed=1)
    assert temporaries(tmp_path) == []
    assert (folder / "README.md").read_text() == "notes kept across exports"
    assert sha256(folder / "model.pt") != hashlib.sha256(files["model.pt"]).hexdigest()
    weights = open_package(folder).spec.weights.values()
    assert all(sha256(folder / w.file) == w.sha256 for w in weights)
