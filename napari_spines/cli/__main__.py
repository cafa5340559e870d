"""``python -m napari_spines.cli``: the ``napari-spines`` command."""

import sys

from napari_spines.cli import main

sys.exit(main())
