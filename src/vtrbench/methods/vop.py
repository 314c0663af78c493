"""vop: VoP, Text-Video Co-operative Prompt Tuning (Huang et al., CVPR 2023), as docs/methods.md gives it.

The backbone stays frozen. Every variant has deep text prompts (8 per layer of the text tower, N(0, 0.02)) and
deep visual prompts; `variant` chooses the video prompts:

- `base` (the paper's plain "VoP"): 8 prompts per layer of the visual tower, right after each frame's CLS,
  the same for every frame. Before layer k >= 1 the slots are refilled with layer k's own prompts.
- `P` (position-specific): of the 8 slots, 4 hold generic prompts and 4 hold prompts of the frame's position
  j (one set per layer and frame slot, sized by `num_frames`).
- `C` (context-specific): 4 generic prompts and 4 generated ones. At every prompted layer the frame CLS
  tokens of that layer's input go through the CMM, a one-layer BiLSTM (hidden width Dv per direction), and an
  FC 2Dv -> 4Dv gives each frame its 4 tokens. One CMM and FC serve all layers; the CLS itself is not changed.
- `F` (function-specific): layers 1..K_s run as `base`; before layer K_s + 1 the frame prompts are dropped and
  each clip becomes one sequence [T CLS ; 8 video-level prompts ; T x P patches] that the remaining frozen
  layers process whole, with fresh video-level prompts per layer. The frame embeddings are the T CLS tokens
  after the last layer. K_s is `split_layer` (None: round(2/3 of the depth), 8 of ViT-B/32's 12).
- `F+P` and `F+C` (the default): P's or C's prompts in layers 1..K_s, the F scheme after.

Video vector: the mean over the real frames of the L2-normalised frame embeddings (CLS -> ln_post -> proj).

Choices where the sources are silent or where the harness differs (docs/methods.md, "vop"):
- Slot order: [CLS, 4 generic, 4 specific (P or C), patches]; neither paper nor code says.
- First layer: the official code inserts the first layer's visual prompts before ln_pre, so they pass ln_pre
  (and get no positional embedding); that is kept, for generated prompts too. The CMM reads the CLS tokens as
  the layer receives them, i.e. after ln_pre at layer 1 (unstated); there every frame's CLS is the same
  vector (class embedding + position 0), so layer 1's generated prompts depend only on the frame's position
  and the clip's length.
- Padded frames: only real frames are encoded. The CMM runs on packed sequences of each clip's real frames
  (`pack_padded_sequence`), so its backward direction starts at the last real frame and no padded slot
  reaches a real one. In the F layers padded frames are masked out of every key.
- Frame embedding (F variants): RIVALS reads a trainable T x Dv frame position embedding before layer K_s + 1,
  but the published counts of F, F+P and F+C leave it out, and the harness counts every element that trains.
  `frame_embedding: none` (default) has none, so the counts are the published ones; `learned` adds it
  (N(0, 0.02), init unstated) and counts its T x Dv elements.
- Text: the harness tokenises to `data.max_words` and reads the text vector at EOT (the paper's rule). The 8
  prompts of a layer are 4 right after SOT and 4 after the caption, through `prompted_text_features`;
  `text_suffix: after_padding` (default) puts those 4 behind the padding, where CLIP's causal mask hides them
  from EOT, as the official code's slots just before the last of 77 are hidden from its read-out for every
  caption under 64 tokens; `before_eot` puts them between the last word and EOT, where they take effect.
  Captions keep their own positional embeddings and prompts get none (the official code adds the 77
  embeddings after inserting the prompts, shifting the caption's by 4), and the vector is read at EOT, not
  4 slots past it as the official code's argmax + 8 does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from vtrbench.methods.backbone import Backbone, text_width, visual_width
from vtrbench.methods.base import RetrievalMethod, image_tokens
from vtrbench.methods.building_blocks import (
    check_global_local_compatible,
    merge_heads,
    new_prompts,
    prompted_text_features,
    split_heads,
)
from vtrbench.registry import METHODS

VARIANTS = ("base", "P", "C", "F", "F+P", "F+C")
FRAME_EMBEDDINGS = ("none", "learned")
TEXT_SUFFIXES = ("after_padding", "before_eot")
NUM_PROMPTS = 8  # per layer: visual prompts per frame (or per clip in the F layers), and text prompts
NUM_SPECIFIC = 4  # of a frame's 8 visual prompts, how many P and C make frame-specific


@dataclass
class VoPConfig:
    variant: str = "F+C"  # one of VARIANTS; see the module docstring
    split_layer: int | None = None  # K_s of the F variants; None: round(2/3 of the visual depth)
    # Frame slots the position-specific prompts (P) and a learned frame embedding have rows for: clips may
    # have at most this many (data.num_frames).
    num_frames: int = 12
    frame_embedding: str = "none"  # F variants: "none" (the published counts) or "learned"
    text_suffix: str = "after_padding"  # or "before_eot"; see the module docstring

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("variant", self.variant, VARIANTS),
            ("frame_embedding", self.frame_embedding, FRAME_EMBEDDINGS),
            ("text_suffix", self.text_suffix, TEXT_SUFFIXES),
        ):
            if value not in allowed:
                raise ValueError(f"vop.{name}={value!r}: expected one of {', '.join(allowed)}")
        if self.num_frames < 1:
            raise ValueError(f"vop.num_frames={self.num_frames}: must be at least 1")
        if not self.variant.startswith("F"):
            if self.split_layer is not None:
                raise ValueError(f"vop.split_layer applies to the F variants only, not variant={self.variant}")
            if self.frame_embedding != "none":
                raise ValueError(f"vop.frame_embedding applies to the F variants only, not variant={self.variant}")

    @property
    def frame_prompts(self) -> str:
        """What layers 1..K_s use: `base`, `P` or `C`."""
        return self.variant.removeprefix("F").removeprefix("+") or "base"

    @property
    def function_specific(self) -> bool:
        return self.variant.startswith("F")


def resolve_split_layer(requested: int | None, depth: int) -> int:
    """K_s: the F variants run layers 1..K_s per frame and the rest per clip."""
    split = round(2 * depth / 3) if requested is None else requested
    if not 1 <= split <= depth - 1:
        raise ValueError(
            f"vop.split_layer={split}: must be between 1 and {depth - 1} (the visual tower has {depth} layers)"
        )
    return split


class ContextPromptGenerator(nn.Module):
    """VoP^C's CMM + FC: a one-layer BiLSTM over a clip's frame CLS tokens, then Dv*2 -> num_tokens*Dv."""

    def __init__(self, dim: int, num_tokens: int):
        super().__init__()
        self.num_tokens = num_tokens
        self.cmm = nn.LSTM(dim, dim, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(2 * dim, num_tokens * dim)

    def forward(self, cls: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """cls [N, Dv]: the real frames' CLS tokens in mask order; mask [B, T] -> [N, num_tokens, Dv].

        Each clip's real frames form one packed sequence in time order, so the BiLSTM sees only them. It runs
        in float32 whatever the autocast: CUDA's LSTM kernels do not all take bfloat16.
        """
        batch, num_frames = mask.shape
        clip_index = torch.arange(batch, device=mask.device)[:, None].expand(batch, num_frames)[mask]
        rank = (mask.cumsum(dim=1) - 1)[mask]  # each real frame's place among its clip's real frames
        compact = cls.new_zeros(batch, num_frames, cls.shape[-1]).index_put((clip_index, rank), cls)
        lengths = mask.sum(dim=1).cpu()
        with torch.autocast(cls.device.type, enabled=False):
            packed = pack_padded_sequence(compact.float(), lengths, batch_first=True, enforce_sorted=False)
            context, _ = pad_packed_sequence(self.cmm(packed)[0], batch_first=True, total_length=num_frames)
            return self.fc(context[clip_index, rank]).unflatten(-1, (self.num_tokens, -1))


def video_block(block: nn.Module, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """One frozen ViT layer over [B, L, D] whole-clip sequences; keys where `valid` [B, L] is False are masked.

    The layer's own ln_1, attention, ln_2 and MLP, as open_clip's block runs them, with a per-clip key mask.
    """
    attn = block.attn
    heads = attn.num_heads
    q, k, v = F.linear(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    out = F.scaled_dot_product_attention(
        split_heads(q, heads), split_heads(k, heads), split_heads(v, heads), attn_mask=valid[:, None, None, :],
        dropout_p=attn.dropout if block.training else 0.0,
    )
    x = x + block.ls_1(attn.out_proj(merge_heads(out)))
    return x + block.ls_2(block.mlp(block.ln_2(x)))


@METHODS.register("vop")
class VoP(RetrievalMethod):
    Config = VoPConfig

    def __init__(self, backbone: Backbone, config: VoPConfig | None = None):
        super().__init__(backbone, config)
        cfg: Any = self.config
        blocks = self.clip.visual.transformer.resblocks
        depth = len(blocks)
        dv, dt = visual_width(self.clip), text_width(self.clip)
        self.text_prompts = new_prompts(len(self.clip.transformer.resblocks), NUM_PROMPTS, dt)
        self.split_layer = depth
        if cfg.function_specific:
            check_global_local_compatible(blocks, "vop's F variants")
            self.split_layer = resolve_split_layer(cfg.split_layer, depth)
            self.video_prompts = new_prompts(depth - self.split_layer, NUM_PROMPTS, dv)
            if cfg.frame_embedding == "learned":
                self.frame_embedding = new_prompts(cfg.num_frames, dv)
        specific = 0 if cfg.frame_prompts == "base" else NUM_SPECIFIC
        self.generic_prompts = new_prompts(self.split_layer, NUM_PROMPTS - specific, dv)
        if cfg.frame_prompts == "P":
            self.position_prompts = new_prompts(self.split_layer, cfg.num_frames, NUM_SPECIFIC, dv)
        if cfg.frame_prompts == "C":
            self.context_prompts = ContextPromptGenerator(dv, NUM_SPECIFIC)

    # ---- text -------------------------------------------------------------------------------------------
    def text_features(self, tokens: torch.Tensor) -> torch.Tensor:
        half = NUM_PROMPTS // 2
        return prompted_text_features(self.clip, tokens, self.text_prompts[:, :half], self.text_prompts[:, half:],
                                      postfix_before_eot=self.config.text_suffix == "before_eot")

    # ---- video ------------------------------------------------------------------------------------------
    def frame_prompts(self, layer: int, cls: torch.Tensor, mask: torch.Tensor,
                      positions: torch.Tensor) -> torch.Tensor:
        """Layer `layer`'s prompts for the N real frames: [N, 8, Dv], generic first, then specific."""
        prompts = self.generic_prompts[layer].expand(cls.shape[0], -1, -1)
        kind = self.config.frame_prompts
        if kind == "P":
            prompts = torch.cat([prompts, self.position_prompts[layer][positions]], dim=1)
        elif kind == "C":
            prompts = torch.cat([prompts, self.context_prompts(cls, mask)], dim=1)
        return prompts.to(cls.dtype)

    def check_frame_slots(self, num_frames: int) -> None:
        cfg: Any = self.config
        sized = cfg.frame_prompts == "P" or (cfg.function_specific and cfg.frame_embedding == "learned")
        if sized and num_frames > cfg.num_frames:
            raise ValueError(
                f"vop variant={cfg.variant} has per-position parameters for vop.num_frames={cfg.num_frames} "
                f"frame slots, but the clips have {num_frames} (data.num_frames); set both to the same value"
            )

    def video_features(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, T, C, H, W], [B, T] -> [B, T, Dv]: each frame's CLS after ln_post; padded frames stay zero."""
        batch, num_frames = mask.shape
        self.check_frame_slots(num_frames)
        visual = self.clip.visual
        blocks = visual.transformer.resblocks
        positions = torch.arange(num_frames, device=mask.device).expand(batch, num_frames)[mask]
        x = image_tokens(visual, frames[mask])  # [N, 1 + P, Dv]: the real frames only
        for layer in range(self.split_layer):
            prompts = self.frame_prompts(layer, x[:, 0], mask, positions)
            if layer == 0:  # inserted before ln_pre in the official code, so the first prompts pass it too
                x = torch.cat([x[:, :1], visual.ln_pre(prompts), x[:, 1:]], dim=1)
            else:
                x = torch.cat([x[:, :1], prompts, x[:, 1 + NUM_PROMPTS:]], dim=1)
            x = blocks[layer](x)
        if self.split_layer == len(blocks):
            cls = visual.ln_post(x[:, 0])
            return cls.new_zeros(batch, num_frames, cls.shape[-1]).index_put((mask,), cls)
        return self.clip_layers(torch.cat([x[:, :1], x[:, 1 + NUM_PROMPTS:]], dim=1), mask, positions)

    def clip_layers(self, frame_tokens: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """The F scheme: frame_tokens [N, 1 + P, Dv] of the real frames -> [B, T, Dv] CLS after ln_post."""
        visual = self.clip.visual
        batch, num_frames = mask.shape
        if hasattr(self, "frame_embedding"):
            frame_tokens = frame_tokens + self.frame_embedding[positions].to(frame_tokens.dtype)[:, None]
        num_patches, dim = frame_tokens.shape[1] - 1, frame_tokens.shape[-1]
        tokens = frame_tokens.new_zeros(batch, num_frames, 1 + num_patches, dim).index_put((mask,), frame_tokens)
        valid = torch.cat([mask, mask.new_ones(batch, NUM_PROMPTS), mask.repeat_interleave(num_patches, dim=1)],
                          dim=1)
        cls, patches = tokens[:, :, 0], tokens[:, :, 1:].flatten(1, 2)
        for layer, block in enumerate(visual.transformer.resblocks[self.split_layer:]):
            prompts = self.video_prompts[layer].to(cls.dtype).expand(batch, -1, -1)
            x = video_block(block, torch.cat([cls, prompts, patches], dim=1), valid)
            cls, patches = x[:, :num_frames], x[:, num_frames + NUM_PROMPTS:]
        return visual.ln_post(cls) * mask[..., None].to(cls.dtype)
