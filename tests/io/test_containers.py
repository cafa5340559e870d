import h5py
import numpy as np
import pytest
import zarr

from napari_spines.io import VolumeReadError, read_volumes
from napari_spines.io.containers import pick_datasets, voxel_size_from_attrs


def test_hdf5_cremi_layout_image_labels_and_nm_resolution(tmp_path, stack):
    path = tmp_path / "cremi.h5"
    labels = (stack > 2000).astype(np.uint64)
    with h5py.File(path, "w") as f:
        f.create_dataset("volumes/raw", data=stack).attrs["resolution"] = (40.0, 4.0, 4.0)
        f.create_dataset("volumes/labels/neuron_ids", data=labels).attrs["resolution"] = (40, 4, 4)
        f.create_dataset("volumes/labels/clefts", data=labels * 2)
    image, *label_volumes = read_volumes(path)
    assert image.kind == "image" and image.voxel_size_um == pytest.approx((0.04, 0.004, 0.004))
    np.testing.assert_array_equal(image.data, stack)
    by_name = {v.name: v for v in label_volumes}
    assert set(by_name) == {"cremi [volumes/labels/neuron_ids]", "cremi [volumes/labels/clefts]"}
    assert all(v.kind == "labels" for v in label_volumes)
    # clefts carry no resolution: they take the image's, being of the same shape
    for volume in label_volumes:
        assert volume.voxel_size_um == pytest.approx((0.04, 0.004, 0.004))


def test_hdf5_element_size_um_and_largest_dataset(tmp_path, stack):
    path = tmp_path / "ilastik.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("small", data=stack[:2])
        f.create_dataset("exported_data", data=stack).attrs["element_size_um"] = (0.5, 0.2, 0.2)
        f.create_dataset("gt", data=(stack > 10).astype(np.uint8))
    image, labels = read_volumes(path)
    assert image.name.endswith("[exported_data]")
    assert image.voxel_size_um == pytest.approx((0.5, 0.2, 0.2))
    assert labels.kind == "labels"


def test_hdf5_lazy_keeps_data_on_disk(tmp_path, stack):
    path = tmp_path / "lazy.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("raw", data=stack, chunks=(1, 24, 32))
    (image,) = read_volumes(path, lazy=True)
    assert image.lazy
    np.testing.assert_array_equal(image.data[3].compute(), stack[3])


def test_hdf5_without_image_dataset_is_a_clear_error(tmp_path):
    path = tmp_path / "empty.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("vector", data=np.arange(5))
    with pytest.raises(VolumeReadError, match="empty.h5: no image dataset"):
        read_volumes(path)


def test_one_dimensional_hdf5_raw_is_refused(tmp_path):
    path = tmp_path / "line.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("raw", data=np.arange(5.0))
    with pytest.raises(VolumeReadError):
        read_volumes(path)


def test_not_really_hdf5_is_a_clear_error(tmp_path):
    path = tmp_path / "fake.h5"
    path.write_bytes(b"plain text")
    with pytest.raises(VolumeReadError, match="fake.h5"):
        read_volumes(path)


def test_pick_datasets_prefers_known_names():
    shapes = {
        "big": ((100, 100, 100), np.dtype("u1")),
        "raw": ((10, 10, 10), np.dtype("u1")),
        "labels": ((10, 10, 10), np.dtype("u4")),
        "labels_float": ((5, 5), np.dtype("f4")),
    }
    assert pick_datasets(shapes) == ("raw", ["labels"])


def test_voxel_size_unit_attribute_wins():
    assert voxel_size_from_attrs({"voxel_size": (1, 2, 2), "unit": "nm"}, 3) == pytest.approx(
        (0.001, 0.002, 0.002)
    )
    assert voxel_size_from_attrs({"resolution": (1.0, 0.5, 0.5)}, 3) == (1.0, 0.5, 0.5)
    assert voxel_size_from_attrs({"resolution": (0, 1, 1)}, 3) is None


def test_plain_zarr_array_with_attributes(tmp_path, stack):
    path = tmp_path / "plain.zarr"
    array = zarr.create_array(str(path), shape=stack.shape, dtype=stack.dtype, chunks=(1, 24, 32))
    array[:] = stack
    array.attrs["voxel_size"] = [2.0, 0.3, 0.3]
    (image,) = read_volumes(path)
    assert image.voxel_size_um == pytest.approx((2.0, 0.3, 0.3))
    np.testing.assert_array_equal(np.asarray(image.data), stack)


def _write_ome_zarr(path, stack, version):
    group = zarr.open_group(str(path), mode="w", zarr_format=2 if version == "0.4" else 3)
    levels = [stack, stack[:, ::2, ::2]]
    for i, level in enumerate(levels):
        group.create_array(str(i), data=level, chunks=(1, 16, 16))
    multiscales = [
        {
            "version": version,
            "name": "cells",
            "axes": [
                {"name": "z", "type": "space", "unit": "micrometer"},
                {"name": "y", "type": "space", "unit": "nanometer"},
                {"name": "x", "type": "space", "unit": "nanometer"},
            ],
            "datasets": [
                {
                    "path": str(i),
                    "coordinateTransformations": [
                        {"type": "scale", "scale": [1.5, 100.0 * 2**i, 100.0 * 2**i]}
                    ],
                }
                for i in range(len(levels))
            ],
        }
    ]
    if version == "0.4":
        group.attrs["multiscales"] = multiscales
    else:
        group.attrs["ome"] = {"version": version, "multiscales": multiscales}
    return levels


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ome_zarr_opens_multiscale_with_units(tmp_path, stack, version):
    path = tmp_path / "image.ome.zarr"
    levels = _write_ome_zarr(path, stack, version)
    (image,) = read_volumes(path)
    assert image.multiscale and len(image.levels) == 2
    assert image.name == "cells"
    assert image.voxel_size_um == pytest.approx((1.5, 0.1, 0.1))
    np.testing.assert_array_equal(image.levels[1].compute(), levels[1])
