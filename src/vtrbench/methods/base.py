"""The method contract: an `nn.Module` built from (backbone, its own config dataclass).

A method sets `requires_grad` on what it tunes, turns each caption into a vector (`encode_text` -> [N, D])
and each clip into a tensor (`encode_video` -> [B, D], or any [B, ...] tensor its own `similarity` reads),
and scores captions against clips (`similarity(text, video, mask)` -> [N, B] logits). The default score is
the cosine times CLIP's frozen temperature and ignores the mask; a method whose video vector depends on the
caption (text-conditioned pooling over frames) returns per-frame vectors from `encode_video` and pools them
inside `similarity`, with the clips' [B, T] frame mask. A score depends only on its own caption and clip,
so the harness may split captions and clips into chunks. A method never sees the optimiser, the loss, the
loader or the metrics. The default paths below are plain CLIP (EOT text vector, meanP video vector);
methods override the pieces they change.

Each encoder is split into a trunk (`text_features`, `video_features`) and a head (`text_head`,
`video_head`). A method whose trunk is frozen and input-independent of training (`frozen_trunk = True`)
lets the harness compute the trunk once per clip and caption and train the head on cached features.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from vtrbench.methods.backbone import Backbone


@dataclass
class NoOptions:
    """For methods without options of their own."""


class RetrievalMethod(nn.Module):
    Config: ClassVar[type] = NoOptions
    frozen_trunk: ClassVar[bool] = False

    def __init__(self, backbone: Backbone, config: Any = None):
        super().__init__()
        self.config = config if config is not None else self.Config()
        self.clip = backbone.model
        self.clip.requires_grad_(False)
        check_plain_vit(self.clip)

    # ---- text -------------------------------------------------------------------------------------------
    def text_features(self, tokens: torch.Tensor) -> torch.Tensor:
        """[N, L] token ids -> [N, Dt]: the EOT token after ln_final, before the projection."""
        clip = self.clip
        tokens = drop_common_padding(tokens)
        length = tokens.shape[1]
        x = clip.token_embedding(tokens) + clip.positional_embedding[:length]
        mask = causal_mask(length, x.device, x.dtype)
        for layer, block in enumerate(clip.transformer.resblocks):
            x = self.text_block(layer, block, x, mask)
        x = clip.ln_final(x)
        return x[torch.arange(x.shape[0], device=x.device), eot_positions(tokens)]

    def text_block(self, layer: int, block: nn.Module, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        """Layer `layer` of the text tower, [N, L, Dt] -> [N, L, Dt]; adapter methods change its inside."""
        return block(x, attn_mask=attn_mask)

    def text_head(self, features: torch.Tensor) -> torch.Tensor:
        return features @ self.clip.text_projection

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """[N, L] token ids -> [N, D]."""
        return self.text_head(self.text_features(tokens))

    # ---- video ------------------------------------------------------------------------------------------
    def frame_features(self, images: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] -> [N, Dv]: each image's CLS token after ln_post, before the projection."""
        visual = self.clip.visual
        x = image_tokens(visual, images)
        for layer, block in enumerate(visual.transformer.resblocks):
            x = self.visual_block(layer, block, x)
        return visual.ln_post(x[:, 0])

    def visual_block(self, layer: int, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Layer `layer` of the image tower, [N, 1 + P, Dv] -> [N, 1 + P, Dv]; adapter methods change it."""
        return block(x)

    def video_features(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, T, C, H, W], [B, T] -> [B, T, Dv]; padded frames are not encoded and stay zero."""
        batch, num_frames = mask.shape
        valid = self.frame_features(frames[mask])
        features = valid.new_zeros(batch, num_frames, valid.shape[-1])
        features[mask] = valid
        return features

    def video_head(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return mean_pool(F.normalize(features @ self.clip.visual.proj, dim=-1), mask)

    def encode_video(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, T, C, H, W] frames and a [B, T] bool mask of real frames -> [B, D] (or [B, ...], see
        `similarity`); what sits in padded frame slots must not change it."""
        return self.video_head(self.video_features(frames, mask), mask)

    def forward(self, tokens: torch.Tensor, frames: torch.Tensor, mask: torch.Tensor):
        """Both vectors of a training batch in one call (what DistributedDataParallel wraps)."""
        return self.encode_text(tokens), self.encode_video(frames, mask)

    # ---- scores -----------------------------------------------------------------------------------------
    def similarity(self, text: torch.Tensor, video: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[N, D] captions x [B, ...] clips (what `encode_video` returns) with their [B, T] frame mask ->
        [N, B] logits. Default: cosine of [N, D] and [B, D] times the backbone's frozen temperature; the mask
        is not needed once the frames are pooled."""
        return self.clip.logit_scale.exp() * F.normalize(text, dim=-1) @ F.normalize(video, dim=-1).T


def check_plain_vit(clip: nn.Module) -> None:
    """The methods re-run CLIP's towers layer by layer, which needs a plain ViT with a CLS token."""
    visual = getattr(clip, "visual", None)
    if visual is None or not hasattr(visual, "conv1") or getattr(visual, "attn_pool", None) is not None:
        raise ValueError("vtrbench methods need an open_clip ViT backbone (conv1 patch embedding, CLS pooling)")
    if getattr(visual, "pool_type", "tok") != "tok" or not hasattr(clip, "token_embedding"):
        raise ValueError("vtrbench methods need CLS-token pooling and open_clip's built-in text tower")


def image_tokens(visual: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] -> [N, 1 + P, Dv]: CLS + patch tokens with positional embedding and ln_pre applied."""
    x = visual.conv1(images.to(visual.conv1.weight.dtype)).flatten(2).transpose(1, 2)
    cls = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
    x = torch.cat([cls, x], dim=1) + visual.positional_embedding.to(x.dtype)
    return visual.ln_pre(x)


def causal_mask(length: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Additive [L, L] mask: a token sees itself and the tokens before it (CLIP's text mask)."""
    return torch.full((length, length), float("-inf"), device=device, dtype=dtype).triu_(1)


def eot_positions(tokens: torch.Tensor) -> torch.Tensor:
    """Index of the EOT token of each caption: it has the largest id in CLIP's vocabulary."""
    return tokens.argmax(dim=-1)


def drop_common_padding(tokens: torch.Tensor) -> torch.Tensor:
    """[N, L] -> [N, L'], L' = 1 + the batch's last EOT position. Under the causal mask no caption's EOT sees a
    later position, so the padding (and any prompt placed after it) never reaches a text vector: exact."""
    return tokens[:, : int(eot_positions(tokens).max()) + 1]


def mean_pool(frame_vectors: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the real frames: [B, T, D], [B, T] -> [B, D] (CLIP4Clip's meanP)."""
    weights = mask.to(frame_vectors.dtype).unsqueeze(-1)
    return (frame_vectors * weights).sum(1) / weights.sum(1).clamp_min(1.0)
