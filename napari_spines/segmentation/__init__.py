"""EM neuron segmentation: affinities → fragments → agglomeration → proofreading."""
