"""The autosave journal: append-only, survives cut lines and SIGKILL, replays label edits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from napari_spines.segmentation.proofreading import Proofreader
from napari_spines.segmentation.undo import ChangedVoxels, PackedValues, Patch
from napari_spines.training import journal
from napari_spines.training.journal import Journal

ROOT = Path(__file__).resolve().parents[2]


def spines(n: int = 5, reviewed: int = 0) -> dict:
    coords = np.arange(n * 3, dtype=float).reshape(n, 3)
    statuses = ["accepted"] * reviewed + ["auto"] * (n - reviewed)
    return journal.spine_state(
        coords, statuses, np.arange(1, n + 1), np.linspace(0.1, 0.9, n), layer="s",
        voxel_size_um=(1.0, 0.2, 0.2),
    )  # fmt: skip


def test_last_state_is_the_last_complete_line(tmp_path):
    path = journal.journal_path(tmp_path, "k")
    assert journal.last_state(path) is None
    for reviewed in range(3):
        journal.record(path, spines(reviewed=reviewed))
    coords, statuses, ids, scores = journal.spine_arrays(journal.last_state(path))
    assert list(statuses) == ["accepted"] * 2 + ["auto"] * 3
    assert coords.shape == (5, 3) and ids.tolist() == [1, 2, 3, 4, 5]
    assert scores[0] == pytest.approx(0.1)


def test_a_cut_last_line_is_skipped_and_closed_by_the_next_write(tmp_path):
    path = journal.journal_path(tmp_path, "k")
    journal.record(path, spines(reviewed=1))
    journal.record(path, spines(reviewed=2))
    raw = path.read_bytes()
    path.write_bytes(raw[:-40])  # a kill in the middle of the second line
    assert journal.spine_arrays(journal.last_state(path))[1].tolist().count("accepted") == 1
    journal.record(path, spines(reviewed=3))
    states = journal.read_states(path)
    assert [s["status"].count("accepted") for s in states] == [1, 3]
    with open(path, "ab") as handle:
        handle.write(b"{not json\n\x00\x00\n[1, 2]\n")  # corrupt lines, and a line not a dict
    assert journal.last_state(path)["status"].count("accepted") == 3


def test_clear_renames_and_keeps_the_journal(tmp_path):
    path = journal.journal_path(tmp_path, "k")
    journal.record(path, spines())
    done = journal.clear(path)
    assert not path.exists() and done.is_file()
    assert done.name.startswith("k.done-") and done.name.endswith(".jsonl")
    assert len(journal.read_states(done)) == 1
    assert journal.clear(path) is None


def test_a_journal_left_behind_is_kept_aside_by_the_first_new_edit(tmp_path):
    path = journal.journal_path(tmp_path, "k")
    journal.record(path, spines(reviewed=4))
    found = Journal(path)
    assert found.unsaved == 1
    found.record(spines(reviewed=1))  # not restored: the old one goes aside, not lost
    assert [s["status"].count("accepted") for s in journal.read_states(path)] == [1]
    (old,) = path.parent.glob("k.done-*.jsonl")
    assert journal.read_states(old)[0]["status"].count("accepted") == 4
    again = Journal(path)
    assert again.adopt()[0]["status"].count("accepted") == 1  # restored: it goes on
    again.record(spines(reviewed=2))
    assert len(journal.read_states(path)) == 2


def test_a_journal_of_snapshots_stays_small(tmp_path, monkeypatch):
    monkeypatch.setattr(journal, "MAX_SNAPSHOT_BYTES", 3000)
    keep = Journal(journal.journal_path(tmp_path, "k"), snapshots=True)
    for reviewed in range(40):
        keep.record(spines(n=10, reviewed=reviewed % 10))
    assert keep.path.stat().st_size < 6000
    assert journal.last_state(keep.path)["status"].count("accepted") == 39 % 10


def test_the_stack_key_follows_the_file_not_its_name(tmp_path):
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    a.write_bytes(b"stack")
    b.write_bytes(b"stack")
    assert (
        journal.stack_key(a, "x", (1,), "spines")[2:]
        == journal.stack_key(b, "y", (2,), "spines")[2:]
    )
    assert journal.stack_key(None, "x", (1,), "spines") != journal.stack_key(
        None, "x", (2,), "spines"
    )
    assert journal.stack_key(None, "x", (1,), "labels").endswith("-labels")


# -- labels ------------------------------------------------------------------------------------


def make_labels() -> np.ndarray:
    labels = np.zeros((6, 20, 24), np.uint16)
    labels[1:5, 2:10, 2:10] = 3
    labels[1:5, 2:10, 12:22] = 7
    labels[0:6, 12:18, 2:8] = 12
    labels[2:4, 13:17, 12:20] = 5
    return labels


def journal_edits(tmp_path):
    """Proofread with every kind of change, journalling each; return (start, pr, path)."""
    start = make_labels()
    pr = Proofreader(start.copy())
    keep = Journal(journal.journal_path(tmp_path, "k-labels"), journal.labels_base(pr, layer="l"))

    def log(how: str = "", edit=None) -> None:
        record = pr.last_record(undone=how == "undo")
        keep.record(
            journal.change_record(
                record.patches, undone=how == "undo", mapping=record.mapping,
                edit=edit or record.edit, how=how,
            )
        )  # fmt: skip

    pr.merge([3, 7])
    log()
    pr.split(12, np.array([[1.0, 13, 3], [4, 16, 6]]))
    log()
    pr.delete(5)
    log()
    pr.undo()
    log("undo")
    pr.redo()
    log("redo")
    pr.relabel_sequential()
    log()
    pr.undo()
    log("undo")
    painted = pr.labels[2:3, 0:2, 0:4]
    before = painted.copy()
    painted[...] = 9  # a brush stroke
    patch = Patch(
        (slice(2, 3), slice(0, 2), slice(0, 4)),
        ChangedVoxels.of(np.ones(before.shape, bool)),
        PackedValues.pack(before.ravel()),
        PackedValues.constant(9, before.dtype),
    )
    keep.record(journal.change_record([patch], how="paint"))
    return start, pr, keep.path


def test_replaying_the_journal_gives_the_same_labels_and_log(tmp_path):
    start, pr, path = journal_edits(tmp_path)
    states = journal.read_states(path)
    assert states[0]["kind"] == "base" and journal.unsaved_edits(states) == 8
    assert states[0]["fingerprint"] == journal.labels_fingerprint(Proofreader(start.copy()))
    labels = start.copy()
    log = journal.replay(labels, states)
    np.testing.assert_array_equal(labels, pr.labels)
    assert [e["operation"] for e in log] == [e.operation for e in pr.edits]
    assert [e["operation"] for e in log] == ["merge", "split", "delete"]


def test_replay_refuses_other_labels(tmp_path):
    _, _, path = journal_edits(tmp_path)
    with pytest.raises(ValueError, match="not"):
        journal.replay(np.zeros((3, 4, 5), np.uint16), journal.read_states(path))
    with pytest.raises(ValueError, match="no base"):
        journal.replay(make_labels(), journal.read_states(path)[1:])


def test_a_journal_retired_under_edits_starts_again_from_a_snapshot(tmp_path):
    start = make_labels()
    pr = Proofreader(start.copy())
    touched: list = []

    def restart():
        return [journal.snapshot_record(pr.labels, touched[-1], pr.edits)]

    keep = Journal(journal.journal_path(tmp_path, "k"), journal.labels_base(pr, layer="l"), restart)
    pr.merge([3, 7])
    touched.append(pr.changed_region())
    record = pr.last_record()
    keep.record(journal.change_record(record.patches, edit=record.edit))
    keep.clear()  # saved to the store by the Training data widget
    pr.delete(12)
    record = pr.last_record()
    touched.append(tuple(slice(0, n) for n in pr.labels.shape))
    keep.record(journal.change_record(record.patches, edit=record.edit))
    labels = start.copy()
    log = journal.replay(labels, journal.read_states(keep.path))
    np.testing.assert_array_equal(labels, pr.labels)
    assert [e["operation"] for e in log] == ["merge", "delete"]


# -- a kill while recording -------------------------------------------------------------------

CHILD = """
import sys
import numpy as np
from napari_spines.training import journal
path = sys.argv[1]
coords = np.random.default_rng(0).random((500, 3)) * 100
statuses = np.array(["auto"] * 500, object)
for n in range(1, 100000):
    statuses[n % 500] = "accepted"
    state = journal.spine_state(coords, statuses, np.arange(500), np.ones(500), layer="s",
                                voxel_size_um=(1, 0.2, 0.2))
    state["n"] = n
    journal.record(path, state)
    print(f"EDIT {n}", flush=True)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
@pytest.mark.parametrize("delay", [0.0, 0.013, 0.037])
def test_a_kill_loses_at_most_the_edit_being_written(tmp_path, delay):
    path = journal.journal_path(tmp_path, "k")
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(CHILD), str(path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    watchdog = threading.Timer(60, child.kill)
    watchdog.start()
    done = 0
    try:
        assert child.stdout is not None
        for line in child.stdout:
            done = int(line.split()[1])
            if done >= 5:
                time.sleep(delay)
                break
        child.send_signal(signal.SIGKILL)
        for line in child.stdout:  # what it printed before the signal came
            done = int(line.split()[1])
    finally:
        watchdog.cancel()
        child.wait()
    last = journal.last_state(path)
    assert last is not None and last["n"] in (done, done + 1)  # every edit it reported is there
    assert last["status"].count("accepted") == last["n"]
    journal.record(path, {**last, "n": last["n"] + 1})  # the journal goes on after the kill
    assert journal.last_state(path)["n"] == last["n"] + 1
    assert [s["n"] for s in journal.read_states(path)][-2:] == [last["n"], last["n"] + 1]
