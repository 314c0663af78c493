"""lora: low-rank updates on both towers' attention and MLP projections, through the `peft` library.

Targets (`targets`, module names inside each residual block of both towers):
- `attn`: the whole nn.MultiheadAttention, through peft's MultiheadAttention LoRA layer, which adds one
  low-rank update to the fused q/k/v `in_proj` (not an nn.Linear) and one to `out_proj`. Targeting
  `attn.out_proj` alone would do nothing: nn.MultiheadAttention reads that layer's weight directly and never
  calls its forward, so peft's wrapper would be bypassed; such a target is refused.
- `mlp.c_fc`, `mlp.c_proj`: the MLP's two nn.Linear layers.
peft freezes everything but the LoRA matrices; B starts at zero, so the method starts as zero-shot CLIP.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from vtrbench.methods.backbone import Backbone
from vtrbench.methods.base import RetrievalMethod
from vtrbench.registry import METHODS

SUPPORTED_TARGETS = ("attn", "mlp.c_fc", "mlp.c_proj")


@dataclass
class LoRAConfig:
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    targets: list[str] = field(default_factory=lambda: list(SUPPORTED_TARGETS))

    def __post_init__(self) -> None:
        unknown = [t for t in self.targets if t not in SUPPORTED_TARGETS]
        if unknown or not self.targets:
            raise ValueError(
                f"lora.targets={list(self.targets)}: choose from {', '.join(SUPPORTED_TARGETS)} "
                f"(attn covers in_proj and out_proj; out_proj alone is bypassed by nn.MultiheadAttention)"
            )
        if self.rank < 1:
            raise ValueError("lora.rank must be at least 1")
        if not (0 <= self.dropout < 1 and math.isfinite(self.alpha) and self.alpha > 0):
            raise ValueError(f"lora: dropout must be in [0, 1) and alpha a finite number > 0, got "
                             f"dropout={self.dropout}, alpha={self.alpha}")


@METHODS.register("lora")
class LoRA(RetrievalMethod):
    Config = LoRAConfig

    def __init__(self, backbone: Backbone, config: LoRAConfig | None = None):
        super().__init__(backbone, config)
        # imported here: peft pulls in transformers, which every other method and `vtrbench list` can skip
        from peft import LoraConfig as PeftLoraConfig
        from peft import inject_adapter_in_model

        cfg = self.config
        # peft matches a string target against full module names: every block of both towers
        names = "|".join(re.escape(t) for t in cfg.targets)
        peft_config = PeftLoraConfig(
            r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, bias="none",
            target_modules=rf".*transformer\.resblocks\.\d+\.({names})",
        )
        inject_adapter_in_model(peft_config, self.clip)
