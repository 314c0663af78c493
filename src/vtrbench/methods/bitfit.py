"""bitfit: only the backbone's bias terms train (BitFit, Ben Zaken et al. 2022; VoP's "Bias" row).

Bias terms are every parameter named `*bias`: the attention in/out projections, the MLP layers and, by
default, the LayerNorms (BitFit tunes those too); `include_layernorm=false` keeps LayerNorm biases frozen.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from vtrbench.methods.backbone import Backbone
from vtrbench.methods.base import RetrievalMethod
from vtrbench.registry import METHODS


@dataclass
class BitFitConfig:
    include_layernorm: bool = True


@METHODS.register("bitfit")
class BitFit(RetrievalMethod):
    Config = BitFitConfig

    def __init__(self, backbone: Backbone, config: BitFitConfig | None = None):
        super().__init__(backbone, config)
        for module in self.clip.modules():
            if isinstance(module, nn.LayerNorm) and not self.config.include_layernorm:
                continue
            for name, param in module.named_parameters(recurse=False):
                if name.endswith("bias") and param is not None:
                    param.requires_grad_(True)
