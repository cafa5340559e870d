"""The tile size never changes a result: halos cover the networks' receptive fields."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_spines.inference import predict
from napari_spines.models import find_model
from napari_spines.models.run import ready_model
from napari_spines.synthetic import synthetic_em, synthetic_two_photon
from napari_spines.training.unet import build_unet, receptive_field

torch = pytest.importorskip("torch")


def gradient_reach(net, pools, radius):
    """Farthest input voxel, per axis, that any output voxel's gradient reaches.

    One output voxel per position within the coarsest pooling cell (the U-Net is only
    shift-equivariant by whole cells), in a volume wide enough that zero padding is never
    reached.
    """
    cell = [int(np.prod([p[axis] for p in pools])) for axis in range(3)]
    centre = [-(-(r + c) // c) * c for r, c in zip(radius, cell, strict=True)]  # on the grid
    shape = [2 * m + c for m, c in zip(centre, cell, strict=True)]
    reach = np.zeros(3, int)
    for phase in np.ndindex(*cell):
        torch.manual_seed(sum(phase))
        x = torch.randn(1, 1, *shape, dtype=torch.float64, requires_grad=True)
        voxel = [m + p for m, p in zip(centre, phase, strict=True)]
        net(x)[0, 0, voxel[0], voxel[1], voxel[2]].backward()
        touched = np.argwhere(x.grad[0, 0].numpy() != 0)
        if len(touched):
            reach = np.maximum(reach, np.abs(touched - voxel).max(axis=0))
    return tuple(int(r) for r in reach)


@pytest.mark.parametrize(
    ("pools", "kernels"),
    [
        (((1, 2, 2),), None),
        (((2, 1, 2), (1, 2, 1)), ((3, 3, 1), (1, 3, 3), (3, 1, 3))),
        (((1, 3, 2),), ((1, 5, 3), (3, 3, 3))),
    ],
)
def test_receptive_field_is_what_the_gradient_reaches(pools, kernels):
    torch.manual_seed(0)
    net = build_unet(1, 1, width=4, pools=pools, kernels=kernels).double().eval()
    for name, parameter in net.named_parameters():
        if name.endswith("bias"):  # keep the ReLUs alive, so gradients reach every input
            torch.nn.init.constant_(parameter, 0.1)
    radius = receptive_field(pools, kernels)
    assert gradient_reach(net, pools, radius) == radius


def test_receptive_fields_of_the_builtin_architectures():
    from napari_spines.training import affinity, spines

    assert receptive_field(spines.POOLS) == (17, 51, 51)
    assert receptive_field(affinity.POOLS, affinity.KERNELS) == (2, 51, 51)


def shipped_architecture(name):
    """Pools and kernels of a built-in package, read from its TorchScript weights."""
    state = torch.jit.load(find_model(name).weight_path("torch"), map_location="cpu").state_dict()
    pools = [tuple(state[f"net.ups.{i}.weight"].shape[2:]) for i in range(3)]
    kernels = [tuple(state[f"net.down.{i}.0.weight"].shape[2:]) for i in range(4)]
    return pools, kernels


@pytest.mark.parametrize("name", ["spine-2p", "em-affinity"])
def test_builtin_halos_cover_the_receptive_field(name):
    from napari_spines.training import affinity

    pools, kernels = shipped_architecture(name)
    needed = list(receptive_field(pools, kernels))
    if name == "em-affinity":  # flipped-back affinities are shifted by a voxel
        for dims in affinity.TTA_FLIPS:
            for dim in dims:
                needed[dim - 2] = receptive_field(pools, kernels)[dim - 2] + 1
    tiling = find_model(name).spec.tiling
    assert all(h >= r for h, r in zip(tiling.halo, needed, strict=True)), (tiling.halo, needed)
    assert tuple(tiling.multiple) == tuple(int(np.prod(p)) for p in zip(*pools, strict=True))


@pytest.fixture(scope="module")
def two_photon():
    return synthetic_two_photon((20, 48, 96), (1.0, 0.24, 0.24), n_dendrites=2, seed=3).image


@pytest.fixture(scope="module")
def em():
    return synthetic_em((8, 48, 96), (0.05, 0.004, 0.004), n_cells=12, seed=3).image


def brightest(volume, size):
    """The crop of ``size`` (z, y, x) of ``volume`` with the highest mean: it holds structure."""
    mean = ndi.uniform_filter(volume.astype(np.float32), size, mode="constant")
    inner = tuple(
        slice(s // 2, n - (s - s // 2) + 1) for n, s in zip(volume.shape, size, strict=True)
    )
    corner = np.unravel_index(np.argmax(mean[inner]), mean[inner].shape)
    return volume[tuple(slice(c, c + n) for c, n in zip(corner, size, strict=True))]


# Each case: a crop that one tile of the package's default size covers, and a small tile that
# cuts it (the engine grows a tile to three halos, which still cuts it). With the old halos,
# (4, 24, 24) and (3, 32, 32), and the old placement, whose cores could overlap three deep and
# then blend with weights not adding up to one, these outputs moved by 0.2 to 0.55.
CASES = {
    "spine-2p x": ("spine-2p", (2, 8, 60), (10, 56, 56)),
    "spine-2p z": ("spine-2p", (20, 8, 8), (6, 56, 56)),
    "em-affinity x": ("em-affinity", (4, 8, 60), (4, 88, 88)),
    "em-affinity z": ("em-affinity", (8, 8, 8), (4, 120, 120)),
}


@pytest.mark.parametrize("case", CASES)
def test_builtin_outputs_do_not_depend_on_the_tile_size(case, two_photon, em):
    name, size, small = CASES[case]
    volume = brightest(two_photon if name == "spine-2p" else em, size)
    model = ready_model(name)
    counts = []

    def run(tile):
        seen = []
        out = predict(volume, model, model.spec, tile=tile, progress=lambda d, n: seen.append(n))
        counts.append(seen[-1])
        return out

    whole, tiled = run(None), run(small)
    assert counts[0] == 1 and counts[1] > 1  # one tile against several
    assert np.ptp(whole) > 0.05  # the crop holds structure, not a flat field
    assert np.abs(whole - tiled).max() <= 1e-3
