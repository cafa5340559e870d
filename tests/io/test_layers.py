import numpy as np
import pytest
import tifffile

from napari_spines._reader import get_reader, read_paths
from napari_spines.io import Volume, read_volumes, volume_to_layer_data


def test_channels_split_into_layers_and_time_stays_a_dimension():
    data = np.zeros((2, 3, 4, 8, 8), np.uint8)  # TCZYX
    data[:, 1] = 5
    volume = Volume(data, "TCZYX", (0.5, 0.1, 0.1), name="cells")
    layers = volume_to_layer_data(volume)
    assert [meta["name"] for _, meta, _ in layers] == ["cells [ch0]", "cells [ch1]", "cells [ch2]"]
    for layer_data, meta, kind in layers:
        assert kind == "image" and layer_data.shape == (2, 4, 8, 8)
        assert meta["scale"] == (1.0, 0.5, 0.1, 0.1)
    assert layers[1][0].max() == 5


def test_reader_declines_foreign_paths(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "table.csv").write_text("a,b\n1,2\n")
    assert get_reader(str(tmp_path / "notes.txt")) is None
    assert get_reader(str(tmp_path / "table.csv")) is None
    assert get_reader(str(tmp_path / "stack.tif")) is not None


def test_reader_turns_bad_file_into_nothing_not_an_exception(tmp_path, monkeypatch):
    messages = []
    monkeypatch.setattr("napari.utils.notifications.show_error", messages.append)
    path = tmp_path / "broken.tif"
    path.write_bytes(b"II*\x00rubbish")
    assert read_paths(str(path)) == [(None,)]
    assert len(messages) == 1 and "broken.tif" in messages[0]


def test_reader_image_layer_carries_scale(tmp_path, stack):
    path = tmp_path / "s.tif"
    tifffile.imwrite(
        path,
        stack,
        imagej=True,
        resolution=(5, 5),
        metadata={"axes": "ZYX", "spacing": 2.0, "unit": "um"},
    )
    ((_, meta, kind),) = read_paths(str(path))
    assert kind == "image" and meta["scale"] == pytest.approx((2.0, 0.2, 0.2))


def test_lazy_volume_gets_cheap_contrast_limits(tmp_path, stack):
    path = tmp_path / "s.tif"
    tifffile.imwrite(path, stack)
    (volume,) = read_volumes(path, lazy=True)
    ((_, meta, _),) = volume_to_layer_data(volume)
    low, high = meta["contrast_limits"]
    assert 0 <= low < high <= 4000


@pytest.mark.parametrize("known", [True, False])
def test_the_voxel_size_travels_once_as_the_layer_scale(known):
    """Layers say their voxel size by their scale; metadata only says whether it is known."""
    from napari_spines.voxel_size import VoxelSize

    volume = Volume(np.zeros((2, 4, 8, 8)), "TZYX", (2.0, 0.5, 0.25), "v", voxel_size_known=known)
    ((_, meta, _),) = volume_to_layer_data(volume)
    assert "voxel_size_um" not in meta["metadata"]
    assert VoxelSize.of_layer(meta["scale"], meta["metadata"]["axes"], meta["metadata"]) == (
        volume.voxel_size
    )
