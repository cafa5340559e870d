"""Open a model package (a folder or a ``.zip``) and check its weight files' sha256."""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from napari_spines.io.atomic import recover_folder
from napari_spines.models.spec import ModelError, ModelSpec, read_spec, sha256_file

SPEC_FILES = ("model.yaml", "rdf.yaml", "bioimageio.yaml")
RUNTIME_WEIGHTS = {"onnx": "onnx", "torch": "torchscript"}

_HASHES: dict[tuple[str, int, int], str] = {}


@dataclass(frozen=True)
class ModelPackage:
    """A validated model package: its spec, the folder holding it, and where it was found."""

    spec: ModelSpec
    root: Path
    source: str

    def __repr__(self) -> str:
        return (
            f"ModelPackage({self.spec.name}@{self.spec.version}, source={self.source!r}, "
            f"root={str(self.root)!r})"
        )

    def weight_path(self, runtime: str) -> Path:
        """The weight file for ``runtime`` ("onnx" or "torch"); `ModelError` if there is none.

        Parameters
        ----------
        runtime
            "onnx" or "torch" (or the weight format's name, "torchscript").

        Returns
        -------
        pathlib.Path

        Raises
        ------
        ModelError
            The package has no weights for ``runtime``.
        """
        key = RUNTIME_WEIGHTS.get(runtime, runtime)
        if key not in self.spec.weights:
            have = ", ".join(self.runtimes) or "none"
            raise ModelError(f"{self.spec.name}: no {runtime} weights in package (has: {have})")
        return self.root / self.spec.weights[key].file

    @property
    def runtimes(self) -> tuple[str, ...]:
        """The runtimes this package has weights for, a subset of ("onnx", "torch")."""
        return tuple(rt for rt, key in RUNTIME_WEIGHTS.items() if key in self.spec.weights)


def cache_dir() -> Path:
    """Where zipped packages are extracted: ``$NAPARI_SPINES_CACHE/models`` or the XDG cache."""
    if env := os.environ.get("NAPARI_SPINES_CACHE"):
        return Path(env).expanduser() / "models"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "napari-spines" / "models"


def _cached_sha256(path: Path) -> str:
    """sha256 of ``path``, remembered for as long as its size and mtime stay the same."""
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _HASHES:
        _HASHES[key] = sha256_file(path)
    return _HASHES[key]


def _extract_zip(path: Path) -> Path:
    """Extract a zipped package once into the cache, keyed by the zip's sha256."""
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ModelError(f"{path.name}: not a readable zip file ({exc})") from exc
    target = cache_dir() / f"{path.stem}-{_cached_sha256(path)[:16]}"
    if target.is_dir():
        return target
    with archive:
        for name in archive.namelist():
            if name.startswith(("/", "\\")) or ".." in Path(name).parts:
                raise ModelError(f"{path.name}: unsafe path in zip: {name}")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            archive.extractall(tmp)
            os.replace(tmp, target)
        except OSError:
            if not target.is_dir():  # another process may have won the race
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _find_spec_file(folder: Path) -> Path | None:
    """The spec file in ``folder``, or in its only sub-folder (zips often wrap one)."""
    for name in SPEC_FILES:
        if (folder / name).is_file():
            return folder / name
    subdirs = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))]
    if len(subdirs) == 1:
        return _find_spec_file(subdirs[0])
    return None


def _read_rdf(path: Path) -> ModelSpec:
    import yaml

    from napari_spines.models.bioimageio import spec_from_rdf

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ModelError(f"{path}: cannot read ({str(exc).splitlines()[0]})") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{path}: expected a mapping at the top level")
    return spec_from_rdf(data, path.parent)


def check_weights(spec: ModelSpec, root: Path) -> None:
    """Raise `ModelError` unless every weight file exists and matches its sha256.

    Parameters
    ----------
    spec
        The package's spec, which lists the weight files and their sha256.
    root
        The package folder.

    Raises
    ------
    ModelError
        A weight file is missing or its sha256 differs.
    """
    for weights in spec.weights.values():
        file = root / weights.file
        if not file.is_file():
            raise ModelError(f"{weights.file}: weight file missing from {root}")
        if _cached_sha256(file) != weights.sha256:
            raise ModelError(f"{weights.file}: sha256 mismatch (file changed or corrupt)")


def open_package(path: str | os.PathLike, source: str = "path") -> ModelPackage:
    """Open a package folder, its spec file, or a ``.zip`` of it; check its weights.

    The folder holds ``model.yaml``, or a bioimage.io ``rdf.yaml`` / ``bioimageio.yaml``
    (then ``source`` "path" becomes "bioimage.io"). A zip is extracted once into `cache_dir`.

    Parameters
    ----------
    path
        The package folder (or one holding it as its only sub-folder), its spec file, or a
        ``.zip``; ``~`` is expanded.
    source
        Where the package was found, for display: "path", "built-in", "user".

    Returns
    -------
    ModelPackage

    Raises
    ------
    ModelError
        No such path, not a package, an invalid spec, or a missing or changed weight file.
    """
    path = Path(path).expanduser()
    if not path.exists() and not recover_folder(path):  # an export killed mid-swap
        raise ModelError(f"{path}: no such file or folder")
    if path.is_file() and path.suffix.lower() == ".zip":
        path = _extract_zip(path)
    spec_file = path if path.is_file() else _find_spec_file(path)
    if spec_file is None or spec_file.name not in SPEC_FILES:
        raise ModelError(f"{path}: not a model package (no {' or '.join(SPEC_FILES)})")
    if spec_file.name == "model.yaml":
        spec = read_spec(spec_file)
    else:
        spec = _read_rdf(spec_file)
        source = "bioimage.io" if source == "path" else source
    root = spec_file.parent.resolve()
    check_weights(spec, root)
    return ModelPackage(spec=spec, root=root, source=source)
