"""cross_modal_adapter: Cross-Modal Adapter (Jiang et al., arXiv 2211.09623v1), as docs/methods.md specifies.

The backbone stays frozen. Every block of both towers gets two adapters in series, each on a sublayer's
output before the residual: x += A(Attn(LN1 x)); x += A'(MLP(LN2 x)). An adapter maps h to
h + [z U | z S] with z = QuickGELU(h Dn + b): Dn (width -> r) and U (r -> width - d_s) belong to the tower,
S (r -> d_s) gives the last d_s output channels and is one matrix per (layer, sublayer) shared by both
towers (the weight sharing that makes it cross-modal; the paper's figure puts the text tower's shared slice
first, the official code puts it last in both, as here). All weights start trunc-normal with std 0.01 (U is
not zero, so training does not start exactly at zero-shot CLIP), all biases at zero.

Video vector, text-conditioned as in the official code: frame vectors f_j (CLS -> ln_post -> proj) and the
caption's vector t (EOT -> ln_final -> text_projection), both unnormalised; weights softmax(<t, f_j> / 5)
over the clip's real frames; the weighted sum of the f_j, L2-normalised, scored by cosine. `encode_video`
therefore returns the per-frame vectors [B, T, D], and `similarity` pools them for every caption without
building the [N, B, D] tensor of pooled vectors (see `text_conditioned_logits`).

Deliberate differences from the official code (LeapLabTHU/Cross-Modal-Adapter), besides the harness's
protocol (its frame sampling, loss loop, AdamW with its cosine schedule, metrics):
- adapters are held and updated in fp32; the official run converts them to fp16 (`--adapter_convert2fp16`);
- `train.py`'s `--adapter_non_linearity` defaults to `gelu` but asserts `quick_gelu`; its README run, like the paper,
  uses QuickGELU, as here;
- the shared matrices need towers of equal depth (as the official code assumes); other depths are refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from vtrbench.methods.backbone import Backbone, text_width, visual_width
from vtrbench.methods.base import RetrievalMethod
from vtrbench.registry import METHODS


@dataclass
class CrossModalAdapterConfig:
    bottleneck: int = 8  # r: every adapter's hidden width
    shared_dim: int = 16  # d_s: output channels produced by the matrix shared by both towers
    init_std: float = 0.01  # trunc-normal std of every adapter weight
    dropout: float = 0.0  # after the activation (the paper reports it helps; the official run uses 0)
    temperature: float = 5.0  # of the softmax over frames in the text-conditioned pooling

    def __post_init__(self) -> None:
        if self.bottleneck < 1 or self.shared_dim < 0:
            raise ValueError(f"cross_modal_adapter: bottleneck must be >= 1 and shared_dim >= 0, got "
                             f"bottleneck={self.bottleneck}, shared_dim={self.shared_dim}")
        if not (0 < self.temperature < math.inf and 0 < self.init_std < math.inf and 0 <= self.dropout < 1):
            raise ValueError("cross_modal_adapter: temperature and init_std must be > 0, dropout in [0, 1)")


def linear(inputs: int, outputs: int, std: float) -> nn.Linear:
    layer = nn.Linear(inputs, outputs)
    nn.init.trunc_normal_(layer.weight, std=std)
    nn.init.zeros_(layer.bias)
    return layer


class TowerAdapter(nn.Module):
    """One tower's own weights of one adapter: Dn (width -> r) and U (r -> width - d_s; none if d_s = width)."""

    def __init__(self, width: int, bottleneck: int, shared_dim: int, std: float):
        super().__init__()
        self.down = linear(width, bottleneck, std)
        self.up = linear(bottleneck, width - shared_dim, std) if width > shared_dim else None


class SublayerPair(nn.Module):
    """The two adapters of one block: after attention and after the MLP."""

    def __init__(self, make: Any):
        super().__init__()
        self.attn, self.mlp = make(), make()


