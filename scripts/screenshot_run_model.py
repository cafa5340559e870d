"""Screenshot for docs/images/run-model.png: the Run model widget after spine-dog on the sample.

Run:  xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshot_run_model.py
"""

import time
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

from napari_spines._widgets._viewer import show_plane_of_points
from napari_spines.cli import dock_widgets, save_window_screenshot

v = napari.Viewer(show=True)
v.open_sample("napari-spines", "two_photon")
run, *_ = dock_widgets(v)
run._image.value = v.layers["two-photon"]
run.run()
t = time.time()
while run.task.busy and time.time() - t < 60:
    QApplication.processEvents()
    time.sleep(0.05)
out = v.layers[-1]
out.contrast_limits = (0, float(out.data.max()))
show_plane_of_points(v, v.layers[1])
save_window_screenshot(v, Path("docs/images/run-model.png"))
v.close()
