"""Length units to micrometres."""

from __future__ import annotations

_TO_UM = {
    "pm": 1e-6,
    "a": 1e-4,
    "å": 1e-4,
    "angstrom": 1e-4,
    "nm": 1e-3,
    "nanometer": 1e-3,
    "nanometre": 1e-3,
    "um": 1.0,
    "µm": 1.0,
    "μm": 1.0,
    "micron": 1.0,
    "microns": 1.0,
    "micrometer": 1.0,
    "micrometre": 1.0,
    "mm": 1e3,
    "millimeter": 1e3,
    "millimetre": 1e3,
    "cm": 1e4,
    "centimeter": 1e4,
    "centimetre": 1e4,
    "m": 1e6,
    "meter": 1e6,
    "metre": 1e6,
    "inch": 25400.0,
    "in": 25400.0,
}


def unit_to_um(unit: str | bytes | None) -> float | None:
    r"""Return how many micrometres one ``unit`` is, or None for an unknown unit.

    Parameters
    ----------
    unit
        A unit name or symbol (``"nm"``, ``"µm"``, ``"micron"``, ``"inch"``, ...); case and
        surrounding spaces are ignored, bytes are decoded as UTF-8.

    Returns
    -------
    float or None

    Examples
    --------
    >>> unit_to_um("nm")
    0.001
    >>> unit_to_um("\\u00B5m")  # the micro sign written as an escape, as some files do
    1.0
    """
    if unit is None:
        return None
    if isinstance(unit, bytes):
        unit = unit.decode("utf-8", "replace")
    key = unit.strip().lower().replace("\\u00b5", "µ")
    return _TO_UM.get(key)
