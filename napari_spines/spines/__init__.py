"""Spine detection: heatmap peaks, scoring against annotations, and (later) tracking."""
