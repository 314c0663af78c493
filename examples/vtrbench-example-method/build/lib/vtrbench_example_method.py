"""example_adapter: a residual MLP adapter on CLIP's projected text and frame embeddings.

A complete vtrbench method outside the package. The backbone stays frozen, so the trunk (`text_features`,
`video_features` of the base class) is cached by the harness and only the two small adapters train on it:
`frozen_trunk = True`. The adapters' last layers start at zero, so training starts from zero-shot CLIP.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vtrbench.methods.backbone import Backbone
from vtrbench.methods.base import RetrievalMethod, mean_pool


@dataclass
class ExampleAdapterConfig:
    hidden: int = 64  # width of each adapter's bottleneck


class ResidualAdapter(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.down = nn.Linear(dim, hidden)
        self.up = nn.Linear(hidden, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(F.gelu(self.down(x)))


class ExampleAdapter(RetrievalMethod):
    Config = ExampleAdapterConfig
    frozen_trunk = True

    def __init__(self, backbone: Backbone, config: ExampleAdapterConfig | None = None):
        super().__init__(backbone, config)
        dim = self.clip.text_projection.shape[1]
        self.text_adapter = ResidualAdapter(dim, self.config.hidden)
        self.video_adapter = ResidualAdapter(dim, self.config.hidden)

    def text_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.text_adapter(features @ self.clip.text_projection)

    def video_head(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        frames = self.video_adapter(features @ self.clip.visual.proj)
        return mean_pool(F.normalize(frames, dim=-1), mask)
