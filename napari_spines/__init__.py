"""Dendritic spine detection and EM neuron segmentation for napari.

Importing this package is cheap: it must not import napari, Qt, torch or onnxruntime.
"""

__version__ = "0.1.0"
