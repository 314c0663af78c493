"""dgl: Dynamic Global-Local prompt tuning (Yang et al., AAAI 2024), as docs/methods.md defines it.

The backbone stays frozen. Trainable: `num_global` global visual prompts G (one set per video, carried
through every layer), and a latent space that produces, for each of the first K_p layers, the local frame
prompts (`num_local` per frame, after each frame's CLS) and the text prompts (`num_text`: half a prefix after
SOT, half a postfix). In every ViT layer, with that layer's own frozen weights, the tokens of frame t attend
to [G ; frame t] (local view) and G attends to [G ; every real frame] (global view).

Video vector (`visual_output_type`, after ln_post and the visual projection): `global_prompt0` (the first
global token, the default), `average_global_prompt`, `average_frame_cls_token` (real frames only) or
`average_global_prompt_and_frame_cls_token` (the global tokens and the real frames' CLS tokens together).

The official code (knightyxp/DGL, `modules/clip.py`) is the reference for the arithmetic. Every known
difference, why, and the option that restores the official behaviour where one can:
- Averages (`average`): `plain` (default, official) takes the plain mean of the projected tokens;
  `normalized` L2-normalises each projected token first, as CLIP4Clip's meanP does with frames.
- Initialisation (`init`): `official` (default): G and the linear latent Z uniform in
  +-sqrt(6 / (3 * patch_h * patch_w + Dv)) (VPT's rule; +-0.0395 on ViT-B/32, where the official code writes
  Dv = 768 as a constant for G), the transformer latent's table E ~ N(0, 1) (nn.Embedding's default; the
  official code never re-initialises it), the latent block and MLPs as PyTorch initialises them. `normal`:
  N(0, 0.02) for G, Z and E (this package's earlier rule; E is then 50 times smaller).
- Padded frames: the official loader fills a clip shorter than the frame count by repeating its last frame,
  and DGL then treats every slot as real (G attends to all of them; the frame average counts the repeats).
  Here the harness pads and masks (docs/protocol.md): padded frames are left out of G's keys and of the frame
  averages. Intended, no option: repeating a frame weights it more in the video vector. Clips with at least
  `data.num_frames` frames are computed identically.
- Postfix placement (`postfix`): `after_padding` (default, official) puts the text postfix after the padded
  caption, behind EOT, where CLIP's causal mask never lets EOT see it: it has no effect on the text vector.
  `before_eot` puts it between the caption's last word and EOT, so EOT attends to it.
- Prompt depth below the layer count (`prompt_layers` < 12 on ViT-B/32): the official code crashes (its
  visual loop indexes a layer's prompts past K_p; its text loop would also stop after K_p layers). Here the
  layers from K_p on run unprompted on what the prompted layers produced, in both towers, all layers.
- Ng != Nl (`num_global` != `num_local`): the official code crashes (it sizes the local prompt slots, and
  reads the linear latent, with Ng, and takes the first 4 output tokens as the global ones). Here they are
  independent.
- Not offered: the official `global-local-feature` output (a token sequence, not one vector).
- Harness-wide, not DGL's (docs/protocol.md): AdamW leaves every 1-D parameter (biases and LayerNorm gains) out of
  weight decay, where the official optimiser exempts only names containing `bias`, so it decays the
  LayerNorm gains of the transformer latent's block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from vtrbench.methods.backbone import Backbone, text_width, visual_width
from vtrbench.methods.base import RetrievalMethod, image_tokens, mean_pool
from vtrbench.methods.building_blocks import (
    check_global_local_compatible,
    merge_heads,
    new_prompts,
    prompted_text_features,
    resolve_prompt_layers,
    split_heads,
)
from vtrbench.registry import METHODS

LATENTS = ("linear", "transformer")
POSTFIX_PLACEMENTS = ("after_padding", "before_eot")
AVERAGES = ("plain", "normalized")
INITS = ("official", "normal")
VISUAL_OUTPUT_TYPES = (
    "global_prompt0",
    "average_global_prompt",
    "average_frame_cls_token",
    "average_global_prompt_and_frame_cls_token",
)


@dataclass
class DGLConfig:
    latent: str = "linear"  # "linear" (DGL-Linear) or "transformer" (DGL-Transformer)
    num_global: int = 4  # Ng
    num_local: int = 4  # Nl, per frame and layer
    num_text: int = 8  # Nt, per layer: Nt/2 prefix + Nt/2 postfix; the linear latent needs Nt = 2 * Nl
    prompt_layers: int | None = None  # K_p; None: every layer
    # Frames the transformer latent's table has rows for; clips must have exactly this many frame slots
    # (data.num_frames). Unused by the linear latent, whose local prompts are shared by all frames.
    num_frames: int = 12
    postfix: str = "after_padding"  # or "before_eot"; see the module docstring
    visual_output_type: str = "global_prompt0"
    average: str = "plain"  # the average_* outputs: "plain" (official) or "normalized" (L2 per token first)
    init: str = "official"  # "official" (uniform G and Z, N(0, 1) table) or "normal" (N(0, 0.02) for all)

    # the section these options live in (`dgl.latent=...`), named in every error; STOP's options extend these
    section: ClassVar[str] = "dgl"

    def __post_init__(self) -> None:
        section = self.section
        for name, value, allowed in (
            ("latent", self.latent, LATENTS),
            ("postfix", self.postfix, POSTFIX_PLACEMENTS),
            ("visual_output_type", self.visual_output_type, VISUAL_OUTPUT_TYPES),
            ("average", self.average, AVERAGES),
            ("init", self.init, INITS),
        ):
            if value not in allowed:
                raise ValueError(f"{section}.{name}={value!r}: expected one of {', '.join(allowed)}")
        if min(self.num_global, self.num_local, self.num_text, self.num_frames) < 1:
            raise ValueError(f"{section}: num_global, num_local, num_text and num_frames must be at least 1")
        if self.num_text % 2:
            raise ValueError(f"{section}.num_text={self.num_text}: must be even (half prefix, half postfix)")
        if self.latent == "linear" and self.num_text != 2 * self.num_local:
            raise ValueError(
                f"{section} latent=linear maps each local prompt to one prefix and one postfix token, so "
                f"num_text must be 2 * num_local = {2 * self.num_local}, not {self.num_text}"
            )
        if self.average == "normalized" and not self.visual_output_type.startswith("average_"):
            raise ValueError(f"{section}.average=normalized: it applies to the average_* video outputs only; "
                             f"{section}.visual_output_type={self.visual_output_type} reads one token")


class LayerPrompts(NamedTuple):
    """Every prompted layer's prompts, computed once per forward (they depend on no input)."""

    local: torch.Tensor  # [K_p, T or 1, Nl, Dv]: per frame (transformer) or shared by all frames (linear)
    prefix: torch.Tensor  # [K_p, Nt/2, Dt]
    postfix: torch.Tensor  # [K_p, Nt/2, Dt]


