"""The training store: entries, versions, provenance, and what survives damage and kills."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_spines.training import store
from napari_spines.training.store import MANIFEST, add_labels, add_spines, load_store

VOXEL = (1.0, 0.2, 0.2)
ROOT = Path(__file__).resolve().parents[2]


def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 4000, (8, 64, 80), dtype=np.uint16)


def spines_entry(folder: Path, source: Path | None = None, statuses=None) -> store.Entry:
    coords = np.array([[4, 30, 30], [4, 10, 70], [2, 50, 50], [6, 20, 40]], float)
    statuses = statuses or ["accepted", "rejected", "auto", "added"]
    trace = np.array([[4, 30, 20], [4, 30, 60]], float)
    return add_spines(folder, image(), VOXEL, coords, statuses, dendrites=trace, source=source)


def test_an_entry_keeps_image_points_trace_and_provenance(tmp_path):
    source = tmp_path / "stack.tif"
    tifffile.imwrite(source, image())
    entry = spines_entry(tmp_path / "store", source)
    assert entry.record["counts"] == {
        "auto": 1,
        "accepted": 1,
        "rejected": 1,
        "added": 1,
        "moved": 0,
    }
    assert entry.record["source"]["sha256"] == store.sha256_file(source)
    assert entry.record["region"] == {"near": "dendrites", "within_um": 4.0}
    # the box: around the trace plus within_um + context, clipped to the stack
    assert entry.record["box"] == [0, 0, 0, 8, 64, 80]
    assert sorted(entry.record["files"]) == ["dendrites.csv", "image.tif", "points.csv"]
    saved = tifffile.imread(entry.path("image.tif"))
    np.testing.assert_array_equal(saved, image())
    contents = load_store(tmp_path / "store")
    assert contents.problems == [] and [e.id for e in contents.entries] == [entry.id]


def test_a_box_crops_the_image_and_keeps_only_its_spines(tmp_path):
    coords = np.array([[4, 30, 30], [4, 10, 70]], float)
    entry = add_spines(
        tmp_path, image(), VOXEL, coords, ["accepted"] * 2, box=(0, 20, 20, 8, 40, 40)
    )
    from napari_spines.io.points_csv import read_points_csv

    kept, _, props = read_points_csv(entry.path("points.csv"))
    assert tifffile.imread(entry.path("image.tif")).shape == (8, 20, 20)
    np.testing.assert_allclose(kept, [[4, 10, 10]])
    assert list(props["status"]) == ["accepted"]
    assert entry.record["region"]["near"] == "shaft"


def test_saving_the_same_stack_again_adds_a_version_and_training_uses_the_newest(tmp_path):
    source = tmp_path / "stack.tif"
    tifffile.imwrite(source, image())
    first = spines_entry(tmp_path / "store", source)
    second = spines_entry(tmp_path / "store", source, ["accepted"] * 4)
    assert (first.record["version"], second.record["version"]) == (1, 2)
    contents = load_store(tmp_path / "store")
    assert len(contents.entries) == 2  # nothing overwritten
    assert [e.id for e in contents.latest("spines")] == [second.id]
    assert first.folder.is_dir()


def test_a_cut_line_a_damaged_file_and_an_unfinished_folder_are_reported_and_skipped(tmp_path):
    folder = tmp_path / "store"
    good = spines_entry(folder)
    damaged = spines_entry(folder, statuses=["added"] * 4)
    damaged.path("points.csv").write_text("z,y,x\n1,2,3\n")
    (folder / "entries" / "20260101T000000-x-spines-abcdef").mkdir()
    with open(folder / MANIFEST, "a") as handle:
        handle.write('{"id": "cut')  # a kill in the middle of a line
    contents = load_store(folder)
    assert [e.id for e in contents.entries] == [good.id]
    problems = "\n".join(contents.problems)
    assert "sha256 differs" in problems and "not valid JSON" in problems
    assert "did not finish" in problems
    # the next save starts on a line of its own, and both are readable
    third = spines_entry(folder, statuses=["accepted"] * 4)
    assert [e.id for e in load_store(folder).entries] == [good.id, third.id]


def test_a_line_listed_twice_counts_once(tmp_path):
    folder = tmp_path / "store"
    spines_entry(folder)
    line = (folder / MANIFEST).read_text()
    (folder / MANIFEST).write_text(line + line)
    contents = load_store(folder)
    assert len(contents.entries) == 1 and "listed twice" in contents.problems[0]


def test_labels_entries_keep_the_edit_log(tmp_path):
    from napari_spines.io.labels_tiff import read_edit_log

    labels = np.zeros(image().shape, np.uint16)
    labels[:, 10:30, 10:30] = 3
    log = json.dumps({"edits": [{"operation": "merge", "ids": [1, 3], "new_ids": [3]}]})
    entry = add_labels(tmp_path, image(), labels, VOXEL, edit_log=log, counts={"merge": 1})
    assert read_edit_log(entry.path("labels.tif")) == log
    assert entry.record["counts"] == {"merge": 1} and entry.task == "labels"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda f: add_spines(f, image(), VOXEL, np.zeros((1, 3)), ["maybe"]), "unknown status"),
        (lambda f: add_spines(f, image(), VOXEL, np.zeros((2, 3)), ["auto"]), "2 spines"),
        (lambda f: add_spines(f, image()[0], VOXEL, np.zeros((0, 3)), []), "Z × Y × X"),
        (
            lambda f: add_spines(f, image(), VOXEL, np.zeros((0, 3)), [], box=(0, 0, 0, 1, 1)),
            "six numbers",
        ),
        (
            lambda f: add_spines(f, image(), VOXEL, np.zeros((0, 3)), [], box=(9, 0, 0, 12, 5, 5)),
            "holds no voxel",
        ),
        (lambda f: add_labels(f, image(), np.zeros((8, 64, 80), int), VOXEL), "all 0"),
        (lambda f: add_labels(f, image(), np.zeros((8, 6, 8), int), VOXEL), "same shape"),
    ],
)
def test_bad_entries_are_refused_with_a_message_and_leave_nothing(tmp_path, call, message):
    with pytest.raises(ValueError, match=message):
        call(tmp_path)
    assert not (tmp_path / MANIFEST).exists()
    assert not (tmp_path / "entries").exists() or not any((tmp_path / "entries").iterdir())


CHILD = """
import numpy as np, sys
from napari_spines.training.store import add_spines
image = np.random.default_rng(0).integers(0, 4000, (8, 256, 256), dtype=np.uint16)
for i in range(1000):
    add_spines(sys.argv[1], image, (1.0, 0.2, 0.2), np.array([[4, 30, 30]]), ["accepted"])
    print("SAVED", i + 1, flush=True)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
