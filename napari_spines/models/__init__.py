"""Model packages: ``model.yaml`` spec, package opening, registry, and runtimes.

Importing this package is light: torch and onnxruntime are imported only by `load_model` and
`usable_devices`.
"""

from napari_spines.models.bioimageio import spec_from_rdf
from napari_spines.models.package import ModelPackage, open_package
from napari_spines.models.registry import builtin_dir, find_model, list_models, user_dir
from napari_spines.models.runtimes import (
    LoadedModel,
    Runtime,
    clear_cache,
    load_model,
    usable_devices,
)
from napari_spines.models.spec import (
    InputSpec,
    ModelError,
    ModelSpec,
    Normalisation,
    OutputSpec,
    TilingSpec,
    WeightsSpec,
    read_spec,
    sha256_file,
    write_spec,
)

__all__ = [
    "InputSpec",
    "LoadedModel",
    "ModelError",
    "ModelPackage",
    "ModelSpec",
    "Normalisation",
    "OutputSpec",
    "Runtime",
    "TilingSpec",
    "WeightsSpec",
    "builtin_dir",
    "clear_cache",
    "find_model",
    "list_models",
    "load_model",
    "open_package",
    "read_spec",
    "sha256_file",
    "spec_from_rdf",
    "usable_devices",
    "user_dir",
    "write_spec",
]
