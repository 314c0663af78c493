"""separate_prompt: independent deep prompts per modality, the design DGL argues against (docs/methods.md).

Visual (VPT-deep): `num_visual` learnable tokens per layer sit right after each frame's CLS token; before
every layer k >= 1 those slots are overwritten with layer k's tokens; every frame gets the same tokens. Text
(deep, CoOp-style): `num_text` learnable tokens per layer right after SOT, overwritten per layer the same way.
The video vector is CLIP4Clip's meanP over the frames' CLS embeddings (the base class's head).

The text path (`prompted_text_features`) and the prompt initialisation are shared with DGL and VoP
(`building_blocks.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from vtrbench.methods.backbone import Backbone, text_width, visual_width
from vtrbench.methods.base import RetrievalMethod, image_tokens
from vtrbench.methods.building_blocks import new_prompts, prompted_text_features, resolve_prompt_layers
from vtrbench.registry import METHODS


@dataclass
class SeparatePromptConfig:
    num_visual: int = 4  # Nv: prompt tokens per frame and layer
    num_text: int = 8  # Nt: prompt tokens per caption and layer
    prompt_layers: int | None = None  # prompt the first K_p layers of each tower; None: every layer

    def __post_init__(self) -> None:
        if self.num_visual < 1 or self.num_text < 1:
            raise ValueError("separate_prompt: num_visual and num_text must be at least 1")


@METHODS.register("separate_prompt")
class SeparatePrompt(RetrievalMethod):
    Config = SeparatePromptConfig

    def __init__(self, backbone: Backbone, config: SeparatePromptConfig | None = None):
        super().__init__(backbone, config)
        cfg: Any = self.config
        visual_layers = len(self.clip.visual.transformer.resblocks)
        text_layers = len(self.clip.transformer.resblocks)
        visual_depth = resolve_prompt_layers(cfg.prompt_layers, visual_layers, "separate_prompt")
        text_depth = resolve_prompt_layers(cfg.prompt_layers, text_layers, "separate_prompt")
        self.visual_prompts = new_prompts(visual_depth, cfg.num_visual, visual_width(self.clip))
        self.text_prompts = new_prompts(text_depth, cfg.num_text, text_width(self.clip))

    def text_features(self, tokens: torch.Tensor) -> torch.Tensor:
        no_postfix = self.text_prompts.new_zeros(self.text_prompts.shape[0], 0, self.text_prompts.shape[-1])
        return prompted_text_features(self.clip, tokens, self.text_prompts, no_postfix)

    def frame_features(self, images: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] -> [N, Dv]: CLS after ln_post, each image run with the deep visual prompts."""
        visual = self.clip.visual
        x = image_tokens(visual, images)
        num_images, num_prompts = x.shape[0], self.visual_prompts.shape[1]
        for layer, block in enumerate(visual.transformer.resblocks):
            if layer < self.visual_prompts.shape[0]:
                prompts = self.visual_prompts[layer].to(x.dtype).expand(num_images, -1, -1)
                # layer 0 inserts the slots after CLS; later prompted layers replace what is in them
                kept_from = 1 if layer == 0 else 1 + num_prompts
                x = torch.cat([x[:, :1], prompts, x[:, kept_from:]], dim=1)
            x = block(x)
        return visual.ln_post(x[:, 0])
