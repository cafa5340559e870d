"""Synthetic two-photon dendrite and EM neuropil volumes with ground truth.

Deterministic given ``seed``; geometry is built in µm; Python loops run over primitives, not voxels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.measure import label as cc_label
from skimage.segmentation import relabel_sequential

ProgressCallback = Callable[[int, int], None]

Vec = np.ndarray


@dataclass(frozen=True)
class TwoPhotonSample:
    """A synthetic two-photon volume (or time series) with spine ground truth."""

    image: np.ndarray  # uint16 (Z, Y, X), or (T, Z, Y, X) for a time series
    spines: np.ndarray  # float64 head centres in voxels: (N, 3) z, y, x or (N, 4) t, z, y, x
    spine_ids: np.ndarray  # int64 (N,) track ids, stable across time points
    dendrite_mask: np.ndarray  # bool, image-shaped: inside the dendrite shafts (no spines)
    voxel_size_um: tuple[float, float, float]


@dataclass(frozen=True)
class EMSample:
    """A synthetic EM volume with a dense instance segmentation."""

    image: np.ndarray  # uint8 (Z, Y, X)
    labels: np.ndarray  # uint32 (Z, Y, X), dense sequential cell ids 1..N (no background)
    voxel_size_um: tuple[float, float, float]


def _report(progress: ProgressCallback | None, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total)


def _coarse_noise(rng: np.random.Generator, cells: tuple[int, ...]) -> Vec:
    """Standardised, lightly smoothed white noise on a small grid (with a one-cell margin)."""
    coarse = ndi.gaussian_filter(rng.standard_normal([c + 3 for c in cells]), 0.7, mode="wrap")
    return ((coarse - coarse.mean()) / (coarse.std() + 1e-9)).astype(np.float32)


def _sample(coarse: Vec, frac: list[Vec]) -> Vec:
    """Linearly interpolate ``coarse`` on the grid spanned by per-axis coordinates in [0, 1]."""
    axes = [1.0 + f.astype(np.float32) * (n - 3) for f, n in zip(frac, coarse.shape, strict=True)]
    grids = np.broadcast_arrays(*np.meshgrid(*axes, indexing="ij", sparse=True))
    return ndi.map_coordinates(coarse, grids, order=1, mode="nearest")


def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...], cells: tuple[int, ...]) -> Vec:
    """Return a smooth float32 random field of ``shape`` with roughly ``cells`` bumps per axis."""
    return _sample(_coarse_noise(rng, cells), [np.linspace(0.0, 1.0, n) for n in shape])


class _Canvas:
    """Float32 volume, supersampled in z, on which soft-edged capsules are drawn (max-union)."""

    def __init__(self, shape: tuple[int, int, int], vox: tuple[float, float, float]) -> None:
        self.k = int(np.clip(np.ceil(vox[0] / 0.25 - 1e-6), 1, 8))  # z sub-planes per voxel
        self.spacing = np.array([vox[0] / self.k, vox[1], vox[2]])
        self.origin = np.array([-(self.k - 1) / 2 * self.spacing[0], 0.0, 0.0])
        self.data = np.zeros((shape[0] * self.k, shape[1], shape[2]), np.float32)
        self.edge = float(max(self.spacing.max(), 0.1))  # width of the anti-aliased rim (µm)

    def capsule(self, a: Vec, b: Vec, ra: float, rb: float, value: float) -> None:
        """Draw a tapered capsule (µm) from ``a`` (radius ``ra``) to ``b`` (radius ``rb``)."""
        pad = max(ra, rb) + self.edge
        i0 = np.floor((np.minimum(a, b) - pad - self.origin) / self.spacing).astype(int)
        i1 = np.ceil((np.maximum(a, b) + pad - self.origin) / self.spacing).astype(int) + 1
        i0, i1 = np.maximum(i0, 0), np.minimum(i1, self.data.shape)
        if np.any(i1 <= i0):
            return
        z, y, x = (
            (np.arange(i0[k], i1[k]) * self.spacing[k] + self.origin[k] - a[k])
            .astype(np.float32)
            .reshape([-1 if j == k else 1 for j in range(3)])
            for k in range(3)
        )
        ab = (b - a).astype(np.float32)
        l2 = max(float(ab @ ab), 1e-12)
        w = z * ab[0] + y * ab[1] + x * ab[2]
        t = np.clip(w / l2, 0.0, 1.0)
        d = np.sqrt(np.maximum(z * z + y * y + x * x - 2 * t * w + t * t * l2, 0.0))
        occ = np.clip(0.5 + (ra + t * (rb - ra) - d) / self.edge, 0.0, 1.0) * np.float32(value)
        sl = tuple(slice(p, q) for p, q in zip(i0, i1, strict=True))
        np.maximum(self.data[sl], occ, out=self.data[sl])

    def binned(self) -> Vec:
        """Average the z sub-planes back onto the output grid."""
        z, y, x = self.data.shape
        return self.data.reshape(z // self.k, self.k, y, x).mean(axis=1)


def _random_curve(rng: np.random.Generator, extent: Vec, z_level: float) -> tuple[Vec, Vec]:
    """Smooth random curve across the field of view: points every 1 µm (M, 3) and unit tangents."""
    theta = rng.uniform(0.0, np.pi)
    d = np.array([np.sin(theta), np.cos(theta)])
    centre = extent[1:] * (0.5 + rng.uniform(-0.25, 0.25, 2))
    half = 0.5 * np.hypot(*extent[1:]) + np.abs(centre - extent[1:] / 2).max() + 4.0
    s = np.arange(-half, half + 1.0)
    lateral = sum(
        rng.uniform(0.3, 2.0) * np.sin(2 * np.pi * s / rng.uniform(10, 40) + rng.uniform(0, 6.3))
        for _ in range(2)
    )
    room = max(min(z_level, extent[0] - z_level) - 1.5, 0.0)
    z = z_level + rng.uniform(-1, 1) * min(0.1, room / half) * s
    z += min(0.5, room / 3) * np.sin(2 * np.pi * s / rng.uniform(15, 40) + rng.uniform(0, 6.3))
    yx = centre + s[:, None] * d + lateral[:, None] * np.array([-d[1], d[0]])
    pts = np.column_stack([z, yx])
    tan = np.gradient(pts, axis=0)
    return pts, tan / np.linalg.norm(tan, axis=1, keepdims=True)


def _new_spines(
    rng: np.random.Generator, curves: dict[str, Vec], which: Vec, first_id: int
) -> dict[str, Vec]:
    """Sample one spine on each dendrite ``which[i]`` of the concatenated ``curves``."""
    n = len(which)
    pos = rng.random(n) * (curves["length"][which] - 1)  # arc position, points are 1 µm apart
    i, frac = curves["start"][which] + pos.astype(int), (pos % 1.0)[:, None]
    tan, rad = curves["tan"][i], curves["rad"][i]
    centre = curves["pts"][i] * (1 - frac) + curves["pts"][i + 1] * frac
    side = np.cross(tan, [1.0, 0.0, 0.0])  # lateral direction, in the xy plane
    side /= np.linalg.norm(side, axis=1, keepdims=True) + 1e-12
    tilt = np.where(rng.random(n) < 0.2, rng.uniform(-1.2, 1.2, n), rng.normal(0, 0.2, n))
    u = np.cos(tilt)[:, None] * side * rng.choice([-1.0, 1.0], (n, 1))
    u += np.sin(tilt)[:, None] * np.cross(tan, side)
    head_r = np.clip(rng.lognormal(np.log(0.5), 0.3, n), 0.3, 1.0)
    return {
        "base": centre + rad[:, None] * u,
        "dir": u,
        "neck_len": np.clip(rng.lognormal(np.log(1.1), 0.5, n), 0.5, 3.0),
        "neck_r": rng.uniform(0.1, 0.2, n),
        "head_a": head_r * rng.uniform(0.8, 1.3, n),
        "head_b": head_r,
        "gain": curves["gain"][which] * rng.uniform(0.8, 1.25, n),
        "shaft_r": rad,
        "id": np.arange(first_id, first_id + n, dtype=np.int64),
    }


def synthetic_two_photon(
    shape: tuple[int, int, int] = (32, 256, 256),
    voxel_size_um: tuple[float, float, float] = (1.0, 0.12, 0.12),
    n_dendrites: int = 2,
    spine_density_per_um: float = 0.4,
    n_timepoints: int = 1,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> TwoPhotonSample:
    """Generate a two-photon image of spiny dendrites with spine-head ground truth.

    Parameters
    ----------
    shape
        Volume shape (Z, Y, X) in voxels.
    voxel_size_um
        Voxel size (z, y, x) in µm.
    n_dendrites
        Number of dendrite shafts crossing the field of view.
    spine_density_per_um
        Spines per µm of dendrite length.
    n_timepoints
        Number of imaging sessions; > 1 gives a (T, Z, Y, X) series with spine turnover and drift.
    seed
        Seed for ``np.random.default_rng``.
    progress
        Optional ``(done, total)`` callback, called once per stage / time point.

    Returns
    -------
    TwoPhotonSample
        Image (uint16), head centres in voxels, track ids, shaft mask and voxel size.
    """
    rng = np.random.default_rng(seed)
    vox = np.asarray(voxel_size_um, float)
    extent = np.asarray(shape) * vox
    total = n_timepoints + 1
    # --- geometry in µm: dendrites, axons with boutons, spines, autofluorescent blobs ---
    dend = []
    for j in range(n_dendrites):
        pts, tan = _random_curve(
            rng, extent, extent[0] * (j + rng.uniform(0.25, 0.75)) / n_dendrites
        )
        s = np.arange(len(pts))
        rad = rng.uniform(0.55, 1.3) + 0.15 * np.sin(s / rng.uniform(8, 20) + rng.uniform(0, 6.3))
        shade = 1.0 + 0.12 * np.sin(s / rng.uniform(3, 10) + rng.uniform(0, 6.3))
        dend.append((pts, tan, np.clip(rad, 0.5, 1.5), shade))
    dend_gain = rng.uniform(2500.0, 4500.0, n_dendrites)
    curves = {  # all dendrites concatenated, for vectorised spine placement
        "pts": np.concatenate([d[0] for d in dend] or [np.zeros((0, 3))]),
        "tan": np.concatenate([d[1] for d in dend] or [np.zeros((0, 3))]),
        "rad": np.concatenate([d[2] for d in dend] or [np.zeros(0)]),
        "length": np.array([len(d[0]) for d in dend], int),
        "gain": dend_gain,
    }
    curves["start"] = np.cumsum(curves["length"]) - curves["length"]
    ref_gain = float(dend_gain.mean()) if n_dendrites else 3500.0
    axons = []  # thin dim axons with boutons: hard negatives for spine detection
    for _ in range(rng.integers(0, 3)):
        pts = _random_curve(rng, extent, rng.uniform(0.1, 0.9) * extent[0])[0]
        boutons = pts[rng.integers(0, len(pts), rng.integers(2, 8))]
        axons.append((pts, boutons, rng.uniform(0.12, 0.25), rng.uniform(0.2, 0.4) * ref_gain))
    counts = rng.poisson(spine_density_per_um * np.maximum(curves["length"] - 1, 0))
    sp = _new_spines(rng, curves, np.repeat(np.arange(n_dendrites), counts), 0)
    next_id = len(sp["id"])
    n_blobs = rng.poisson(3e-3 * np.prod(extent))
    blob_c = rng.uniform(0, 1, (n_blobs, 3)) * extent
    blob_r = np.exp(rng.uniform(np.log(0.2), np.log(1.3), n_blobs))
    blob_v = rng.uniform(0.03, 0.2, n_blobs) * ref_gain
    psf = np.array([rng.uniform(0.6, 1.0), *[rng.uniform(0.1, 0.2)] * 2])
    psf[0] = np.sqrt(max(psf[0] ** 2 - vox[0] ** 2 / 12, 0.04))  # z-binning already blurs
    background = 150.0 + 50.0 * _smooth_field(rng, shape, (2, 3, 3))
    illum = 1.0 + 0.08 * _smooth_field(rng, shape, (2, 2, 2))
    gain, read_sd = rng.uniform(4.0, 15.0), rng.uniform(4.0, 12.0)  # ADU per photon, read noise
    _report(progress, 1, total)

    images, masks, heads, ids = [], [], [], []
    for t in range(n_timepoints):
        drift = np.zeros(3)
        if t > 0:  # spine turnover (~10% lost, ~10% gained with fresh ids), motion and drift
            keep = rng.random(len(sp["id"])) > 0.1
            n_new = int(rng.poisson(0.1 * max(len(sp["id"]), 1))) if n_dendrites else 0
            new = _new_spines(rng, curves, rng.integers(0, max(n_dendrites, 1), n_new), next_id)
            next_id += n_new
            sp = {k: np.concatenate([v[keep], new[k]]) for k, v in sp.items()}
            drift = np.array([rng.uniform(-1, 1), *rng.uniform(-3, 3, 2)]) * vox
        head = sp["base"] + (sp["neck_len"] + 0.8 * sp["head_a"])[:, None] * sp["dir"]
        if t > 0:  # per-spine motion of up to 0.3 µm
            jitter = rng.normal(size=head.shape)
            jitter /= np.linalg.norm(jitter, axis=1, keepdims=True) + 1e-12
            head += jitter * rng.uniform(0, 0.3, (len(head), 1))
        canvas = _Canvas(shape, voxel_size_um)
        mask = np.zeros(shape, bool)
        for (pts, _, rad, shade), g in zip(dend, dend_gain, strict=True):
            p = pts + drift
            for i in range(len(p) - 1):
                canvas.capsule(p[i], p[i + 1], rad[i], rad[i + 1], g * shade[i])
            mask |= canvas.binned() > 0.5 * g * shade.min()
        masks.append(mask)
        for pts, boutons, r, g in axons:
            p = pts + drift
            for i in range(len(p) - 1):
                canvas.capsule(p[i], p[i + 1], r, r, g)
            for c in boutons + drift:
                canvas.capsule(c, c, 0.45, 0.45, g)
        u = head - sp["base"]
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        for k in range(len(head)):
            b0 = sp["base"][k] - 0.3 * sp["shaft_r"][k] * u[k] + drift
            neck_end = head[k] - 0.7 * sp["head_a"][k] * u[k] + drift
            canvas.capsule(b0, neck_end, sp["neck_r"][k], sp["neck_r"][k], sp["gain"][k])
            h = max(sp["head_a"][k] - sp["head_b"][k], 0.0) * u[k]  # elongated (ellipsoid-ish) head
            c = head[k] + drift
            canvas.capsule(c - h, c + h, sp["head_b"][k], sp["head_b"][k], sp["gain"][k])
        for c, r, v in zip(blob_c + drift, blob_r, blob_v, strict=True):
            canvas.capsule(c, c, r, r, v)
        signal = ndi.gaussian_filter(canvas.binned(), psf / vox, truncate=3.0) * illum
        photons = rng.poisson(np.maximum(background + signal, 0.0) / gain)
        img = photons * gain + rng.normal(0.0, read_sd, shape)
        images.append(np.clip(np.rint(img), 0, 65535).astype(np.uint16))
        vc = (head + drift) / vox
        inside = np.all((vc >= 0) & (vc <= np.asarray(shape) - 1), axis=1)
        heads.append(np.column_stack([np.full(inside.sum(), float(t)), vc[inside]]))
        ids.append(sp["id"][inside])
        _report(progress, t + 2, total)
    series = n_timepoints > 1
    return TwoPhotonSample(
        image=np.stack(images) if series else images[0],
        spines=np.concatenate(heads)[:, (0 if series else 1) :].astype(np.float64),
        spine_ids=np.concatenate(ids).astype(np.int64),
        dendrite_mask=np.stack(masks) if series else masks[0],
        voxel_size_um=tuple(float(v) for v in voxel_size_um),
    )


def _em_labels(rng: np.random.Generator, shape: tuple[int, int, int], vox: Vec, n: int) -> Vec:
    """Dense neurite-like cells: weighted nearest-skeleton regions in a smoothly warped space.

    Skeletons run mostly along z (a few short ones: boutons); per-cell weights round the cells.
    """
    extent = np.asarray(shape) * vox
    centre = (rng.uniform(0, 1, (n, 3)) * extent).astype(np.float32)
    axis = rng.normal(size=(n, 3)) * (2.5, 1.0, 1.0)
    axis = (axis / np.linalg.norm(axis, axis=1, keepdims=True)).astype(np.float32)
    half = np.where(rng.random(n) < 0.15, rng.uniform(0.03, 0.15, n), 100.0).astype(np.float32)
    weight = rng.lognormal(0.0, 0.3, n).astype(np.float32)
    warp = [_coarse_noise(rng, tuple(int(max(2, e / 0.35)) for e in extent)) for _ in range(3)]

    def dist(frac: list[Vec], cand: Vec | None) -> Vec:
        """Weighted distance (µm) from warped grid points to candidate skeletons."""
        c = np.arange(n).reshape(-1, 1, 1, 1) if cand is None else cand
        rel = [
            f.reshape([-1 if a == k else 1 for a in range(3)]) * np.float32((shape[k] - 1) * vox[k])
            + 0.03 * _sample(warp[k], frac)
            - centre[c, k]
            for k, f in enumerate(frac)
        ]
        w = rel[0] * axis[c, 0] + rel[1] * axis[c, 1] + rel[2] * axis[c, 2]
        t = np.clip(w, -half[c], half[c])
        d2 = rel[0] * rel[0] + rel[1] * rel[1] + rel[2] * rel[2] - t * (2 * w - t)
        return np.sqrt(np.maximum(d2, 0.0)) / weight[c]

    step = np.maximum(np.rint(0.03 / vox), 1).astype(int)  # coarse grid of ~30 nm
    coarse_idx = [np.arange(0, s + st - 1, st) for s, st in zip(shape, step, strict=True)]
    frac = [i / max(s - 1, 1) for i, s in zip(coarse_idx, shape, strict=True)]
    near = np.argsort(dist(frac, None), axis=0)[:3]
    pick = [
        np.minimum(np.rint(np.arange(s) / st).astype(int), len(ci) - 1)
        for s, st, ci in zip(shape, step, coarse_idx, strict=True)
    ]
    cand = near[:, pick[0][:, None, None], pick[1][None, :, None], pick[2][None, None, :]]
    best = np.argmin(dist([np.linspace(0.0, 1.0, s) for s in shape], cand), axis=0)
    lab = (np.take_along_axis(cand, best[None], axis=0)[0] + 1).astype(np.uint32)
    # keep the largest connected piece of each cell; refill stray fragments from their neighbours
    for _ in range(3):
        comp = cc_label(lab, connectivity=1)
        sizes = np.bincount(comp.ravel())
        owner = np.zeros(len(sizes), np.int64)
        owner[comp.ravel()] = lab.ravel()
        biggest = np.zeros(int(lab.max()) + 1, np.int64)
        np.maximum.at(biggest, owner[1:], sizes[1:])
        stray = (sizes < biggest[owner])[comp]
        if not stray.any():
            break
        lab = lab[tuple(ndi.distance_transform_edt(stray, return_indices=True)[1])]
    return relabel_sequential(lab)[0].astype(np.uint32)


def synthetic_em(
    shape: tuple[int, int, int] = (24, 256, 256),
    voxel_size_um: tuple[float, float, float] = (0.04, 0.008, 0.008),
    n_cells: int = 40,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> EMSample:
    """Generate a serial-section EM volume of densely packed neurites with instance labels.

    Parameters
    ----------
    shape
        Volume shape (Z, Y, X) in voxels.
    voxel_size_um
        Voxel size (z, y, x) in µm; sections are typically ~5x thicker than the xy pixel.
    n_cells
        Number of neurite skeletons seeding the cells.
    seed
        Seed for ``np.random.default_rng``.
    progress
        Optional ``(done, total)`` callback, called once per generation stage.

    Returns
    -------
    EMSample
        Image (uint8), dense uint32 labels 1..N and voxel size.
    """
    rng = np.random.default_rng(seed)
    vox = np.asarray(voxel_size_um, float)
    extent = np.asarray(shape) * vox
    total = 4
    lab = _em_labels(rng, shape, vox, max(int(n_cells), 1))
    _report(progress, 1, total)
    n = int(lab.max())
    # membranes: label changes between xy neighbours (dark) or between sections (grey smear)
    edges = [
        (np.diff(lab, axis=ax, prepend=lab.take([0], ax)) != 0)
        | (np.diff(lab, axis=ax, append=lab.take([-1], ax)) != 0)
        for ax in range(3)
    ]
    bxy = edges[1].astype(np.float32) + edges[2]
    f = 0.008 / vox[1]  # widths below are in 8 nm pixels
    membrane = np.clip(ndi.gaussian_filter(bxy + 0.4 * edges[0], (0.3, 0.7 * f, 0.7 * f)), 0, 1)
    interior = ndi.uniform_filter(bxy, (1, *[max(round(9 * f), 1)] * 2)) < 1e-3
    _report(progress, 2, total)
    # cytoplasm: per-cell grey level, smooth drift, fine texture, vesicle clouds, mitochondria
    cells = tuple(int(max(2, e / 0.5)) for e in extent)
    img = rng.normal(175.0, 12.0, n + 1).astype(np.float32)[lab]
    img += 10.0 * _smooth_field(rng, shape, cells)
    img += ndi.gaussian_filter(rng.standard_normal(shape, np.float32), (0.5, f, f)) * 25.0
    has_ves = (rng.random(n + 1) < 0.3)[lab] & interior
    pool = _smooth_field(rng, shape, tuple(2 * c for c in cells)) > 0.3
    spikes = ((rng.random(shape, np.float32) < 0.006) & has_ves & pool).astype(np.float32)
    ring = [  # vesicles: dark ~40 nm rings (difference of peak-normalised Gaussians)
        ndi.gaussian_filter(spikes, (0.5, s * f, s * f)) * (2 * np.pi) ** 1.5 * 0.5 * (s * f) ** 2
        for s in (2.0, 1.0)
    ]
    img -= 70.0 * np.clip(ring[0] - 0.9 * ring[1], 0, 1.5)
    has_mito = (rng.random(n + 1) < 0.35)[lab] & interior
    mito = ndi.gaussian_filter(rng.standard_normal(shape, np.float32), (1.0, 7 * f, 7 * f))
    mito = (mito > 2.2 * mito.std()) & has_mito
    soft = ndi.gaussian_filter(mito.astype(np.float32), (0.3, f, f))
    img -= 55.0 * soft + 80.0 * soft * (1.0 - soft)  # dark matrix, darker outer membrane
    img *= 1.0 - 0.65 * membrane
    _report(progress, 3, total)
    # imaging: slight blur, section-to-section brightness jitter, noise
    img = ndi.gaussian_filter(img, (0.0, 0.7 * f, 0.7 * f))
    img = img * rng.uniform(0.92, 1.08, (shape[0], 1, 1)) + rng.normal(0, 4, (shape[0], 1, 1))
    img += rng.normal(0.0, rng.uniform(5.0, 10.0), shape).astype(np.float32)
    image = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    _report(progress, 4, total)
    return EMSample(image=image, labels=lab, voxel_size_um=tuple(float(v) for v in voxel_size_um))
