"""Tuned-parameter counting: one function for every method (docs/protocol.md, "Tuned parameters")."""

from __future__ import annotations

import torch
from torch import nn


def tuned_parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter that trains, by name: what a method's checkpoint holds."""
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def count_parameters(model: nn.Module, backbone_elements: int) -> dict[str, float]:
    """`tuned` = elements with requires_grad in the whole retrieval model; `backbone` = elements of the
    pretrained backbone alone (the denominator); `tuned_pct` = 100 * tuned / backbone."""
    tuned = sum(p.numel() for p in tuned_parameters(model).values())
    return {
        "tuned": int(tuned),
        "backbone": int(backbone_elements),
        "tuned_pct": 100.0 * tuned / backbone_elements,
    }
