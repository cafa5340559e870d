"""Test-time flips run by the engine give what the flips inside an exported graph gave."""

from __future__ import annotations

import numpy as np
import pytest

from napari_spines.models import open_package
from napari_spines.models.runtimes import load_model
from napari_spines.models.spec import ModelError, ModelSpec
from tests.models.tiny import _tiny_net, spec_fields

pytest.importorskip("torch")

FLIPS = {"x": (4,), "yx": (3, 4), "z": (2,)}


def _packages(tmp_path, task, channels_out):
    """The same random net exported twice: flips in its graph, and flips in its model.yaml."""
    import torch

    from napari_spines.training import affinity
    from napari_spines.training.export import export_package, flip_averaged

    torch.manual_seed(1)
    net = _tiny_net(1, channels_out)
    fields = spec_fields(
        name="flipped",
        task=task,
        channels_in=1,
        channels_out=channels_out,
        voxel_size_um=(1.0, 0.12, 0.12),
        tile=(16, 32, 32),
        multiple=(4, 4, 4),
        halo=(4, 4, 4),
    )
    dims = [FLIPS[f] for f in FLIPS]
    in_graph = (
        affinity.flip_averaged(net, dims) if task == "affinities" else flip_averaged(net, dims)
    )
    old = export_package(in_graph.eval(), tmp_path / "old", fields, (1, 1, 4, 4, 4), ("onnx",))
    fields["test_time_flips"] = list(FLIPS)
    plain = flip_averaged(net, ()).eval()
    new = export_package(plain, tmp_path / "new", fields, (1, 1, 4, 4, 4), ("onnx",))
    return old, new


@pytest.mark.parametrize(("task", "channels"), [("spine-detection", 2), ("affinities", 3)])
def test_engine_flips_match_the_flips_inside_the_graph(tmp_path, task, channels):
    old, new = _packages(tmp_path, task, channels)
    assert open_package(new).spec.test_time_flips == ("x", "yx", "z")
    batch = np.random.default_rng(0).normal(size=(2, 1, 8, 12, 16)).astype(np.float32)
    expected = load_model(open_package(old), "onnx", "cpu")(batch)
    got = load_model(open_package(new), "onnx", "cpu")(batch)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_the_shipped_spine_model_runs_its_flip_in_the_engine():
    from napari_spines.models import find_model

    package = find_model("spine-2p")
    assert package.spec.test_time_flips == ("x",)
    onnx = pytest.importorskip("onnx")
    graph = onnx.load(str(package.weight_path("onnx"))).graph
    assert not any(node.op_type == "Slice" for node in graph.node)  # no flip branch inside


@pytest.mark.parametrize("bad", ["x", ["w"], ["xx"], [""], [1]])
def test_bad_test_time_flips_are_named(tiny_package, bad):
    data = open_package(tiny_package).spec.to_dict()
    data["test_time_flips"] = bad
    with pytest.raises(ModelError, match="test_time_flips"):
        ModelSpec.from_dict(data)


def test_test_time_flips_survive_a_round_trip(tiny_package):
    data = open_package(tiny_package).spec.to_dict()
    assert "test_time_flips" not in data  # none: the field is left out
    data["test_time_flips"] = ["x", "zyx"]
    spec = ModelSpec.from_dict(data)
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    assert spec.test_time_flips == ("x", "zyx")
