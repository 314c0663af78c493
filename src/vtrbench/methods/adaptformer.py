"""adaptformer: AdaptFormer's parallel MLP adapter (Chen et al., NeurIPS 2022), VoP's "Adapter^FFN" baseline.

See docs/methods.md. VoP gives only "hidden 64, parallel to the FFN, both encoders"; the rest follows the
AdaptFormer repository's defaults. In every block of both towers, with x the input of LN2:
x += MLP(LN2 x) + scale * Up(Dropout(ReLU(Dn x))), scale 0.1. Dn (width -> 64) and Up (64 -> width) have
biases; there is no adapter LayerNorm. Dn starts kaiming-uniform(a=sqrt(5)), Up and both biases at zero, so
training starts at zero-shot CLIP. The video vector is CLIP4Clip's meanP (the base class's).

Dropout: the repository's blocks build the adapter with dropout 0.1 on the hidden activations, a value VoP
does not mention; it is the default here (`dropout`), and 0 turns it off. Besides the harness's protocol
(frame sampling, loss loop, AdamW, metrics), nothing else differs from the repository's adapter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from vtrbench.methods.backbone import Backbone, text_width, visual_width
from vtrbench.methods.base import RetrievalMethod
from vtrbench.registry import METHODS


@dataclass
class AdaptFormerConfig:
    bottleneck: int = 64  # Dn's output width
    scale: float = 0.1  # the adapter's output multiplier (the repository's `ffn_adapter_scalar`)
    dropout: float = 0.1  # on the hidden activations, as the repository's blocks set it

    def __post_init__(self) -> None:
        if self.bottleneck < 1 or not 0 <= self.dropout < 1 or not math.isfinite(self.scale):
            raise ValueError(f"adaptformer: bottleneck must be >= 1, dropout in [0, 1) and scale finite, got "
                             f"bottleneck={self.bottleneck}, dropout={self.dropout}, scale={self.scale}")


class ParallelAdapter(nn.Module):
    def __init__(self, width: int, cfg: AdaptFormerConfig):
        super().__init__()
        self.down = nn.Linear(width, cfg.bottleneck)  # PyTorch's init: kaiming-uniform(a=sqrt(5))
        nn.init.zeros_(self.down.bias)
        self.up = nn.Linear(cfg.bottleneck, width)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)
        self.dropout = nn.Dropout(cfg.dropout)
        self.scale = cfg.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * self.up(self.dropout(torch.relu(self.down(x))))


@METHODS.register("adaptformer")
class AdaptFormer(RetrievalMethod):
    Config = AdaptFormerConfig

    def __init__(self, backbone: Backbone, config: AdaptFormerConfig | None = None):
        super().__init__(backbone, config)
        visual_blocks, text_blocks = self.clip.visual.transformer.resblocks, self.clip.transformer.resblocks
        self.visual_adapters = nn.ModuleList(
            ParallelAdapter(visual_width(self.clip), self.config) for _ in visual_blocks)
        self.text_adapters = nn.ModuleList(ParallelAdapter(text_width(self.clip), self.config) for _ in text_blocks)

    def text_block(self, layer: int, block: nn.Module, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        x = x + block.ls_1(block.attention(block.ln_1(x), attn_mask=attn_mask))
        return x + block.ls_2(block.mlp(block.ln_2(x))) + self.text_adapters[layer](x)

    def visual_block(self, layer: int, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        x = x + block.ls_1(block.attention(block.ln_1(x)))
        return x + block.ls_2(block.mlp(block.ln_2(x))) + self.visual_adapters[layer](x)
