"""Annotation formats (one file each), shared video decoding and sampling, and the offline generator."""
