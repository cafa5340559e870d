"""The tiled engine with numpy stand-in networks whose exact answer is known."""

from types import SimpleNamespace as NS

import dask.array as da
import numpy as np
import pytest
import zarr
from scipy import ndimage as ndi

from napari_spines.inference import mirror_indices, plan_axis, predict, read_resampled
from napari_spines.progress import CancellableProgress, Cancelled


def make_spec(
    channels=1,
    n_out=2,
    voxel=(1.0, 0.5, 0.5),
    tile=(8, 16, 16),
    multiple=(4, 4, 4),
    halo=(2, 2, 2),
    normalisation="none",
):
    return NS(
        input=NS(
            channels=channels,
            voxel_size_um=voxel,
            normalisation=NS(kind=normalisation, low=1.0, high=99.0, mean=0, std=1),
        ),
        tiling=NS(tile=tile, multiple=multiple, halo=halo),
        n_output_channels=n_out,
        network_voxel_size_um=voxel,
    )


class MeanFilterNet:
    """A 3x3x3 mean filter (receptive-field radius 1) with zero padding, like a conv layer."""

    def __init__(self, n_out=2):
        self.calls = 0
        self.n_out = n_out

    def __call__(self, batch):
        self.calls += 1
        assert batch.dtype == np.float32 and batch.ndim == 5
        mean = ndi.uniform_filter(batch.sum(axis=1), size=(1, 3, 3, 3), mode="constant")
        return np.stack([mean * (k + 1) for k in range(self.n_out)], axis=1)


def exact(volume):
    """What the network computes on the whole volume with reflection padding."""
    return ndi.uniform_filter(volume.astype(np.float32), 3, mode="mirror")


@pytest.fixture
def volume():
    return np.random.default_rng(0).random((13, 37, 29)).astype(np.float32)


@pytest.mark.parametrize("tile", [(8, 16, 16), (12, 24, 20), (16, 12, 28), (64, 64, 64)])
def test_tiled_output_equals_whole_volume_output(volume, tile):
    got = predict(volume, MeanFilterNet(), make_spec(), tile=tile)
    assert got.shape == (2, *volume.shape) and got.dtype == np.float32
    np.testing.assert_allclose(got[0], exact(volume), atol=1e-5)
    np.testing.assert_allclose(got[1], 2 * exact(volume), atol=1e-5)


def test_two_tile_sizes_agree_and_batches_do_not_matter(volume):
    a = predict(volume, MeanFilterNet(), make_spec(), tile=(8, 16, 16), batch_size=1)
    b = predict(volume, MeanFilterNet(), make_spec(), tile=(12, 20, 24), batch_size=3)
    assert np.abs(a - b).max() < 1e-4


@pytest.mark.parametrize("n", [1, 3, 5, 13, 37, 100, 257])
@pytest.mark.parametrize(
    ("tile", "halo", "multiple", "overlap"),
    [(16, 2, 4, None), (32, 8, 8, 0), (64, 12, 16, 20), (20, 3, 1, 5), (40, 8, 8, 20)],
)
def test_blend_weights_sum_to_one_everywhere(n, tile, halo, multiple, overlap):
    plan = plan_axis(n, tile, halo, multiple, overlap)
    total = np.zeros(n)
    for i in range(len(plan.starts)):
        w = plan.weights(i)
        total[i * plan.stride : i * plan.stride + len(w)] += w
        assert plan.starts[i] % multiple == 0  # pooling grids line up with the whole volume
    np.testing.assert_allclose(total, 1.0, atol=1e-6)
    assert plan.starts[0] == -plan.halo
    assert plan.overlap <= plan.stride  # never three cores at one place


def test_mirror_matches_numpy_reflect_padding():
    row = np.arange(5)
    padded = np.pad(row, 7, mode="reflect")
    np.testing.assert_array_equal(row[mirror_indices(np.arange(-7, 12), 5)], padded)


