"""A plain (non-editable) install ships the manifest and working sample data."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import sys
from importlib.resources import files
import napari_spines
assert napari_spines.__file__.startswith(sys.argv[1]), napari_spines.__file__
from npe2 import PluginManifest
manifest = PluginManifest.from_file(files("napari_spines") / "napari.yaml")
from napari_spines._sample_data import two_photon, em
for sample in (two_photon, em):
    layers = sample()
    assert layers[0][2] == "image" and layers[0][0].ndim == 3, sample
from napari_spines.models import find_model, load_model
package = find_model("spine-dog")
assert package.source == "built-in" and str(package.root).startswith(sys.argv[1])
import numpy as np
out = load_model(package, runtime="onnx")(np.zeros((1, 1, 8, 16, 16), np.float32))
assert out.shape == (1, 1, 8, 16, 16)
print("ok", len(manifest.contributions.sample_data))
"""


def test_wheel_installs_manifest_and_sample_data(tmp_path):
    dist, site = tmp_path / "dist", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("napari_spines-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "napari_spines/napari.yaml" in names
    assert "napari_spines/models/builtin/spine-dog/model.onnx" in names
    assert not any(n.startswith("tests/") for n in names)
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
    )
    entry_points = next(site.glob("napari_spines-*.dist-info")) / "entry_points.txt"
    assert "napari.manifest" in entry_points.read_text()
    result = subprocess.run(
        [sys.executable, "-c", CHECK, str(site)],
        cwd=tmp_path,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok 3"
