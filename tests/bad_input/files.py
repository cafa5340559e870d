"""Bad input files made on the fly (nothing big is committed): every one in a single folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile


def good_two_photon(folder: Path) -> Path:
    """A small synthetic two-photon stack with voxel size, its spines and a traced dendrite."""
    from napari_spines.io import write_points_csv
    from napari_spines.synthetic import synthetic_two_photon

    sample = synthetic_two_photon(shape=(16, 64, 64), seed=0)
    path = folder / "good.tif"
    tifffile.imwrite(
        path,
        sample.image,
        imagej=True,
        resolution=(1 / sample.voxel_size_um[2], 1 / sample.voxel_size_um[1]),
        metadata={"axes": "ZYX", "unit": "um", "spacing": sample.voxel_size_um[0]},
    )
    write_points_csv(folder / "good_spines.csv", sample.spines, sample.voxel_size_um)
    z, y = 8, 32
    rows = "\n".join(f"0,{z},{y},{x}" for x in range(0, 64, 2))
    (folder / "good_dendrites.csv").write_text(f"segment_id,z,y,x\n{rows}\n")
    return path


def good_em(folder: Path) -> Path:
    """A small synthetic EM stack and its labels."""
    from napari_spines.io import write_labels_tiff
    from napari_spines.synthetic import synthetic_em

    sample = synthetic_em(shape=(8, 64, 64), seed=0)
    path = folder / "em.tif"
    tifffile.imwrite(path, sample.image, imagej=True, metadata={"axes": "ZYX"})
    write_labels_tiff(folder / "em_labels.tif", sample.labels, sample.voxel_size_um)
    return path


def write_bad_files(folder: Path) -> dict[str, Path]:
    """Every bad file of the corpus, by name."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"good": good_two_photon(folder), "em": good_em(folder)}

    def tiff(name: str, data: np.ndarray, **kwargs) -> None:
        files[name] = folder / f"{name}.tif"
        tifffile.imwrite(files[name], data, **kwargs)

    tiff("blank", np.zeros((16, 64, 64), np.uint16))
    files["blank_unicode"] = folder / "leer ü 空.tif"
    tifffile.imwrite(files["blank_unicode"], np.zeros((16, 64, 64), np.uint16))
    tiff("all_nan", np.full((8, 32, 32), np.nan, np.float32))
    with_inf = tifffile.imread(files["good"]).astype(np.float32)
    with_inf[4, 10:20, 10:20] = np.inf
    with_inf[5, 0:4, 0:4] = -np.inf
    with_inf[6, 30:34, 30:34] = np.nan
    tiff("with_inf", with_inf)
    tiff("one_voxel", np.ones((1, 1, 1), np.uint8))
    tiff("one_row", np.ones((1, 64), np.uint8))
    tiff(
        "labels_float",
        np.random.default_rng(0).random((4, 16, 16)).astype(np.float32),
        photometric="minisblack",
    )
    tiff("labels_negative", np.full((4, 16, 16), -3, np.int16), photometric="minisblack")
    hyper = np.random.default_rng(0).integers(0, 255, (2, 4, 2, 32, 32), dtype=np.uint8)
    tiff("hyperstack_tzcyx", hyper, imagej=True, metadata={"axes": "TZCYX"})
    tiff(
        "imagej_nan_spacing",
        np.ones((4, 32, 32), np.uint8),
        imagej=True,
        resolution=(10.0, 10.0),
        metadata={"axes": "ZYX", "unit": "um", "spacing": float("nan")},
    )
    for label, value in (("zero", 0.0), ("negative", -0.2), ("nan", float("nan"))):
        tiff(
            f"ome_voxel_{label}",
            np.ones((4, 32, 32), np.uint8),
            ome=True,
            metadata={"axes": "ZYX", "PhysicalSizeX": value, "PhysicalSizeY": value},
        )
    good = files["good"].read_bytes()
    for name, data in (
        ("cut_8_bytes", good[:8]),
        ("cut_half", good[: len(good) // 2]),
        ("garbage", bytes(range(256)) * 40),
        ("text", b"z,y,x\n1,2,3\n"),
        ("empty", b""),
    ):
        files[name] = folder / f"{name}.tif"
        files[name].write_bytes(data)
    files["folder_tif"] = folder / "folder.tif"
    files["folder_tif"].mkdir(exist_ok=True)
    files["missing"] = folder / "missing.tif"
    files["png"] = folder / "image.png"
    files["png"].write_bytes(b"\x89PNG\r\n\x1a\n")
    _zarr_files(folder, files)
    _csv_files(folder, files)
    _model_files(folder, files)
    return files


def _zarr_files(folder: Path, files: dict[str, Path]) -> None:
    import zarr

    files["zarr_huge"] = folder / "huge.zarr"
    zarr.create_array(
        str(files["zarr_huge"]), shape=(100000,) * 3, chunks=(64, 64, 64), dtype="uint8"
    )
    # a few KB on disk, 3.7 GiB decompressed: constant chunks compress to nothing
    files["zarr_sparse"] = folder / "sparse.zarr"
    sparse = zarr.create_array(
        str(files["zarr_sparse"]),
        shape=(60, 4096, 4096),
        chunks=(60, 512, 512),
        dtype="uint16",
        fill_value=0,
    )
    sparse[0:60, 0:512, 0:512] = 7


def _csv_files(folder: Path, files: dict[str, Path]) -> None:
    def csv(name: str, text: str) -> None:
        files[name] = folder / f"{name}.csv"
        files[name].write_text(text)

    csv("points_nan", "z,y,x,score\n1,2,3,0.5\nnan,2,3,0.5\n")
    csv("points_inf", "z,y,x,score\n1,2,3,0.5\n1,inf,3,0.5\n")
    csv("points_text_score", "z,y,x,score\n1,2,3,high\n")
    csv("points_no_columns", "a,b\n1,2\n")
    csv("points_empty", "")
    csv("points_header_only", "z,y,x\n")
    csv("points_2d", "y,x\n1,2\n")
    csv("points_ok", "z,y,x,score\n8,20,20,0.9\n8,40,40,0.2\n")
    files["points_binary"] = folder / "binary.csv"
    files["points_binary"].write_bytes(bytes(range(256)))


def _model_files(folder: Path, files: dict[str, Path]) -> None:
    import shutil

    import yaml

    from napari_spines.models import find_model

    source = find_model("spine-dog").root
    for name, key, value in (
        ("model_huge_halo", "halo", [20000, 20000, 20000]),
        ("model_huge_tile", "tile", [20000, 20000, 20000]),
    ):
        target = folder / name
        shutil.copytree(source, target, dirs_exist_ok=True)
        spec = yaml.safe_load((target / "model.yaml").read_text())
        spec["tiling"][key] = value
        if key == "tile":
            spec["tiling"]["halo"] = [5, 7, 7]
        (target / "model.yaml").write_text(yaml.safe_dump(spec))
        files[name] = target
    files["model_garbage_yaml"] = folder / "model_garbage"
    files["model_garbage_yaml"].mkdir(exist_ok=True)
    (files["model_garbage_yaml"] / "model.yaml").write_text("{{{ not yaml")
    files["model_empty_folder"] = folder / "model_empty"
    files["model_empty_folder"].mkdir(exist_ok=True)
    files["checkpoint_unsafe"] = folder / "unsafe.pt"
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    files["checkpoint_unsafe"].write_bytes(pickle.dumps({"model": Evil()}))
    files["checkpoint_garbage"] = folder / "garbage.pt"
    files["checkpoint_garbage"].write_bytes(b"not a checkpoint")
