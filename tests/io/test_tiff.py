import re

import numpy as np
import pytest
import tifffile

from napari_spines.io import VolumeReadError, read_volumes


def test_imagej_hyperstack_scale_and_axes(tmp_path, stack):
    data = np.stack([stack, stack // 2], axis=1)[None].repeat(2, axis=0)  # TZCYX
    path = tmp_path / "hyper.tif"
    tifffile.imwrite(
        path,
        data,
        imagej=True,
        resolution=(1 / 0.2, 1 / 0.1),
        metadata={"axes": "TZCYX", "spacing": 0.75, "unit": "micron"},
    )
    (volume,) = read_volumes(path)
    assert volume.axes == "TCZYX"  # channels before space, the order every consumer expects
    assert volume.voxel_size_um == pytest.approx((0.75, 0.1, 0.2))
    assert volume.scale == pytest.approx((1.0, 0.75, 0.1, 0.2))
    np.testing.assert_array_equal(np.asarray(volume.data), data.transpose(0, 2, 1, 3, 4))


def test_imagej_nanometre_unit_is_converted(tmp_path, stack):
    path = tmp_path / "nm.tif"
    tifffile.imwrite(
        path,
        stack,
        imagej=True,
        resolution=(1 / 8.0, 1 / 8.0),
        metadata={"axes": "ZYX", "spacing": 40.0, "unit": "nm"},
    )
    (volume,) = read_volumes(path)
    assert volume.voxel_size_um == pytest.approx((0.04, 0.008, 0.008))


def test_ome_tiff_physical_size_with_units(tmp_path, stack):
    path = tmp_path / "a.ome.tif"
    tifffile.imwrite(
        path,
        stack,
        ome=True,
        metadata={
            "axes": "ZYX",
            "PhysicalSizeZ": 2.0,
            "PhysicalSizeZUnit": "µm",
            "PhysicalSizeY": 250.0,
            "PhysicalSizeYUnit": "nm",
            "PhysicalSizeX": 0.0005,
            "PhysicalSizeXUnit": "mm",
        },
    )
    (volume,) = read_volumes(path)
    assert volume.name == "a"
    assert volume.voxel_size_um == pytest.approx((2.0, 0.25, 0.5))
    assert volume.voxel_size_known


def test_plain_tiff_without_metadata_assumes_one_micron(tmp_path, stack):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, stack)
    (volume,) = read_volumes(path)
    assert volume.axes == "ZYX"
    assert volume.voxel_size_um == (1.0, 1.0, 1.0)
    assert not volume.voxel_size_known


def test_lazy_tiff_reads_on_demand_and_matches(tmp_path, stack):
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, stack, imagej=True, metadata={"axes": "ZYX"})
    (volume,) = read_volumes(path, lazy=True)
    assert volume.lazy
    np.testing.assert_array_equal(volume.data[2].compute(), stack[2])


@pytest.mark.parametrize("content", [b"", b"II*\x00garbage", b"not a tiff at all"])
def test_broken_tiff_gives_one_clear_error(tmp_path, content):
    path = tmp_path / "broken.tif"
    path.write_bytes(content)
    with pytest.raises(VolumeReadError, match="broken.tif"):
        read_volumes(path)


@pytest.mark.parametrize("lazy", [False, True])
@pytest.mark.parametrize("layout", ["imagej", "pages", "compressed"])
@pytest.mark.parametrize("keep", [0.3, 0.6, 0.97])
def test_truncated_tiff_is_an_error_not_a_partial_stack(tmp_path, stack, layout, keep, lazy):
    """A cut file gives a clear error or, where all pixel data survived, the whole stack.

    tifffile alone opens the first planes of a cut file and only logs a warning.
    """
    path = tmp_path / "cut.tif"
    options = {"imagej": {"imagej": True}, "pages": {}, "compressed": {"compression": "zlib"}}
    tifffile.imwrite(path, stack, **options[layout])
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep)])
    try:
        (volume,) = read_volumes(path, lazy=lazy)
    except VolumeReadError as exc:
        assert re.search("cut.tif: .*(truncated|corrupt)", str(exc))
    else:  # only trailing page headers were lost; every pixel must be there
        np.testing.assert_array_equal(np.asarray(volume.data), stack)


def test_one_dimensional_data_is_refused(tmp_path):
    path = tmp_path / "line.tif"
    tifffile.imwrite(path, np.arange(10, dtype=np.uint8))
    with pytest.raises(VolumeReadError, match="1D|2D"):
        read_volumes(path)


def test_nan_only_float_stack_is_refused(tmp_path):
    path = tmp_path / "nan.tif"
    tifffile.imwrite(path, np.full((3, 8, 8), np.nan, dtype=np.float32), photometric="minisblack")
    with pytest.raises(VolumeReadError, match="NaN"):
        read_volumes(path)


def test_real_two_photon_stack_has_its_voxel_size(real_data):
    (volume,) = read_volumes(real_data / "two_photon/rr30a/rr30a_tp0.tif")
    assert volume.shape == (70, 1024, 1024)
    assert volume.scale == pytest.approx((1.0, 0.12, 0.12))


def test_single_row_image_is_refused(tmp_path):
    path = tmp_path / "row.tif"
    tifffile.imwrite(path, np.arange(10, dtype=np.uint8)[None])
    with pytest.raises(VolumeReadError, match="1D"):
        read_volumes(path)


@pytest.mark.parametrize("compression", ["lzw", "zlib", "zstd"])
def test_compressed_tiffs_read_eagerly_and_lazily(tmp_path, stack, compression):
    path = tmp_path / f"{compression}.tif"
    tifffile.imwrite(path, stack, compression=compression, imagej=True, metadata={"axes": "ZYX"})
    for lazy in (False, True):
        (volume,) = read_volumes(path, lazy=lazy)
        np.testing.assert_array_equal(np.asarray(volume.data), stack)
