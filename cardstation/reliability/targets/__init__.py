"""Fuzz targets: one module per component, each defining TARGET (a fuzz.Target)."""
