"""Screenshot for docs/images/restoration-em.png: the Restore widget on crappified ISBI sections.

ISBI 2012 sections 15–19 (never seen in training) are crappified with the ``em-4x`` preset, as
``napari-spines crappify`` does, and restored by restore-em in the real widget. The picture shows
napari in grid mode: the crappified input (16 nm pixels), the restored layer (4 nm) and the
clean sections.

Run:  xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python \
          scripts/screenshot_restoration.py ISBI_FOLDER [MODEL]
"""

import sys
from pathlib import Path

import napari
import tifffile

from napari_spines._widgets._app import save_window_screenshot, wait_while
from napari_spines.restoration.crappify import preset

folder = Path(sys.argv[1])
model = sys.argv[2] if len(sys.argv) > 2 else None
clean = tifffile.imread(folder / "isbi2012_train_image.tif")[15:20]
crappy = preset("em-4x")(clean, seed=2)
v = napari.Viewer(show=True)
v.add_image(clean, name="clean (4 nm)", scale=(0.05, 0.004, 0.004))
layer = v.add_image(crappy, name="crappified (16 nm)", scale=(0.05, 0.016, 0.016))
_, widget = v.window.add_plugin_dock_widget("napari-spines", "Restore")
widget._image.value = layer
if model:
    widget._model_path.value = model
widget.run()
wait_while(lambda: widget.task.busy, 300)
v.layers.move(v.layers.index("clean (4 nm)"), len(v.layers))  # grid order: bottom layer first
v.grid.enabled = True
v.grid.shape = (1, 3)
v.dims.set_current_step(0, 2)
v.reset_view()
v.camera.zoom *= 2.5
wait_while(lambda: True, 8)  # the "restored by" notification fades first
save_window_screenshot(v, Path("docs/images/restoration-em.png"))
v.close()
