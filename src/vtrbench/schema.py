"""What a run is called and what its files hold: shared by the harness, which writes them, and the reports,
which read them (no torch here)."""

from __future__ import annotations


def method_label(method: str, variant: str | None) -> str:
    """`method.variant`, or the method alone: how a run's method is named in folders, logs and reports."""
    return f"{method}.{variant}" if variant else method
