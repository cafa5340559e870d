"""napari dock widgets: thin Qt shells that gather parameters and call the core."""
