"""Registry (built-in, user folder, paths), zipped packages and bioimage.io rdf.yaml."""

from __future__ import annotations

import logging
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from napari_spines.models import (
    ModelError,
    builtin_dir,
    find_model,
    list_models,
    load_model,
    open_package,
    read_spec,
    registry,
    sha256_file,
    spec_from_rdf,
    user_dir,
    write_spec,
)


def _install(
    package: Path,
    folder: Path,
    name: str | None = None,
    version: str | None = None,
    task: str | None = None,
) -> Path:
    """Copy ``package`` into ``folder`` (renamed / re-versioned if asked)."""
    target = Path(shutil.copytree(package, folder / f"{name or 'tiny'}-{version or 'v'}"))
    spec = read_spec(target / "model.yaml")
    data = spec.to_dict()
    data.update({k: v for k, v in {"name": name, "version": version, "task": task}.items() if v})
    write_spec(target / "model.yaml", type(spec).from_dict(data))
    return target


@pytest.fixture
def no_builtins(tmp_path, monkeypatch) -> None:
    """Hide the shipped packages, for tests that need an exact list."""
    monkeypatch.setattr(registry, "builtin_dir", lambda: tmp_path / "no-builtins")


def test_user_dir_precedence(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("NAPARI_SPINES_MODELS", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert user_dir() == tmp_path / "a"
    monkeypatch.delenv("NAPARI_SPINES_MODELS")
    assert user_dir() == tmp_path / "xdg" / "napari-spines" / "models"


def test_builtin_dir_is_inside_the_package() -> None:
    assert builtin_dir().is_dir()
    assert builtin_dir().parent.name == "models"


def test_shipped_packages_open_and_run() -> None:
    """Every package under builtin/ is valid, listed first, and passes its dry run."""
    shipped = [p for p in builtin_dir().iterdir() if p.is_dir() and not p.name.startswith("_")]
    packages = [p for p in list_models() if p.source == "built-in"]
    assert len(packages) == len(shipped)
    for package in packages:
        for runtime in package.runtimes:
            load_model(package, runtime=runtime, device="cpu")


def test_user_model_is_listed_and_found(tiny_package) -> None:
    _install(tiny_package, user_dir())
    names = [(p.spec.name, p.source) for p in list_models()]
    assert ("tiny", "user") in names
    assert find_model("tiny").source == "user"
    assert find_model("tiny@0.1.0").spec.version == "0.1.0"
    assert find_model("tiny", task="spine-detection").spec.name == "tiny"


def test_builtin_models_come_first(tiny_package, tmp_path, monkeypatch) -> None:
    builtin = tmp_path / "builtin"
    _install(tiny_package, builtin, name="shipped")
    _install(tiny_package, user_dir(), name="mine")
    monkeypatch.setattr(registry, "builtin_dir", lambda: builtin)
    assert [(p.spec.name, p.source) for p in list_models()] == [
        ("shipped", "built-in"),
        ("mine", "user"),
    ]


def test_broken_user_package_is_skipped(tiny_package, caplog, no_builtins) -> None:
    _install(tiny_package, user_dir())
    broken = user_dir() / "broken"
    broken.mkdir()
    (broken / "model.yaml").write_text("name: broken\n")
    with caplog.at_level(logging.WARNING, logger="napari_spines.models.registry"):
        packages = list_models()
    assert [p.spec.name for p in packages] == ["tiny"]
    assert "broken" in caplog.text and "missing required field" in caplog.text


def test_find_model_picks_newest_version(tiny_package) -> None:
    for version in ("0.9.0", "0.10.0", "0.2.0"):
        _install(tiny_package, user_dir(), version=version)
    assert find_model("tiny").spec.version == "0.10.0"
    assert find_model("tiny@0.2.0").spec.version == "0.2.0"


def test_find_model_by_path(tiny_package) -> None:
    package = find_model(str(tiny_package))
    assert package.source == "path" and package.spec.name == "tiny"


def test_unknown_name_lists_the_available_models(tiny_package, no_builtins) -> None:
    _install(tiny_package, user_dir())
    with pytest.raises(ModelError, match=r"no model named 'nope' \(available: tiny@0.1.0\)"):
        find_model("nope")
    with pytest.raises(ModelError, match="available: tiny@0.1.0"):
        find_model("tiny@9.9.9")


def test_unknown_name_with_no_models_says_where_to_put_them(no_builtins) -> None:
    with pytest.raises(ModelError, match="put packages in .*user-models"):
        find_model("nope")


def test_task_mismatch(tiny_package) -> None:
    with pytest.raises(ModelError, match="is a spine-detection model, not affinities"):
        find_model(str(tiny_package), task="affinities")


def _zip(folder: Path, target: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(target, "w") as archive:
        for file in folder.iterdir():
            archive.write(file, prefix + file.name)
    return target


@pytest.mark.parametrize("prefix", ["", "tiny/"])
def test_zip_package_opens_and_runs(tiny_package, tmp_path, prefix) -> None:
    archive = _zip(tiny_package, tmp_path / "tiny.zip", prefix)
    package = open_package(archive)
    assert package.root.is_relative_to(tmp_path / "cache" / "models")
    assert open_package(archive).root == package.root  # extracted once, reused
    out = load_model(package, runtime="onnx")(np.ones((1, 1, 8, 8, 8), np.float32))
    assert out.shape == (1, 1, 8, 8, 8)


def test_zip_in_user_folder_is_listed(tiny_package, no_builtins) -> None:
    user_dir().mkdir(parents=True)
    _zip(tiny_package, user_dir() / "tiny.zip")
    assert [p.spec.name for p in list_models()] == ["tiny"]


def test_zip_with_unsafe_paths_is_refused(tmp_path) -> None:
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as archive:
        archive.writestr("../evil.txt", "x")
    with pytest.raises(ModelError, match="unsafe path"):
        open_package(tmp_path / "evil.zip")


def test_not_a_zip(tmp_path) -> None:
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="not a readable zip file"):
        open_package(tmp_path / "bad.zip")


# --- bioimage.io -------------------------------------------------------------------------------


def rdf(sha: str | None) -> dict:
    space = [
        {"type": "space", "id": a, "size": {"min": 8, "step": 4}, "scale": s, "unit": u}
        for a, s, u in (("z", 1000.0, "nanometer"), ("y", 0.12, "micrometer"), ("x", 0.12, None))
    ]
    return {
        "format_version": "0.5.3",
        "type": "model",
        "id": "Tiny Spine Net",
        "name": "Tiny spine net",
        "description": "A tiny test model.",
        "license": "MIT",
        "authors": [{"name": "Ada"}, {"name": "Bob"}],
        "tags": ["3d", "spine-detection"],
        "inputs": [
            {
                "id": "raw",
                "axes": [{"type": "batch"}, {"type": "channel", "channel_names": ["raw"]}, *space],
                "preprocessing": [
                    {"id": "ensure_dtype", "kwargs": {"dtype": "float32"}},
                    {"id": "scale_range", "kwargs": {"min_percentile": 2, "max_percentile": 99.5}},
                ],
            }
        ],
        "outputs": [
            {
                "id": "heatmap",
                "description": "spine heads",
                "axes": [
                    {"type": "batch"},
                    {"type": "channel", "channel_names": ["p"]},
                    *(
                        {
                            "type": "space",
                            "id": a,
                            "size": {"tensor_id": "raw", "axis_id": a},
                            "halo": 4,
                        }
                        for a in "zyx"
                    ),
                ],
            }
        ],
        "weights": {
            "onnx": {"source": "model.onnx", **({"sha256": sha} if sha else {})},
            "pytorch_state_dict": {"source": "weights.pt"},
        },
    }


def test_spec_from_rdf(tmp_path) -> None:
    spec = spec_from_rdf(rdf("f" * 64), tmp_path)
    assert (spec.name, spec.task, spec.authors) == (
        "tiny-spine-net",
        "spine-detection",
        ("Ada", "Bob"),
    )
    assert spec.input.channels == 1
    assert spec.input.voxel_size_um == pytest.approx((1.0, 0.12, 0.12))
    assert (spec.input.normalisation.kind, spec.input.normalisation.low) == ("percentile", 2.0)
    assert spec.input.normalisation.high == 99.5
    assert spec.tiling.multiple == (4, 4, 4)
    assert spec.tiling.tile == (24, 24, 24)  # min + 4 * step
    assert spec.tiling.halo == (4, 4, 4)
    assert [(o.name, o.channels) for o in spec.outputs] == [("heatmap", 1)]
    assert list(spec.weights) == ["onnx"] and spec.weights["onnx"].sha256 == "f" * 64


def test_rdf_package_opens_and_agrees_with_model_yaml(tiny_package, tmp_path) -> None:
    shutil.copy(tiny_package / "model.onnx", tmp_path / "model.onnx")
    (tmp_path / "rdf.yaml").write_text(yaml.safe_dump(rdf(None)))  # sha256 computed when absent
    package = open_package(tmp_path)
    assert package.source == "bioimage.io"
    assert package.spec.weights["onnx"].sha256 == sha256_file(tmp_path / "model.onnx")
    batch = np.random.default_rng(0).random((1, 1, 8, 16, 16), np.float32)
    ours = load_model(open_package(tiny_package), runtime="onnx")(batch)
    np.testing.assert_allclose(load_model(package, runtime="onnx")(batch), ours, atol=1e-6)


def _edit(data: dict, path: str, value) -> dict:
    node = data
    *parents, last = path.split("/")
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    node[last] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("format_version", "0.4.10", "format 0.5"),
        ("type", "dataset", "need a bioimage.io model"),
        (
            "inputs/0/axes",
            [
                {"type": "batch"},
                {"type": "channel", "channel_names": ["r"]},
                {"type": "space", "id": "y", "size": 64},
                {"type": "space", "id": "x", "size": 64},
            ],
            r"spatial axes \(y, x\)",
        ),
        ("inputs", [{"id": "a", "axes": []}, {"id": "b", "axes": []}], "2 inputs"),
        ("weights", {"pytorch_state_dict": {"source": "w.pt"}}, r"no onnx or torchscript weights"),
        ("weights/onnx/source", "https://zenodo.org/model.onnx", "download the model's zip"),
        (
            "inputs/0/preprocessing",
            [{"id": "clip", "kwargs": {"min": 0, "max": 1}}],
            "preprocessing 'clip' is not supported",
        ),
        ("inputs/0/axes/2/size", {"min": 6, "step": 4}, "not multiples of one number"),
    ],
)
def test_unsupported_rdf(tmp_path, path, value, message) -> None:
    with pytest.raises(ModelError, match=message):
        spec_from_rdf(_edit(rdf("f" * 64), path, value), tmp_path)


def test_rdf_zero_mean_unit_variance_and_task_fallback(tmp_path) -> None:
    data = rdf("f" * 64)
    data["tags"] = ["3d"]
    data["inputs"][0]["preprocessing"] = [{"id": "zero_mean_unit_variance", "kwargs": {}}]
    spec = spec_from_rdf(data, tmp_path)
    assert (spec.task, spec.input.normalisation.kind) == ("restoration", "zscore")
    data["inputs"][0]["preprocessing"] = [
        {"id": "fixed_zero_mean_unit_variance", "kwargs": {"mean": 10.0, "std": 2.0}}
    ]
    norm = spec_from_rdf(data, tmp_path).input.normalisation
    assert (norm.kind, norm.mean, norm.std) == ("mean_std", 10.0, 2.0)
