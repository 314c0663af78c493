"""Retrieval methods, one file each, plus the open_clip backbone wrapper (backbone.py)."""
