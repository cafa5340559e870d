import numpy as np
import pytest
import tifffile

from napari_spines._reader import points_layer_data
from napari_spines._writer import write_labels, write_points
from napari_spines.io import read_points_csv, read_volumes, write_labels_tiff, write_points_csv


def test_labels_tiff_round_trip_keeps_voxel_size_for_fiji(tmp_path):
    labels = np.zeros((4, 16, 16), dtype=np.int64)
    labels[1:3, 4:9, 2:12] = 7
    path = write_labels_tiff(tmp_path / "labels.tif", labels, (0.8, 0.12, 0.1))
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej and tif.imagej_metadata["unit"] in ("um", "µm", "micron")
    (volume,) = read_volumes(path)
    assert volume.voxel_size_um == pytest.approx((0.8, 0.12, 0.1), rel=1e-5)
    np.testing.assert_array_equal(volume.data, labels)


def test_labels_with_large_ids_go_to_ome_tiff_uint32(tmp_path):
    labels = np.zeros((2, 8, 8), dtype=np.uint64)
    labels[0, :4] = 100_000
    path = write_labels_tiff(tmp_path / "big_ids.tif", labels, (0.05, 0.004, 0.004))
    (volume,) = read_volumes(path)
    assert volume.dtype == np.uint32 and int(volume.data.max()) == 100_000
    assert volume.voxel_size_um == pytest.approx((0.05, 0.004, 0.004))


def test_labels_refuse_floats(tmp_path):
    with pytest.raises(ValueError, match="integers"):
        write_labels_tiff(tmp_path / "x.tif", np.zeros((2, 2, 2), np.float32), (1, 1, 1))


def test_failed_write_leaves_previous_file_intact(tmp_path):
    path = tmp_path / "keep.tif"
    write_labels_tiff(path, np.ones((2, 4, 4), np.uint8), (1, 1, 1))
    before = path.read_bytes()
    with pytest.raises(ValueError):
        write_labels_tiff(path, np.full((2, 4, 4), -1, np.int16), (1, 1, 1))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.tif"]  # no temp file left


def test_points_csv_round_trip_with_properties_and_scale(tmp_path):
    coords = np.array([[3.0, 10.5, 20.25], [0.0, 1.0, 2.0], [7.0, 100.0, 3.0]])
    properties = {
        "score": np.array([0.9, 0.25, 0.5]),
        "id": np.array([5, 6, 7]),
        "status": np.array(["auto", "accepted", "rejected"]),
    }
    path = write_points_csv(tmp_path / "spines.csv", coords, (1.0, 0.12, 0.12), properties)
    header = path.read_text().splitlines()[0]
    assert header == "id,z,y,x,z_um,y_um,x_um,score,status"
    back, voxel, props = read_points_csv(path)
    np.testing.assert_allclose(back, coords)
    assert voxel == pytest.approx((1.0, 0.12, 0.12))
    np.testing.assert_array_equal(props["id"], [5, 6, 7])
    np.testing.assert_allclose(props["score"], [0.9, 0.25, 0.5])
    assert list(props["status"]) == ["auto", "accepted", "rejected"]


def test_points_layer_writer_and_reader_round_trip_4d(tmp_path):
    coords = np.array([[0, 2.0, 5.0, 6.0], [1, 3.0, 7.0, 8.0]])
    meta = {"scale": (1.0, 0.5, 0.2, 0.2), "features": {"id": np.array([1, 1])}}
    (written,) = write_points(str(tmp_path / "p.csv"), coords, meta)
    ((data, layer_meta, layer_type),) = points_layer_data(written)
    assert layer_type == "points"
    np.testing.assert_allclose(data, coords)
    assert layer_meta["scale"] == pytest.approx((1.0, 0.5, 0.2, 0.2))
    np.testing.assert_array_equal(layer_meta["features"]["id"], [1, 1])


def test_labels_layer_writer_uses_layer_scale(tmp_path):
    labels = np.zeros((3, 8, 8), np.uint16)
    labels[1, 2:4, 2:4] = 300
    (written,) = write_labels(str(tmp_path / "l.tif"), labels, {"scale": (2.0, 0.5, 0.25)})
    (volume,) = read_volumes(written)
    assert volume.voxel_size_um == pytest.approx((2.0, 0.5, 0.25), rel=1e-5)
    assert volume.dtype == np.uint16


def test_real_spine_table_reads_with_its_voxel_size(real_data):
    coords, voxel, props = read_points_csv(real_data / "two_photon/rr30a/rr30a_tp0_spines.csv")
    assert voxel == pytest.approx((1.0, 0.12, 0.12), rel=1e-3)
    assert len(coords) == len(props["track_id"]) > 50


def test_atomic_writes_get_normal_permissions(tmp_path):
    import os

    path = write_labels_tiff(tmp_path / "perm.tif", np.ones((2, 4, 4), np.uint8), (1, 1, 1))
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


def test_writers_warn_when_the_voxel_size_was_assumed(tmp_path):
    import warnings

    from napari_spines.errors import DataWarning

    labels = np.ones((2, 4, 4), np.uint8)
    assumed = {"scale": (1.0, 1.0, 1.0), "metadata": {"voxel_size_known": False}}
    with pytest.warns(DataWarning, match="assumed voxel size 1 × 1 × 1 µm"):
        write_labels(str(tmp_path / "a.tif"), labels, assumed)
    with pytest.warns(DataWarning, match="assumed"):
        write_points(str(tmp_path / "a.csv"), np.zeros((1, 3)), assumed)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a known size writes without a word
        write_labels(str(tmp_path / "b.tif"), labels, {"scale": (0.05, 0.004, 0.004)})