@pytest.mark.parametrize("after", [0.0, 0.5, 1.3])
def test_a_kill_during_saves_leaves_every_finished_entry(tmp_path, after):
    folder = tmp_path / "store"
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(CHILD), str(folder)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    saved = 0
    first = child.stdout.readline()  # at least one save finishes
    assert first.startswith("SAVED"), first
    saved = 1
    time.sleep(after)
    child.send_signal(signal.SIGKILL)
    rest = child.communicate()[0]
    saved += rest.count("SAVED")
    contents = load_store(folder)
    # every save that said it finished is there and intact; at most one more (killed after
    # its line was written but before it printed)
    assert saved <= len(contents.entries) <= saved + 1
    assert all("sha256" not in p and "JSON" not in p for p in contents.problems)
    # the store takes new entries after the kill
    spines_entry(folder)
    assert len(load_store(folder).entries) == len(contents.entries) + 1


def test_training_add_and_list_from_the_command_line(tmp_path, capsys):
    from napari_spines.cli import main
    from napari_spines.io.points_csv import write_points_csv

    stack = tmp_path / "stack.tif"
    tifffile.imwrite(
        stack,
        image(),
        imagej=True,
        resolution=(5, 5),
        metadata={"axes": "ZYX", "spacing": 1.0, "unit": "um"},
    )
    points = tmp_path / "reviewed.csv"
    coords = np.array([[4, 30, 30], [4, 10, 70], [2, 50, 50]])
    write_points_csv(points, coords, VOXEL, {"status": np.array(["accepted", "rejected", "added"])})
    plain = tmp_path / "plain.csv"
    write_points_csv(plain, coords, VOXEL)
    trace = tmp_path / "trace.csv"
    write_points_csv(trace, np.array([[4, 30, 20], [4, 30, 60]]), VOXEL)
    folder = tmp_path / "store"
    argv = ["training", "add", str(stack), "--store", str(folder), "--dendrites", str(trace)]
    assert main([*argv, "--points", str(points), "--model", "spine-2p"]) == 0
    assert "1 accepted, 1 rejected, 1 added" in capsys.readouterr().out
    assert main([*argv, "--points", str(plain)]) == 0  # no status: every point a head
    assert "3 accepted" in capsys.readouterr().out
    assert main(["training", "list", "--store", str(folder)]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 2 and "(older version)" in out
    assert "2 entries; newest versions: 1 spines" in err
    first = load_store(folder).entries[0]
    assert first.record["model"]["name"] == "spine-2p"
    assert first.record["source"]["sha256"] == store.sha256_file(stack)
    assert first.voxel_size_um == pytest.approx(VOXEL)


def test_proposals_not_reviewed_yet_are_kept_as_unreviewed(tmp_path):
    from napari_spines.io.points_csv import read_points_csv

    entry = spines_entry(tmp_path / "store", statuses=["carried", "accepted", "new", "rejected"])
    _, _, props = read_points_csv(entry.path("points.csv"))
    assert props["status"].tolist() == ["auto", "accepted", "auto", "rejected"]