def test_volume_smaller_than_a_tile(volume):
    small = volume[:2, :3, :5]
    got = predict(small, MeanFilterNet(), make_spec(), tile=(32, 32, 32))
    np.testing.assert_allclose(got[0], exact(small), atol=1e-5)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float16, np.float64, np.int16])
def test_input_dtypes(dtype):
    volume = (np.random.default_rng(1).random((6, 20, 20)) * 200).astype(dtype)
    got = predict(volume, MeanFilterNet(1), make_spec(n_out=1))
    np.testing.assert_allclose(got[0], exact(volume.astype(np.float32)), rtol=1e-5, atol=1e-3)


def test_dask_input_and_zarr_output_give_the_same_result(volume, tmp_path):
    expected = predict(volume, MeanFilterNet(), make_spec())
    lazy = da.from_array(volume, chunks=(4, 16, 16))
    out = zarr.create_array(
        str(tmp_path / "out.zarr"),
        shape=(2, *volume.shape),
        dtype="float32",
        chunks=(1, 8, 16, 16),
        fill_value=0,
    )
    result = predict(lazy, MeanFilterNet(), make_spec(), out=out)
    assert result is out
    np.testing.assert_allclose(out[:], expected, atol=1e-6)


def test_multichannel_input_and_channel_check(volume):
    two = np.stack([volume, 2 * volume])
    got = predict(two, MeanFilterNet(1), make_spec(channels=2, n_out=1))
    np.testing.assert_allclose(got[0], exact(3 * volume), atol=1e-5)
    with pytest.raises(ValueError, match="2-channel"):
        predict(volume, MeanFilterNet(1), make_spec(channels=2, n_out=1))
    with pytest.raises(ValueError, match="3D"):
        predict(volume[0], MeanFilterNet(1), make_spec(n_out=1))


def test_percentile_normalisation_maps_to_unit_range():
    volume = np.random.default_rng(2).integers(0, 1000, (8, 32, 32)).astype(np.uint16)

    def identity(batch):
        return batch

    got = predict(volume, identity, make_spec(n_out=1, normalisation="percentile"))
    low, high = np.percentile(volume, [1.0, 99.0])
    np.testing.assert_allclose(got[0], (volume - low) / (high - low), atol=0.02)


def test_rescale_round_trip_keeps_shape_and_values():
    z, y, x = np.meshgrid(np.arange(10), np.arange(64), np.arange(48), indexing="ij")
    smooth = (np.sin(y / 9.0) + np.cos(x / 7.0) + z / 10.0).astype(np.float32)
    seen = {"rescaled": [], "native": []}

    def identity_recording(key):
        def identity(batch):
            seen[key].append(batch[0, 0].size * len(batch))
            return batch

        return identity

    spec = make_spec(n_out=1, voxel=(1.0, 0.24, 0.24), tile=(8, 32, 32))
    got = predict(smooth, identity_recording("rescaled"), spec, voxel_size_um=(1.0, 0.12, 0.12))
    assert got.shape == (1, 10, 64, 48)
    inner = (slice(None), slice(2, -2), slice(2, -2))
    assert np.abs(got[0][inner] - smooth[inner]).max() < 0.02
    # the network saw the volume at half the resolution in y and x: far fewer voxels
    assert predict(smooth, identity_recording("native"), spec).shape == (1, 10, 64, 48)
    assert sum(seen["rescaled"]) < 0.5 * sum(seen["native"])


