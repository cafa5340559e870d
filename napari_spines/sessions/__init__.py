"""Imaging sessions of one dendrite: registration, linking, dynamics, detection from the last."""
