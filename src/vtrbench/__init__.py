"""vtrbench: parameter-efficient text-video retrieval methods, measured under one protocol."""

__version__ = "0.1.0"
