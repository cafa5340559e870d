"""Readers and writers: image volumes with voxel size, label TIFFs, point tables."""

from napari_spines.io.labels_tiff import write_labels_tiff
from napari_spines.io.layers import volume_to_layer_data
from napari_spines.io.points_csv import read_points_csv, write_points_csv
from napari_spines.io.read import read_volumes, reader_for
from napari_spines.io.volume import Volume, VolumeReadError

__all__ = [
    "Volume",
    "VolumeReadError",
    "read_points_csv",
    "read_volumes",
    "reader_for",
    "volume_to_layer_data",
    "write_labels_tiff",
    "write_points_csv",
]