class LinearLatent(nn.Module):
    """Z (Nl, K_p, Dv); layer k: local prompts Z[:, k], text prompts [A Z[:, k] + a ; B Z[:, k] + b]."""

    def __init__(self, num_local: int, prompt_layers: int, visual_dim: int, text_dim: int):
        super().__init__()
        self.latent = new_prompts(num_local, prompt_layers, visual_dim)
        self.to_prefix = nn.Linear(visual_dim, text_dim)
        self.to_postfix = nn.Linear(visual_dim, text_dim)

    def forward(self) -> LayerPrompts:
        per_layer = self.latent.transpose(0, 1)  # [K_p, Nl, Dv]
        return LayerPrompts(per_layer.unsqueeze(1), self.to_prefix(per_layer), self.to_postfix(per_layer))


class TransformerLatent(nn.Module):
    """Table E of M = Nt + Nl*T rows x K_p*Dv; each layer's M tokens go through one shared pre-LN block.

    The first Nt outputs pass an MLP Dv -> 2Dv -> Dt and become the layer's text prompts; the remaining Nl*T
    become its local prompts, Nl per frame, so a layer's text and frame prompts are produced together.
    """

    def __init__(self, num_text: int, num_local: int, num_frames: int, prompt_layers: int, visual_dim: int,
                 text_dim: int):
        # open_clip is imported when a method is built, not when the registry lists it (a warm rerun)
        from open_clip.transformer import QuickGELU, ResidualAttentionBlock

        super().__init__()
        self.num_text, self.num_local, self.num_frames = num_text, num_local, num_frames
        self.prompt_layers = prompt_layers
        rows = num_text + num_local * num_frames
        self.table = new_prompts(rows, prompt_layers * visual_dim)
        self.block = ResidualAttentionBlock(visual_dim, max(1, visual_dim // 64), act_layer=QuickGELU)
        self.to_text = nn.Sequential(
            nn.Linear(visual_dim, 2 * visual_dim), QuickGELU(), nn.Linear(2 * visual_dim, text_dim)
        )

    def forward(self) -> LayerPrompts:
        # [M, K_p * Dv] -> [K_p, M, Dv]: the prompted layers form the batch of the shared block
        tokens = self.table.view(self.table.shape[0], self.prompt_layers, -1).transpose(0, 1)
        out = self.block(tokens)
        text = self.to_text(out[:, : self.num_text])
        half = self.num_text // 2
        local = out[:, self.num_text :].reshape(self.prompt_layers, self.num_frames, self.num_local, -1)
        return LayerPrompts(local, text[:, :half], text[:, half:])


def vpt_uniform_bound(visual: nn.Module) -> float:
    """VPT's (and the official DGL's) prompt init bound: sqrt(6 / (3 * patch_h * patch_w + Dv)), the
    Xavier-uniform bound of a patch embedding of 3 * patch^2 inputs and Dv outputs (0.0395 on ViT-B/32)."""
    patch_h, patch_w = visual.conv1.kernel_size
    return math.sqrt(6.0 / (3 * patch_h * patch_w + visual.transformer.width))


def global_local_attention(
    attn: nn.MultiheadAttention, global_in: torch.Tensor, frames_in: torch.Tensor, mask: torch.Tensor,
    dropout: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The frozen attention of one layer over a clip, both views at once (inputs already through ln_1).

    global_in [B, Ng, D], frames_in [B, T, S, D], mask [B, T] (True = real frame). Frame t's tokens attend to
    [G ; frame t]; G attends to [G ; the tokens of every real frame] (padded frames are masked out of G's
    keys, so they never reach the video vector). Returns the attention outputs (after out_proj) of G and of
    the frames, shaped like the inputs.
    """
    batch, num_frames, frame_length, dim = frames_in.shape
    num_global, heads = global_in.shape[1], attn.num_heads
    q_g, k_g, v_g = F.linear(global_in, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    q_f, k_f, v_f = F.linear(frames_in, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)

    # local view: one attention per (clip, frame) over [G ; frame t], all of them as one batch
    def with_global(frame_part: torch.Tensor, global_part: torch.Tensor) -> torch.Tensor:
        shared = global_part.unsqueeze(1).expand(batch, num_frames, num_global, dim)
        return split_heads(torch.cat([shared, frame_part], dim=2).flatten(0, 1), heads)

    frames_out = F.scaled_dot_product_attention(
        split_heads(q_f.flatten(0, 1), heads), with_global(k_f, k_g), with_global(v_f, v_g), dropout_p=dropout
    )
    frames_out = merge_heads(frames_out).view(batch, num_frames, frame_length, dim)

    # global view: G over [G ; all frames' tokens], padded frames masked out of the keys
    frame_keys_valid = mask.repeat_interleave(frame_length, dim=1)
    keys_valid = torch.cat([mask.new_ones(batch, num_global), frame_keys_valid], dim=1)
    global_out = F.scaled_dot_product_attention(
        split_heads(q_g, heads),
        split_heads(torch.cat([k_g, k_f.flatten(1, 2)], dim=1), heads),
        split_heads(torch.cat([v_g, v_f.flatten(1, 2)], dim=1), heads),
        attn_mask=keys_valid[:, None, None, :],
        dropout_p=dropout,
    )
    return attn.out_proj(merge_heads(global_out)), attn.out_proj(frames_out)


def global_local_block(
    block: nn.Module, global_tokens: torch.Tensor, frames: torch.Tensor, mask: torch.Tensor,
    adapter: nn.Module | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One frozen ViT layer (ln_1, attention, residual, ln_2 + MLP, residual) in the global-local pattern.

    `adapter` (STOP's), if given, is added to the MLP residual: x + mlp(ln_2(x)) + adapter(x), per token.
    """
    attn = block.attn
    dropout = attn.dropout if block.training else 0.0
    global_out, frames_out = global_local_attention(attn, block.ln_1(global_tokens), block.ln_1(frames), mask,
                                                    dropout)
    global_tokens = global_tokens + block.ls_1(global_out)
    frames = frames + block.ls_1(frames_out)
    if adapter is None:
        global_tokens = global_tokens + block.ls_2(block.mlp(block.ln_2(global_tokens)))
        frames = frames + block.ls_2(block.mlp(block.ln_2(frames)))
    else:
        global_tokens = global_tokens + block.ls_2(block.mlp(block.ln_2(global_tokens))) + adapter(global_tokens)
        frames = frames + block.ls_2(block.mlp(block.ln_2(frames))) + adapter(frames)
    return global_tokens, frames


@METHODS.register("dgl")
class DGL(RetrievalMethod):
    Config = DGLConfig

    def __init__(self, backbone: Backbone, config: DGLConfig | None = None):
        super().__init__(backbone, config)
        cfg: Any = self.config
        visual_blocks = self.clip.visual.transformer.resblocks
        check_global_local_compatible(visual_blocks)
        available = min(len(visual_blocks), len(self.clip.transformer.resblocks))
        self.prompt_layers = resolve_prompt_layers(cfg.prompt_layers, available, cfg.section)
        dv, dt = visual_width(self.clip), text_width(self.clip)
        self.global_prompts = new_prompts(cfg.num_global, dv)
        if cfg.latent == "linear":
            self.latent: nn.Module = LinearLatent(cfg.num_local, self.prompt_layers, dv, dt)
        else:
            self.latent = TransformerLatent(cfg.num_text, cfg.num_local, cfg.num_frames, self.prompt_layers,
                                            dv, dt)
        if cfg.init == "official":
            with torch.no_grad():
                bound = vpt_uniform_bound(self.clip.visual)
                self.global_prompts.uniform_(-bound, bound)
                if isinstance(self.latent, LinearLatent):
                    self.latent.latent.uniform_(-bound, bound)
                else:
                    self.latent.table.normal_(0.0, 1.0)

    # ---- text -------------------------------------------------------------------------------------------
    def text_features(self, tokens: torch.Tensor, prompts: LayerPrompts | None = None) -> torch.Tensor:
        prompts = prompts if prompts is not None else self.latent()
        return prompted_text_features(self.clip, tokens, prompts.prefix, prompts.postfix,
                                      postfix_before_eot=self.config.postfix == "before_eot",
                                      block_fn=self.text_block)

    def visual_inputs(self, frames: torch.Tensor, mask: torch.Tensor,
                      local: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What the prompted layers start from: [B, T, 1 + P, Dv] frame tokens (CLS and patches after ln_pre)
        and the [K_p, B, T, Nl, Dv] local prompts, from the latent's [K_p, T or 1, Nl, Dv] (expanded, a view).
        A hook: STOP prompts the pixels first and adds prompts computed from the clip to the local ones."""
        tokens = image_tokens(self.clip.visual, frames.flatten(0, 1)).unflatten(0, mask.shape)
        return tokens, local.to(tokens.dtype).unsqueeze(1).expand(-1, *mask.shape, -1, -1)

    def global_local_layer(self, layer: int, block: nn.Module, global_tokens: torch.Tensor, frames: torch.Tensor,
                           mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer `layer` of the image tower in the global-local pattern (a hook: STOP adds adapters)."""
        return global_local_block(block, global_tokens, frames, mask)

    # ---- video ------------------------------------------------------------------------------------------
    def video_features(self, frames: torch.Tensor, mask: torch.Tensor,
                       prompts: LayerPrompts | None = None) -> torch.Tensor:
        """[B, T, C, H, W], [B, T] -> [B, Ng + T, Dv]: global tokens, then each frame's CLS, after ln_post.

        Unlike the baselines' trunk, DGL's carries the Ng global tokens in front of the T frame tokens.
        """
        batch, num_frames = mask.shape
        local = (prompts if prompts is not None else self.latent()).local
        if local.shape[1] not in (1, num_frames):
            name = type(self).__name__.lower()  # dgl, or a method built on it (stop)
            raise ValueError(
                f"{name} latent=transformer has local prompts for {name}.num_frames={local.shape[1]} frames, but "
                f"the clips have {num_frames} frame slots (data.num_frames); set both to the same value"
            )
        visual = self.clip.visual
        x, local = self.visual_inputs(frames, mask, local)  # [B, T, 1 + P, Dv], [K_p, B, T, Nl, Dv]
        global_tokens = self.global_prompts.to(x.dtype).expand(batch, -1, -1)
        num_local = local.shape[3]
        for layer, block in enumerate(visual.transformer.resblocks):
            if layer < self.prompt_layers:
                # layer 0 inserts the local slots after each CLS; later prompted layers replace their contents
                kept_from = 1 if layer == 0 else 1 + num_local
                x = torch.cat([x[:, :, :1], local[layer], x[:, :, kept_from:]], dim=2)
            global_tokens, x = self.global_local_layer(layer, block, global_tokens, x, mask)
        return visual.ln_post(torch.cat([global_tokens, x[:, :, 0]], dim=1))

    def video_head(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, Ng + T, Dv] trunk tokens -> [B, D]; the means are over the real frames only (see docstring)."""
        projected = features @ self.clip.visual.proj
        if self.config.average == "normalized":
            projected = F.normalize(projected, dim=-1)
        kind, num_global = self.config.visual_output_type, self.config.num_global
        if kind == "global_prompt0":
            return projected[:, 0]
        if kind == "average_global_prompt":
            return projected[:, :num_global].mean(dim=1)
        if kind == "average_frame_cls_token":
            return mean_pool(projected[:, num_global:], mask)
        tokens_valid = torch.cat([mask.new_ones(mask.shape[0], num_global), mask], dim=1)
        return mean_pool(projected, tokens_valid)

    def forward(self, tokens: torch.Tensor, frames: torch.Tensor, mask: torch.Tensor):
        prompts = self.latent()  # once for the batch's text and video
        text = self.text_head(self.text_features(tokens, prompts))
        video = self.video_head(self.video_features(frames, mask, prompts), mask)
        return text, video
