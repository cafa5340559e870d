"""Screenshot for docs/images/segmentation.png: em-affinity on ISBI 2012 sections 15-19.

Run:  xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshot_segmentation.py

Needs ``../shared/data/em/isbi2012``; shows the image, the affinities, the labels and the
adapted Rand error against the sections' ground truth.
"""

from pathlib import Path

import napari
import tifffile

from napari_spines._widgets._app import save_window_screenshot, wait_while
from napari_spines.training.em_data import section_labels

DATA = Path(__file__).resolve().parents[1].parent / "shared/data/em/isbi2012"
VOXEL_UM = (0.05, 0.004, 0.004)  # 50 nm sections of 4 nm pixels

v = napari.Viewer(show=True)
image = tifffile.imread(DATA / "isbi2012_train_image.tif")[15:20]
truth = section_labels(tifffile.imread(DATA / "isbi2012_train_membranes.tif")[15:20])
v.add_image(image, name="isbi2012 15-19", scale=VOXEL_UM)
v.add_labels(truth, name="ground truth", visible=False, scale=VOXEL_UM)
_, widget = v.window.add_plugin_dock_widget("napari-spines", "Segmentation")
widget._image.value = v.layers["isbi2012 15-19"]
widget.run()
wait_while(lambda: widget.task.busy or widget.relabel_busy, 300)
widget.ground_truth._truth.value = v.layers["ground truth"]
wait_while(lambda: widget.metrics_busy, 60)
print(widget._status.value, widget.ground_truth._metrics.value, sep="\n")
v.layers["isbi2012 15-19 affinities"].visible = False
v.layers["isbi2012 15-19 segmentation"].opacity = 0.45
v.dims.set_current_step(0, 2)
save_window_screenshot(v, Path("docs/images/segmentation.png"))
v.close()
