"""A network in training, run by the engine as its exported package will be (for validation).

Validation goes through `napari_spines.models.run_model`, the same tiled engine that runs the
packages, so the figures that choose a checkpoint are the figures a user gets.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_spines.models.spec import ModelSpec, Normalisation


@dataclass(eq=False)
class TrainingNetwork:
    """A torch module with a sigmoid on its outputs, as a `~napari_spines.models.ReadyModel`.

    Parameters
    ----------
    net
        The torch module (its mode, train or eval, is the caller's choice).
    spec
        The spec the engine tiles by (`engine_spec`).
    runtime
        Shown as the runtime.
    sigmoid
        Apply a sigmoid to the outputs (probabilities); False for restoration (intensities).
    """

    net: Any
    spec: ModelSpec
    runtime: str = "torch"
    sigmoid: bool = True

    @property
    def provider(self) -> str:
        """The torch device the network is on."""
        return str(next(self.net.parameters()).device)

    def __call__(self, batch: np.ndarray, /) -> np.ndarray:
        """Outputs of one float32 ``(B, C, z, y, x)`` batch (sigmoid unless ``sigmoid`` is off)."""
        import torch

        device = next(self.net.parameters()).device
        with torch.inference_mode():
            out = self.net(torch.from_numpy(batch).to(device))
            return (torch.sigmoid(out) if self.sigmoid else out).cpu().numpy()


def engine_spec(spec: dict, normalised: bool = True) -> ModelSpec:
    """A model.yaml mapping (without weights) as the engine needs it.

    Parameters
    ----------
    spec
        The model.yaml content a trainer writes on export (``model_spec()``).
    normalised
        The input is already normalised (validation volumes are), so the engine skips that step.

    Returns
    -------
    ModelSpec
        With a placeholder weight entry, which the engine never reads.
    """
    placeholder = {"onnx": {"file": "model.onnx", "sha256": "0" * 64}}
    parsed = ModelSpec.from_dict({**spec, "weights": placeholder})
    if normalised:
        parsed = dataclasses.replace(
            parsed,
            input=dataclasses.replace(parsed.input, normalisation=Normalisation(kind="none")),
        )
    return parsed
