"""separate_prompt: independent deep prompts per modality, the design DGL argues against (METHODS.md).

Visual (VPT-deep): `num_visual` learnable tokens per layer sit right after each frame's CLS token; before
every layer k >= 1 those slots are overwritten with layer k's tokens; every frame gets the same tokens. Text
(deep, CoOp-style): `num_text` learnable tokens per layer right after SOT, overwritten per layer the same way.
The video vector is CLIP4Clip's meanP over the frames' CLS embeddings (the base class's head).

`prompted_text_features` is also DGL's text path (it adds postfix prompts), so it is written for both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from vtrbench.methods.backbone import Backbone, text_width, visual_width
from vtrbench.methods.base import RetrievalMethod, causal_mask, eot_positions, image_tokens
from vtrbench.registry import METHODS

PROMPT_INIT_STD = 0.02


@dataclass
class SeparatePromptConfig:
    num_visual: int = 4  # Nv: prompt tokens per frame and layer
    num_text: int = 8  # Nt: prompt tokens per caption and layer
    prompt_layers: int | None = None  # prompt the first K_p layers of each tower; None: every layer

    def __post_init__(self) -> None:
        if self.num_visual < 1 or self.num_text < 1:
            raise ValueError("separate_prompt: num_visual and num_text must be at least 1")


def resolve_prompt_layers(requested: int | None, available: int, method: str) -> int:
    """K_p: how many layers, counted from the input, receive fresh prompts (None = all of them)."""
    if requested is None:
        return available
    if not 1 <= requested <= available:
        raise ValueError(f"{method}: prompt_layers={requested} must be between 1 and the {available} layers")
    return requested


def new_prompts(*shape: int) -> nn.Parameter:
    return nn.Parameter(torch.randn(*shape) * PROMPT_INIT_STD)


def prompted_text_features(
    clip: nn.Module,
    tokens: torch.Tensor,
    prefix: torch.Tensor,
    postfix: torch.Tensor,
    postfix_before_eot: bool = False,
    block_fn: Callable[[int, nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """[N, L] token ids -> [N, Dt]: the EOT token after ln_final of a text tower run with deep prompts.

    `prefix` [K_p, Np, Dt] goes right after SOT; `postfix` [K_p, Nq, Dt] (Nq may be 0) goes after the whole
    padded caption, or, with `postfix_before_eot`, between the caption's last word and its EOT token. Layer k
    < K_p sees layer k's prompts in those slots (fresh tokens, not the previous layer's outputs); layers from
    K_p on carry the previous outputs forward. Positional embeddings belong to the caption tokens only.
    `block_fn(layer, block, x, attn_mask)` runs one layer (default: the frozen block itself); methods that
    also change a layer's inside (STOP's adapters) pass their own.
    """
    num_tokens, length = tokens.shape
    num_prefix, num_postfix = prefix.shape[1], postfix.shape[1]
    prompt_layers = prefix.shape[0]
    device = tokens.device
    eot = eot_positions(tokens)

    # Where each caption token and each prompt lands in the longer sequence; captions differ in length, so
    # with the postfix before EOT every caption has its own layout (built once, applied by scatter).
    positions = torch.arange(length, device=device).expand(num_tokens, length)
    postfix_start = eot if postfix_before_eot else torch.full_like(eot, length)
    after_postfix = positions >= postfix_start[:, None]
    caption_slots = positions + num_prefix * (positions >= 1) + num_postfix * after_postfix
    prefix_slots = torch.arange(1, 1 + num_prefix, device=device).expand(num_tokens, num_prefix)
    postfix_slots = (postfix_start + num_prefix)[:, None] + torch.arange(num_postfix, device=device)
    prompt_slots = torch.cat([prefix_slots, postfix_slots], dim=1)

    def place(x: torch.Tensor, layer: int) -> torch.Tensor:
        prompts = torch.cat([prefix[layer], postfix[layer]]).to(x.dtype).expand(num_tokens, -1, -1)
        return x.scatter(1, prompt_slots[..., None].expand(-1, -1, x.shape[-1]), prompts)

    captions = clip.token_embedding(tokens) + clip.positional_embedding[:length]
    sequence_length = length + num_prefix + num_postfix
    x = captions.new_zeros(num_tokens, sequence_length, captions.shape[-1])
    x = place(x.scatter(1, caption_slots[..., None].expand(-1, -1, x.shape[-1]), captions), 0)
    mask = causal_mask(sequence_length, device, x.dtype)
    for layer, block in enumerate(clip.transformer.resblocks):
        if 1 <= layer < prompt_layers:
            x = place(x, layer)
        x = block(x, attn_mask=mask) if block_fn is None else block_fn(layer, block, x, mask)
    x = clip.ln_final(x)
    eot_slots = caption_slots.gather(1, eot[:, None]).squeeze(1)
    return x[torch.arange(num_tokens, device=device), eot_slots]


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
