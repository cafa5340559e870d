"""Model packages: ``model.yaml`` spec, package opening, registry, and runtimes.

`run_model` is the one way to run a model: it finds, loads and runs it through the tiled engine.
Importing this package is light: torch and onnxruntime are imported only when a model is loaded
(`load_model`) and by `usable_devices`.
"""

from napari_spines.models.bioimageio import spec_from_rdf
from napari_spines.models.package import ModelPackage, open_package
from napari_spines.models.registry import builtin_dir, find_model, list_models, user_dir
from napari_spines.models.run import ModelChoice, ModelRun, ReadyModel, ready_model, run_model
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
    "ModelChoice",
    "ModelError",
    "ModelPackage",
    "ModelRun",
    "ModelSpec",
    "Normalisation",
    "OutputSpec",
    "ReadyModel",
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
    "ready_model",
    "run_model",
    "sha256_file",
    "spec_from_rdf",
    "usable_devices",
    "user_dir",
    "write_spec",
]
