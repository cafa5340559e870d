"""model.yaml: round trip, validation messages, sha256 checks on opening a package."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import yaml

from napari_spines.models import (
    ModelError,
    ModelSpec,
    Normalisation,
    open_package,
    read_spec,
    sha256_file,
    write_spec,
)

SHA = "0" * 64


def full_dict() -> dict:
    """A model.yaml mapping using every field, in the order to_dict writes them."""
    return {
        "format_version": 1,
        "name": "em-affs_3d.v2",
        "version": "0.2.0",
        "task": "affinities",
        "description": "Affinities for EM.",
        "license": "MIT",
        "authors": ["A", "B"],
        "training": {
            "data": ["synthetic"],
            "command": "napari-spines train",
            "base_model": None,
            "fine_tune_data": [],
        },
        "input": {
            "axes": "zyx",
            "channels": 1,
            "voxel_size_um": [0.04, 0.008, 0.008],
            "normalisation": {"kind": "mean_std", "mean": 0.5, "std": 0.25},
        },
        "tiling": {"tile": [32, 128, 128], "multiple": [8, 16, 16], "halo": [8, 16, 16]},
        "outputs": [
            {
                "name": "affinities",
                "channels": 3,
                "offsets": [[-1, 0, 0], [0, -1, 0], [0, 0, -1]],
                "description": "affs",
            },
            {"name": "boundaries", "channels": 1, "description": ""},
        ],
        "postprocessing": {"threshold": 0.5},
        "metrics": {"voi": 0.8},
        "weights": {
            "onnx": {"file": "model.onnx", "sha256": SHA},
            "torchscript": {"file": "model.pt", "sha256": "a" * 64, "half": True},
        },
    }


def test_round_trip_from_dict_to_dict() -> None:
    data = full_dict()
    spec = ModelSpec.from_dict(copy.deepcopy(data))
    assert spec.to_dict() == data
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    assert spec.n_output_channels == 4
    assert spec.outputs[0].offsets == ((-1, 0, 0), (0, -1, 0), (0, 0, -1))
    assert spec.input.voxel_size_um == (0.04, 0.008, 0.008)
    assert spec.input.normalisation == Normalisation("mean_std", mean=0.5, std=0.25)
    assert spec.weights["torchscript"].half is True


def test_write_then_read(tmp_path) -> None:
    spec = ModelSpec.from_dict(full_dict())
    write_spec(tmp_path / "model.yaml", spec)
    assert read_spec(tmp_path / "model.yaml") == spec
    assert [p.name for p in tmp_path.iterdir()] == ["model.yaml"]  # no temporary left behind


def test_optional_fields_take_defaults() -> None:
    data = full_dict()
    data["task"] = "restoration"
    for key in ("format_version", "authors", "training", "postprocessing", "metrics"):
        del data[key]
    del data["input"]["normalisation"], data["tiling"]["halo"], data["outputs"][0]["offsets"]
    data["outputs"][0]["name"] = "denoised"
    spec = ModelSpec.from_dict(data)
    assert spec.authors == () and spec.training == {} and spec.metrics == {}
    assert spec.input.normalisation.kind == "none"
    assert spec.tiling.halo == (0, 0, 0)


@pytest.mark.parametrize(
    "field",
    ["name", "version", "task", "description", "license", "input", "tiling", "outputs", "weights"],
)
def test_missing_required_field(field) -> None:
    data = full_dict()
    del data[field]
    with pytest.raises(ModelError, match=f"model.yaml: missing required field '{field}'"):
        ModelSpec.from_dict(data)


def _broken(path: str, value) -> dict:
    data = full_dict()
    *parents, last = path.split("/")
    node = data
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            "tiling/tile",
            [30, 128, 128],
            r"tile: \[30, 128, 128\] is not a multiple of \[8, 16, 16\]",
        ),
        ("tiling/tile", [16, 32, 32], "must exceed twice the halo"),
        ("tiling/multiple", [8, 16], r"multiple: expected 3 values"),
        ("input/voxel_size_um", [1.0, 0.1], r"voxel_size_um: expected 3 values"),
        ("input/voxel_size_um", [1.0, 0.0, 0.1], r"voxel_size_um: values must be > 0"),
        ("input/channels", 0, r"channels: must be >= 1"),
        ("input/axes", "yx", r"axes: must be 'zyx'"),
        ("input/normalisation", {"kind": "minmax"}, r"'minmax' is not one of"),
        ("outputs/0/offsets", None, "an affinities output needs 'offsets'"),
        ("outputs/0/offsets", [[-1, 0, 0], [0, -1, 0]], "2 offsets for 3 channels"),
        ("outputs/0/offsets", [[-1, 0], [0, -1, 0], [0, 0, -1]], r"offsets: expected 3 values"),
        ("outputs/0/name", "boundaries", "output names must be unique"),
        ("outputs", [], "outputs must be a non-empty list"),
        ("task", "segmentation", "task 'segmentation' is not one of"),
        ("name", "Spine Model", "name 'Spine Model' may use only"),
        ("format_version", 2, "format_version 2 is not supported"),
        ("weights", {}, "at least one of onnx, torchscript"),
        ("weights/onnx/sha256", "abc", "onnx.sha256: not a 64-digit hex"),
        ("weights/onnx/file", "../model.onnx", "must be a path inside the package"),
        ("weights/pytorch_state_dict", {"file": "w.pt", "sha256": SHA}, "unknown format"),
    ],
)
def test_validation_errors_name_the_field(path, value, message) -> None:
    with pytest.raises(ModelError, match=message):
        ModelSpec.from_dict(_broken(path, value), source="pkg/model.yaml")


def test_affinities_task_needs_offsets() -> None:
    data = _broken("outputs/0/offsets", None)
    data["outputs"][0]["name"] = "affs"
    with pytest.raises(ModelError, match="an affinities model needs an output with 'offsets'"):
        ModelSpec.from_dict(data)


def test_read_spec_reports_bad_yaml(tmp_path) -> None:
    (tmp_path / "model.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ModelError, match="not valid YAML"):
        read_spec(tmp_path / "model.yaml")


def test_open_package(tiny_package) -> None:
    package = open_package(tiny_package)
    assert package.source == "path"
    assert package.runtimes == ("onnx", "torch")
    assert package.weight_path("onnx") == tiny_package.resolve() / "model.onnx"
    assert package.weight_path("torch").name == "model.pt"
    assert open_package(tiny_package / "model.yaml").root == package.root


def test_sha256_mismatch(tiny_copy) -> None:
    with open(tiny_copy / "model.onnx", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ModelError, match=r"^model.onnx: sha256 mismatch \(file changed or corr"):
        open_package(tiny_copy)


def test_missing_weight_file(tiny_copy) -> None:
    (tiny_copy / "model.pt").unlink()
    with pytest.raises(ModelError, match="model.pt: weight file missing"):
        open_package(tiny_copy)


def test_package_without_runtime(tiny_copy) -> None:
    data = yaml.safe_load((tiny_copy / "model.yaml").read_text())
    del data["weights"]["torchscript"]
    (tiny_copy / "model.yaml").write_text(yaml.safe_dump(data))
    package = open_package(tiny_copy)
    assert package.runtimes == ("onnx",)
    with pytest.raises(ModelError, match="no torch weights"):
        package.weight_path("torch")


def test_sha256_file(tmp_path) -> None:
    (tmp_path / "f").write_bytes(b"abc")
    assert sha256_file(tmp_path / "f") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


def test_not_a_package(tmp_path) -> None:
    with pytest.raises(ModelError, match="not a model package"):
        open_package(tmp_path)
    with pytest.raises(ModelError, match="no such file"):
        open_package(tmp_path / "absent")


def test_a_changed_spec_file_is_read_again(tmp_path):
    from napari_spines.models import find_model

    first = find_model("spine-2p").spec
    path = tmp_path / "model.yaml"
    write_spec(path, first)
    assert read_spec(path).postprocessing == first.postprocessing
    read_spec(path).postprocessing["threshold"] = -1.0  # a caller's change stays its own
    assert read_spec(path).postprocessing == first.postprocessing
    changed = dataclasses.replace(first, postprocessing={**first.postprocessing, "threshold": 0.9})
    write_spec(path, changed)
    assert read_spec(path).postprocessing["threshold"] == 0.9
