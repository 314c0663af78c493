"""mv_adapter: MV-Adapter (Jin et al., CVPR 2024), as docs/methods.md specifies.

Every block of both towers gets an adapter A on its MLP output y = MLP(LN2 x): x += y + scale * A(y), scale 0.1.

- Text A_t: y Dn (width -> 64, no activation) + position embedding -> LN -> TRM (causal) -> QuickGELU -> Up.
- Video A_v: h = QuickGELU(y Dn + b) on every token of every frame. Per clip the sequence [cc, CLS_1..T,
  patch-mean_1..T] (cc a learned token) + position embedding -> LN -> TRM (padded frames masked out of the
  keys) -> QuickGELU gives cc', cls'_j, p'_j. Calibration alpha_j = 1 + W2 ReLU(W1 [cls'_j + p'_j ; G cc'])
  (the input zeroed for padded frames); CLS delta = Up(alpha_j * cls'_j); patch delta = Up(h_patch).
- TRM: one pre-LN transformer block of the adapter's width (64), 2 heads, MLP 4x, QuickGELU.
- Cross-modality tying (CMT), on the last `cmt_layers` layers of each tower: a factor f (32 values, zeros) per
  such layer, shared by both towers; each tower's Linear M turns it into beta = M(f), which rescales Dn:
  `down_in` (the paper's default) scales Dn's input columns (M: 32 -> tower width), `down_out` (the released
  config) its output rows (M: 32 -> 64). On ViT-B/32 the CMT layers are blocks 10 and 11 counted from 0, the
  released `adapter_idx=range(10, 12)`: the last two of twelve.
- Init: Up weight and bias zero (so training starts at zero-shot CLIP); video Dn PyTorch's kaiming-uniform
  with zero bias, text Dn normal std (2 width)^-1/2 with zero bias; TRM attention input projection normal
  std width^-1/2 and its other matrices (2 width)^-1/2, width being the tower's (768 or 512), not the
  adapter's; position embeddings std 0.01; cc std 64^-1/2; W2 zero; the rest PyTorch's defaults.
- Video vector: the mean of the L2-normalised CLS vectors of the real frames (the base class's meanP head).
- `train_clip_biases`: the released config also trains every bias of CLIP (its `.*_no_decay` group, at lr
  1e-7 against the adapters' 5e-6), and the published 2.39% counts them. Off by default (the paper's method);
  when on, they train at `train.lr * train.backbone_lr_scale` (0.02 reproduces the released ratio).

Generalised beyond ViT-B/32 (docs/methods.md, "mv_adapter"): the position tables have `max_words` rows (text) and
1 + 2 * `num_frames` rows (video); the method yaml sizes them from `data.max_words` and `data.num_frames`.
Longer captions or clips with more frame slots are refused. A clip with T < num_frames slots uses rows 1..T
for its CLS tokens and 1 + num_frames .. num_frames + T for its patch means, the rows those frames take in a
clip padded to num_frames (the released code only ever sees T = num_frames).

Deliberate differences from the released code (zhangbw17/MV-Adapter), besides the harness's protocol
(frame sampling, AdamW instead of BertAdam, its schedule, metrics): CMT defaults to the paper's Down-In,
CLIP biases stay frozen by default, and adapters are held and updated in fp32 (the released code casts the
adapter Linears to fp16 and steps them with no fp32 master copy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from vtrbench.methods.backbone import Backbone, text_width, visual_width
from vtrbench.methods.base import RetrievalMethod, image_tokens
from vtrbench.registry import METHODS

if TYPE_CHECKING:
    from open_clip.transformer import ResidualAttentionBlock


CMT_POSITIONS = ("down_in", "down_out")


@dataclass
class MVAdapterConfig:
    bottleneck: int = 64  # the adapters' width (Dn's output, the TRM's width, Up's input)
    heads: int = 2  # of each TRM
    scale: float = 0.1  # x += y + scale * A(y)
    cmt_position: str = "down_in"  # "down_in" (paper default) or "down_out" (released config)
    cmt_layers: int = 2  # CMT on the last this many layers of each tower (0: no CMT)
    factor_dim: int = 32  # length of each shared CMT factor
    calibration_dim: int = 16  # W1's output width in the video calibration
    num_frames: int = 12  # frame slots the video position table has rows for (configs: data.num_frames)
    max_words: int = 32  # caption tokens the text position table has rows for (configs: data.max_words)
    train_clip_biases: bool = False  # the released code trains every CLIP bias too; see the module docstring

    def __post_init__(self) -> None:
        if self.cmt_position not in CMT_POSITIONS:
            raise ValueError(f"mv_adapter.cmt_position={self.cmt_position!r}: expected one of "
                             f"{', '.join(CMT_POSITIONS)}")
        sizes = {"bottleneck": self.bottleneck, "heads": self.heads, "factor_dim": self.factor_dim,
                 "calibration_dim": self.calibration_dim, "num_frames": self.num_frames,
                 "max_words": self.max_words}
        too_small = [f"{name}={value}" for name, value in sizes.items() if value < 1]
        if too_small or self.cmt_layers < 0:
            raise ValueError(f"mv_adapter: {', '.join(too_small) or f'cmt_layers={self.cmt_layers}'} "
                             f"must be at least 1 (cmt_layers at least 0)")
        if self.bottleneck % self.heads:
            raise ValueError(f"mv_adapter.bottleneck={self.bottleneck} is not a multiple of heads={self.heads}")
        if not math.isfinite(self.scale):
            raise ValueError(f"mv_adapter.scale={self.scale}: a scale must be finite")


def adapter_block(width: int, tower_width: int, heads: int) -> ResidualAttentionBlock:
    """The TRM: a pre-LN block of the adapter's width, initialised from the tower's width as released."""
    # open_clip is imported when a method is built, not when the registry lists it (a warm rerun)
    from open_clip.transformer import QuickGELU, ResidualAttentionBlock

    block = ResidualAttentionBlock(width, heads, act_layer=QuickGELU)
    nn.init.normal_(block.attn.in_proj_weight, std=tower_width ** -0.5)
    for weight in (block.attn.out_proj.weight, block.mlp.c_fc.weight, block.mlp.c_proj.weight):
        nn.init.normal_(weight, std=(2 * tower_width) ** -0.5)
    return block


def zero_linear(inputs: int, outputs: int) -> nn.Linear:
    layer = nn.Linear(inputs, outputs)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class TowerAdapter(nn.Module):
    """What both adapters share: Dn, Up, the input LN of the TRM, the TRM, and the CMT map M (CMT layers)."""

    def __init__(self, tower_width: int, cfg: MVAdapterConfig, position_rows: int, cmt: bool):
        # open_clip is imported when a method is built, not when the registry lists it (a warm rerun)
        from open_clip.transformer import QuickGELU

        super().__init__()
        width = cfg.bottleneck
        self.down = nn.Linear(tower_width, width)  # PyTorch's init: kaiming-uniform(a=sqrt(5))
        nn.init.zeros_(self.down.bias)
        self.up = zero_linear(width, tower_width)
        self.positional_embedding = nn.Parameter(torch.randn(position_rows, width) * 0.01)
        self.ln_pre = nn.LayerNorm(width)
        self.block = adapter_block(width, tower_width, cfg.heads)
        self.activation = QuickGELU()
        self.cmt_position = cfg.cmt_position
        cmt_width = tower_width if cfg.cmt_position == "down_in" else width
        self.cmt = nn.Linear(cfg.factor_dim, cmt_width) if cmt else None

    def down_weight(self, factor: torch.Tensor | None) -> torch.Tensor:
        """Dn, rescaled by beta = M(f) on a CMT layer: its input columns (down_in) or output rows (down_out)."""
        if self.cmt is None:
            return self.down.weight
        beta = self.cmt(factor)
        return self.down.weight * (beta[None, :] if self.cmt_position == "down_in" else beta[:, None])


class TextAdapter(TowerAdapter):
    def __init__(self, tower_width: int, cfg: MVAdapterConfig, cmt: bool):
        super().__init__(tower_width, cfg, cfg.max_words, cmt)
        nn.init.normal_(self.down.weight, std=(2 * tower_width) ** -0.5)

    def forward(self, y: torch.Tensor, attn_mask: torch.Tensor, factor: torch.Tensor | None) -> torch.Tensor:
        """[N, L, Dt] MLP output -> [N, L, Dt] delta (before the scale); the TRM is causal like the tower."""
        length, rows = y.shape[1], self.positional_embedding.shape[0]
        if length > rows:
            raise ValueError(f"mv_adapter has text position embeddings for mv_adapter.max_words={rows} tokens, "
                             f"but captions have {length} (data.max_words); set both to the same value")
        h = F.linear(y, self.down_weight(factor), self.down.bias) + self.positional_embedding[:length]
        return self.up(self.activation(self.block(self.ln_pre(h), attn_mask=attn_mask)))


class VideoAdapter(TowerAdapter):
    def __init__(self, tower_width: int, cfg: MVAdapterConfig, cmt: bool):
        super().__init__(tower_width, cfg, 1 + 2 * cfg.num_frames, cmt)
        width = cfg.bottleneck
        self.num_frames = cfg.num_frames
        self.cc = nn.Parameter(torch.randn(width) * width ** -0.5)
        self.calibration_g = nn.Linear(width, width)
        self.calibration_w1 = nn.Linear(2 * width, cfg.calibration_dim)
        self.calibration_w2 = nn.Linear(cfg.calibration_dim, width, bias=False)
        nn.init.zeros_(self.calibration_w2.weight)

    def forward(self, y: torch.Tensor, mask: torch.Tensor, factor: torch.Tensor | None) -> torch.Tensor:
        """[B*T, 1 + P, Dv] MLP output of every frame slot, [B, T] mask -> [B*T, 1 + P, Dv] delta."""
        batch, num_frames = mask.shape
        h = self.activation(F.linear(y, self.down_weight(factor), self.down.bias))
        h = h.unflatten(0, (batch, num_frames))  # [B, T, 1 + P, d]
        cls, patches = h[:, :, 0], h[:, :, 1:]
        sequence = torch.cat([self.cc.to(h.dtype).expand(batch, 1, -1), cls, patches.mean(dim=2)], dim=1)
        frame_rows = torch.arange(1, 1 + num_frames, device=h.device)
        rows = torch.cat([frame_rows.new_zeros(1), frame_rows, frame_rows + self.num_frames])
        keys_valid = torch.cat([mask.new_ones(batch, 1), mask, mask], dim=1)
        out = self.activation(key_masked_block(self.block, self.ln_pre(sequence + self.positional_embedding[rows]),
                                               keys_valid))
        cc, cls_out, patch_out = out[:, 0], out[:, 1 : 1 + num_frames], out[:, 1 + num_frames :]
        calibration_in = torch.cat([cls_out + patch_out, self.calibration_g(cc)[:, None].expand_as(cls_out)], -1)
        calibration_in = calibration_in * mask[..., None].to(h.dtype)
        alpha = 1 + self.calibration_w2(F.relu(self.calibration_w1(calibration_in)))
        delta = torch.cat([self.up(alpha * cls_out)[:, :, None], self.up(patches)], dim=2)
        return delta.flatten(0, 1)


def key_masked_block(block: ResidualAttentionBlock, x: torch.Tensor, keys_valid: torch.Tensor) -> torch.Tensor:
    """The TRM over [B, S, d] with [B, S] valid keys (padded frames are never attended to)."""
    attn = block.attn
    q, k, v = F.linear(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)

    def heads(t: torch.Tensor) -> torch.Tensor:
        return t.unflatten(-1, (attn.num_heads, -1)).transpose(1, 2)

    out = F.scaled_dot_product_attention(heads(q), heads(k), heads(v), attn_mask=keys_valid[:, None, None, :])
    x = x + block.ls_1(attn.out_proj(out.transpose(1, 2).flatten(2)))
    return x + block.ls_2(block.mlp(block.ln_2(x)))


@METHODS.register("mv_adapter")
class MVAdapter(RetrievalMethod):
    Config = MVAdapterConfig

    def __init__(self, backbone: Backbone, config: MVAdapterConfig | None = None):
        super().__init__(backbone, config)
        cfg: Any = self.config
        visual_depth = len(self.clip.visual.transformer.resblocks)
        text_depth = len(self.clip.transformer.resblocks)
        if cfg.cmt_layers > min(visual_depth, text_depth):
            raise ValueError(f"mv_adapter.cmt_layers={cfg.cmt_layers} exceeds the towers' depth "
                             f"({min(visual_depth, text_depth)} layers)")
        self.visual_cmt_from, self.text_cmt_from = visual_depth - cfg.cmt_layers, text_depth - cfg.cmt_layers
        self.cmt_factors = nn.ParameterList(nn.Parameter(torch.zeros(cfg.factor_dim)) for _ in range(cfg.cmt_layers))
        dv, dt = visual_width(self.clip), text_width(self.clip)
        self.visual_adapters = nn.ModuleList(
            VideoAdapter(dv, cfg, layer >= self.visual_cmt_from) for layer in range(visual_depth))
        self.text_adapters = nn.ModuleList(
            TextAdapter(dt, cfg, layer >= self.text_cmt_from) for layer in range(text_depth))
        if cfg.train_clip_biases:
            for name, param in self.clip.named_parameters():
                if name.endswith("bias"):
                    param.requires_grad_(True)

    def factor(self, layer: int, cmt_from: int) -> torch.Tensor | None:
        return self.cmt_factors[layer - cmt_from] if layer >= cmt_from else None

    def text_block(self, layer: int, block: nn.Module, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        x = x + block.ls_1(block.attention(block.ln_1(x), attn_mask=attn_mask))
        y = block.mlp(block.ln_2(x))
        delta = self.text_adapters[layer](y, attn_mask, self.factor(layer, self.text_cmt_from))
        return x + block.ls_2(y) + self.config.scale * delta

    def video_features(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, T, C, H, W], [B, T] -> [B, T, Dv] CLS after ln_post. Every frame slot runs through the tower,
        since the video adapters see the whole clip; padded slots are masked out of every temporal step and
        their features set to zero."""
        batch, num_frames = mask.shape
        if num_frames > self.config.num_frames:
            raise ValueError(f"mv_adapter has video position embeddings for mv_adapter.num_frames="
                             f"{self.config.num_frames} frames, but the clips have {num_frames} frame slots "
                             f"(data.num_frames); set both to the same value")
        visual = self.clip.visual
        x = image_tokens(visual, frames.flatten(0, 1))  # [B*T, 1 + P, Dv]
        for layer, block in enumerate(visual.transformer.resblocks):
            x = x + block.ls_1(block.attention(block.ln_1(x)))
            y = block.mlp(block.ln_2(x))
            delta = self.visual_adapters[layer](y, mask, self.factor(layer, self.visual_cmt_from))
            x = x + block.ls_2(y) + self.config.scale * delta
        features = visual.ln_post(x[:, 0]).unflatten(0, (batch, num_frames))
        return features * mask[..., None].to(features.dtype)

