"""How a stack is segmented: its mode, threshold and grid, and the line that says why.

The mode comes from the voxel size when the file (or the user) gives one (`default_mode`).
When nothing gives it, the stack is never silently taken for serial-section EM: its anisotropy
is estimated from the stack itself (`estimate_anisotropy`), and the reason says so.

An affinity model may give settings per mode in its ``model.yaml``::

    postprocessing:
      threshold: 0.8            # every mode without its own
      modes:
        3d: {threshold: 0.8, in_plane_scale: 1.5}
        2d: {method: mutex_watershed, bias: 0.4, min_size: 100, threshold: 0.0}

``method: mutex_watershed`` makes the fragments by the mutex watershed of every channel,
nearest-neighbour and long-range (`napari_spines.segmentation.mutex`), instead of a watershed
of the nearest ones; the agglomeration then merges them above ``threshold`` (0: none).

``in_plane_scale`` runs the network on the stack's sections upsampled by that factor in y and
x (chosen by cross-validation on gala for em-affinity). z is never resampled for affinities:
they join a voxel to its neighbour in the stack's own sections.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from napari_spines.segmentation.agglomeration import DEFAULT_THRESHOLD
from napari_spines.segmentation.anisotropy import estimate_anisotropy

#: How fragments are made and merged:
#: "3d": 3D fragments, merged in 3D;
#: "2d+z": fragments per section, merged within and across sections (through z-affinities);
#: "2d": fragments per section, merged within their section only (z-affinities unused).
MODES = ("3d", "2d+z", "2d")
#: z steps at least this many times the pixel size get per-section fragments ("2d+z") ...
ANISOTROPY_FOR_2D_FRAGMENTS = 2.0
#: ... and from this ratio on (serial-section TEM, ~50 nm sections of ~4 nm pixels) sections are
#: not merged across by default ("2d"): on ISBI 2012, whose sections are too far apart and
#: unaligned for z-affinities to be learnt, linking sections merged distinct cells.
ANISOTROPY_FOR_SECTIONS = 8.0
_KIND = {"3d": "an isotropic (FIB-SEM) stack", "2d+z": "anisotropic", "2d": "serial sections"}


@dataclass(frozen=True)
class StackSettings:
    """What `segment_image` runs a stack with.

    ``run_voxel_um`` is the voxel size handed to the engine as the stack's (None: the model's
    own, no resampling). ``assumed`` is True when no voxel size was given and the mode was
    estimated from the stack; ``reason`` says what was chosen and from what, in one line.
    """

    mode: str
    threshold: float
    run_voxel_um: tuple[float, float, float] | None
    assumed: bool
    reason: str
    #: the mutex watershed's bias when it makes the fragments (``method: mutex_watershed``)
    mutex_bias: float | None = None
    #: its segments smaller than this go to their neighbours
    mutex_min_size: int = 0

    def message(self, how_to_change: str) -> str:
        """`reason`, followed by ``how_to_change`` in brackets when the mode was assumed.

        Parameters
        ----------
        how_to_change
            Where the user sets the voxel size or the mode (the CLI's options, the widget's).

        Returns
        -------
        str
        """
        return f"{self.reason} ({how_to_change})" if self.assumed else self.reason


def mode_for_anisotropy(anisotropy: float) -> str:
    """The `MODES` entry for voxels ``anisotropy`` times deeper than wide.

    Parameters
    ----------
    anisotropy
        z step over the smaller in-plane pixel size.

    Returns
    -------
    str
        ``"2d"`` from `ANISOTROPY_FOR_SECTIONS` on, ``"2d+z"`` from
        `ANISOTROPY_FOR_2D_FRAGMENTS`, else ``"3d"``.
    """
    if anisotropy >= ANISOTROPY_FOR_SECTIONS:
        return "2d"
    return "2d+z" if anisotropy >= ANISOTROPY_FOR_2D_FRAGMENTS else "3d"


def default_mode(voxel_size_um: Sequence[float]) -> str:
    """The `MODES` entry for a voxel size, from how much deeper than wide the voxels are.

    Parameters
    ----------
    voxel_size_um
        ``(z, y, x)`` voxel size in µm; only the ratio of z to the smaller of y, x matters.

    Returns
    -------
    str
        See `mode_for_anisotropy`.

    Examples
    --------
    >>> default_mode((0.05, 0.004, 0.004)), default_mode((0.04, 0.01, 0.01))
    ('2d', '2d+z')
    >>> default_mode((1.0, 1.0, 1.0))
    '3d'
    """
    z, y, x = (float(v) for v in voxel_size_um)
    return mode_for_anisotropy(z / min(y, x))


def mode_postprocessing(spec: Any, mode: str) -> dict:
    """A model's settings for one mode: ``postprocessing.modes[mode]``, or nothing.

    Parameters
    ----------
    spec
        The affinity model's `ModelSpec`.
    mode
        One of `MODES`.

    Returns
    -------
    dict
        Possibly ``threshold``, ``in_plane_scale``, and ``method: mutex_watershed`` with its
        ``bias`` and ``min_size``.
    """
    modes = spec.postprocessing.get("modes") or {}
    return dict(modes.get(mode) or {})


def stack_settings(
    data: Any,
    spec: Any,
    voxel_size_um: Sequence[float] | None,
    mode: str | None = None,
    threshold: float | None = None,
) -> StackSettings:
    """The mode, threshold and grid for a stack, from what was given, the model and the stack.

    Parameters
    ----------
    data
        The ``(Z, Y, X)`` stack (numpy, dask or zarr); read only to estimate its anisotropy,
        when ``voxel_size_um`` and ``mode`` are both None.
    spec
        The affinity model's `ModelSpec`.
    voxel_size_um
        The stack's voxel size, or None when nothing gave it.
    mode, threshold
        Given by the user, or None for the defaults.

    Returns
    -------
    StackSettings

    Raises
    ------
    BadValue
        A given voxel size more than `MAX_RESCALE` times the model's on an axis (a size in the
        wrong unit, most often), whatever the mode.
    """
    from napari_spines.inference import check_rescaling, rescale_factors

    if voxel_size_um is not None:
        network = spec.network_voxel_size_um
        check_rescaling(rescale_factors(voxel_size_um, network), voxel_size_um, spec)
    assumed = False
    if mode is not None:
        why = f"mode {mode} as asked"
        if voxel_size_um is None:
            why = f"no voxel size: the stack's own grid, {why}"
    elif voxel_size_um is not None:
        mode = default_mode(voxel_size_um)
        why = f"mode {mode}, {_KIND[mode]}, from the voxel size"
    else:
        assumed = True
        anisotropy = estimate_anisotropy(data)
        if anisotropy is None:
            mode = "2d"
            why = "no voxel size, a single section: mode 2d"
        else:
            mode = mode_for_anisotropy(anisotropy)
            near = f"≥ {anisotropy:.0f}" if anisotropy >= 24 else f"{anisotropy:.1f}"
            why = (
                f"no voxel size: its sections differ as much as pixels {near} apart, so it is "
                f"taken for {_KIND[mode]} (mode {mode})"
            )
    settings = mode_postprocessing(spec, mode)
    if threshold is None:
        threshold = float(
            settings.get("threshold", spec.postprocessing.get("threshold", DEFAULT_THRESHOLD))
        )
    network_z, network_y, network_x = spec.network_voxel_size_um
    scale = settings.get("in_plane_scale")
    run_voxel: tuple[float, float, float] | None = None
    if scale is not None:
        run_voxel = (network_z, network_y * float(scale), network_x * float(scale))
        why += f", sections upsampled {float(scale):g}× in y and x"
    elif voxel_size_um is not None:  # in-plane to the model's pixels; z is the stack's own
        run_voxel = (network_z, float(voxel_size_um[1]), float(voxel_size_um[2]))
    bias, min_size = None, 0
    if settings.get("method", spec.postprocessing.get("method")) == "mutex_watershed":
        bias, min_size = float(settings.get("bias", 0.5)), int(settings.get("min_size", 0))
        why += f", mutex watershed fragments (bias {bias:g})"
    why += f", threshold {threshold:g}"
    return StackSettings(mode, threshold, run_voxel, assumed, why, bias, min_size)
