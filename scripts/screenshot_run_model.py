"""Screenshot for docs/images/run-model.png: the Run model widget after spine-dog on the sample.

Run:  xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshot_run_model.py
"""

from pathlib import Path

import napari

from napari_spines._widgets._app import save_window_screenshot, wait_while
from napari_spines._widgets._layers import show_plane_of_points

v = napari.Viewer(show=True)
v.open_sample("napari-spines", "two_photon")
_, run = v.window.add_plugin_dock_widget("napari-spines", "Run model")
run._image.value = v.layers["two-photon"]
run.run()
wait_while(lambda: run.task.busy, 60)
out = v.layers[-1]
out.contrast_limits = (0, float(out.data.max()))
show_plane_of_points(v, v.layers[1])
save_window_screenshot(v, Path("docs/images/run-model.png"))
v.close()