@METHODS.register("cross_modal_adapter")
class CrossModalAdapter(RetrievalMethod):
    Config = CrossModalAdapterConfig

    def __init__(self, backbone: Backbone, config: CrossModalAdapterConfig | None = None):
        # open_clip is imported when a method is built, not when the registry lists it (a warm rerun)
        from open_clip.transformer import QuickGELU

        super().__init__(backbone, config)
        cfg: Any = self.config
        dv, dt = visual_width(self.clip), text_width(self.clip)
        depth = len(self.clip.visual.transformer.resblocks)
        if depth != len(self.clip.transformer.resblocks):
            raise ValueError("cross_modal_adapter shares one matrix per layer between the towers, so both need "
                             f"the same depth (image {depth}, text {len(self.clip.transformer.resblocks)})")
        if cfg.shared_dim > min(dv, dt):
            raise ValueError(f"cross_modal_adapter.shared_dim={cfg.shared_dim} exceeds the narrower tower's "
                             f"width {min(dv, dt)}")
        r, ds, std = cfg.bottleneck, cfg.shared_dim, cfg.init_std
        self.visual_adapters = nn.ModuleList(
            SublayerPair(lambda: TowerAdapter(dv, r, ds, std)) for _ in range(depth))
        self.text_adapters = nn.ModuleList(
            SublayerPair(lambda: TowerAdapter(dt, r, ds, std)) for _ in range(depth))
        self.shared_up = nn.ModuleList(SublayerPair(lambda: linear(r, ds, std)) for _ in range(depth)) if ds else None
        self.activation = QuickGELU()
        self.dropout = nn.Dropout(cfg.dropout)

    def adapt(self, h: torch.Tensor, own: TowerAdapter, shared: nn.Linear | None) -> torch.Tensor:
        """h + [z U | z S], z = QuickGELU(h Dn + b): the tower's own channels first, the shared ones last."""
        z = self.dropout(self.activation(own.down(h)))
        return h + torch.cat([up(z) for up in (own.up, shared) if up is not None], dim=-1)

    def adapted_block(self, block: nn.Module, x: torch.Tensor, own: SublayerPair, layer: int,
                      attn_mask: torch.Tensor | None) -> torch.Tensor:
        shared = self.shared_up[layer] if self.shared_up is not None else None
        attention = block.attention(block.ln_1(x), attn_mask=attn_mask)
        x = x + block.ls_1(self.adapt(attention, own.attn, shared.attn if shared is not None else None))
        mlp = block.mlp(block.ln_2(x))
        return x + block.ls_2(self.adapt(mlp, own.mlp, shared.mlp if shared is not None else None))

    def text_block(self, layer: int, block: nn.Module, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        return self.adapted_block(block, x, self.text_adapters[layer], layer, attn_mask)

    def visual_block(self, layer: int, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return self.adapted_block(block, x, self.visual_adapters[layer], layer, None)

    def video_head(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, T, Dv] -> [B, T, D] projected frame vectors, unnormalised (padded slots stay zero)."""
        return features @ self.clip.visual.proj

    def similarity(self, text: torch.Tensor, video: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[N, D] captions x [B, T, D] frame vectors -> [N, B]: each caption pools each clip's frames."""
        logits = text_conditioned_logits(text, video, mask, self.config.temperature)
        return self.clip.logit_scale.exp() * logits


def text_conditioned_logits(text: torch.Tensor, frames: torch.Tensor, mask: torch.Tensor,
                            temperature: float) -> torch.Tensor:
    """cos(t_n, v_nb) with v_nb = sum_j a_nbj f_bj and a_nb = softmax over the real frames of <t_n, f_bj> / temp.

    With g_nbj = <t_n, f_bj>: <t_n, v_nb> = sum_j a_nbj g_nbj and |v_nb|^2 = a_nb^T (F_b F_b^T) a_nb, so no
    tensor larger than [N, B, T] is built (the pooled vectors themselves would be [N, B, D]).
    """
    batch, num_frames, dim = frames.shape
    frames = frames * mask[..., None]  # whatever a padded slot holds, it meets the scores as zeros
    g = (text @ frames.reshape(batch * num_frames, dim).T).view(len(text), batch, num_frames)
    weights = (g / temperature).masked_fill_(~mask, float("-inf")).softmax(dim=-1)
    dot = (weights * g).sum(dim=-1)
    gram = frames @ frames.transpose(1, 2)  # [B, T, T]
    squared_norm = (torch.einsum("nbt,bts->nbs", weights, gram) * weights).sum(dim=-1)
    return dot / (text.norm(dim=-1, keepdim=True) * squared_norm.clamp_min(1e-12).sqrt()).clamp_min(1e-12)