def test_outputs_on_the_model_grid_are_not_resampled_back():
    from napari_spines.inference import model_grid

    volume = np.random.default_rng(0).random((10, 64, 48)).astype(np.float32)
    spec = make_spec(n_out=1, voxel=(1.0, 0.24, 0.24), tile=(8, 32, 32))
    grid, factors = model_grid(volume.shape, (1.0, 0.12, 0.12), spec)
    assert grid == (10, 32, 24) and factors == (1.0, 0.5, 0.5)
    got = predict(
        volume, lambda batch: batch, spec, voxel_size_um=(1.0, 0.12, 0.12), on_model_grid=True
    )
    assert got.shape == (1, *grid)
    # model voxel (z, j, i) sits between data voxels 2j, 2j + 1 (and 2i, 2i + 1)
    pairs = (
        volume[:, 0::2, 0::2]
        + volume[:, 1::2, 0::2]
        + volume[:, 0::2, 1::2]
        + volume[:, 1::2, 1::2]
    ) / 4
    np.testing.assert_allclose(got[0], pairs, atol=1e-5)


def test_read_resampled_linear_interpolation():
    ramp = np.arange(10, dtype=np.float32)[None, None, :].repeat(2, 0).repeat(3, 1)
    got = read_resampled(ramp, [np.array([0, 1]), np.array([0, 2]), np.array([0.5, 3.25, 9.0])])
    np.testing.assert_allclose(got, [[[0.5, 3.25, 9.0]] * 2] * 2)


def test_cancel_stops_within_one_tile(volume):
    net = MeanFilterNet()
    calls_at_cancel = []
    progress = CancellableProgress()

    def report(done, total):
        if done == 3:
            calls_at_cancel.append(net.calls)
            progress.cancel()

    progress._report = report
    with pytest.raises(Cancelled):
        predict(volume, net, make_spec(), tile=(8, 16, 16), progress=progress)
    assert net.calls == calls_at_cancel[0]  # not a single tile ran after the cancel


def test_progress_counts_every_tile(volume):
    reports = []
    predict(volume, MeanFilterNet(), make_spec(), progress=lambda d, t: reports.append((d, t)))
    assert reports[0][0] == 0 and reports[-1][0] == reports[-1][1] > 1
    assert [d for d, _ in reports] == sorted(d for d, _ in reports)


def test_predict_volume_handles_time_and_2d(volume):
    from napari_spines.inference import predict_volume

    series = np.stack([volume, 2 * volume])  # TZYX
    got = predict_volume(series, "TZYX", MeanFilterNet(1), make_spec(n_out=1))
    assert got.shape == (1, 2, *volume.shape)
    np.testing.assert_allclose(got[0, 1], 2 * exact(volume), atol=1e-5)
    image = volume[4]
    flat = predict_volume(
        image, "YX", MeanFilterNet(1), make_spec(n_out=1), voxel_size_um=(0.5, 0.5)
    )
    assert flat.shape == (1, *image.shape)
    # a single slice is mirrored in z, so the 3D filter sees the slice itself above and below
    np.testing.assert_allclose(flat[0], ndi.uniform_filter(image, 3, mode="mirror"), atol=1e-5)
    reports = []
    predict_volume(
        series,
        "TZYX",
        MeanFilterNet(1),
        make_spec(n_out=1),
        progress=lambda d, t: reports.append((d, t)),
    )
    assert reports[-1][0] == reports[-1][1] and len({t for _, t in reports}) == 1


def test_rescaled_lazy_run_into_zarr_matches_in_memory(tmp_path):
    volume = np.random.default_rng(5).random((6, 40, 36)).astype(np.float32)
    spec = make_spec(n_out=2, voxel=(1.0, 0.24, 0.24), tile=(8, 16, 16))
    expected = predict(volume, MeanFilterNet(), spec, voxel_size_um=(1.0, 0.12, 0.12))
    out = zarr.create_array(
        str(tmp_path / "o.zarr"),
        shape=(2, *volume.shape),
        dtype="float32",
        chunks=(1, 4, 16, 16),
        fill_value=0,
    )
    predict(
        da.from_array(volume, chunks=(3, 20, 18)),
        MeanFilterNet(),
        spec,
        voxel_size_um=(1.0, 0.12, 0.12),
        out=out,
    )
    np.testing.assert_allclose(out[:], expected, atol=1e-6)
