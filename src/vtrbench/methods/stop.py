"""stop: STOP, integrated spatial-temporal dynamic prompting (Liu et al., CVPR 2025, arXiv 2503.15973), on DGL.

STOP is DGL (see dgl.py: global prompts, the shared latent space, local frame prompts, text prompts; the video
vector is global prompt 0) plus three trained parts, all frozen-backbone:
- Intra-frame prompt, on the pixels before the patch embedding. A prompter of four 3-D convolutions over
  (time, height, width), kernel (3, 11, 11), channels 3 -> 9 -> 9 -> 9 -> 16 (PReLU after the second and the
  third), dropout, a per-pixel MLP 16 -> 16 -> 3 (PReLU), dropout, gives P. A saliency convolution (3 -> 1,
  kernel (5, 11, 11)) is pooled onto the patch grid; its top `top_cells` (eta = 6) cells per frame form the
  boolean mask M, spread back onto the pixels. The frame becomes x + s*P + s*P*M, s = `intra_scale` (0.05).
- Inter-frame prompts, from the prompted clip's patch tokens after ln_pre (CLS dropped): multi-head attention
  (visual width, width/64 heads) over all patch tokens of the clip, a 3-D convolution 1 -> 9 -> 1 with kernel
  (3, 15, 25) over (time, token, channel), an MLP over the token axis (grid^2 -> 16 -> num_local) per frame
  and channel. Each frame's result is weighted by (1 + w_t), w_t a saliency from one more convolution (1 -> 1,
  kernel (5, 11, 11)) over the attention output, doubled on the cells M keeps, averaged per frame and min-max
  normalised; the result times `inter_scale` (0.05) is ADDED to the latent's local prompts of that frame at
  every prompted layer.
- A bottleneck adapter in every block of both towers (the official code calls it LoRA): Linear(width, 32),
  PReLU, Linear(32, width), added as x + mlp(ln_2(x)) + 0.1 * adapter(x), with no LayerNorm on its input.

Shapes follow the backbone: grid = image size / patch size, width, heads = width / 64, prompted layers, the
local prompt count (the official code writes 7, 32, 224, 768, 12 heads, 12 layers and 4 prompts as constants).
So STOP runs on the offline backbone and on ViT-B/16 as well as on ViT-B/32.

Read at zhoujiahuan1991/CVPR2025-STOP commit 7253928 (HEAD's modules/clip.py and two other files hold
committed merge-conflict markers and do not run): modules/temporal_prompting.py (TemporalPrompt_3, the
'group2-2' prompter), modules/clip.py (the adapter in ResidualAttentionBlock, VisualTransformer.forward),
modules/clip4clip.py (train(): which modules stay in train mode), params.py (--lora defaults to True,
--shared_latent_space to transformer), utils/optimization.py and scripts/*.sh; compared with knightyxp/DGL's
modules/clip.py. No code is copied (DGL's, which STOP's files follow closely, is CC BY-NC 4.0).

Tuned counts on ViT-B/32 at 12 frames: 13,081,528 (transformer latent, the official default and the method
yaml's) and 4,333,752 (`latent=linear`, the dataclass default, as DGL's): temporal prompting 2,507,168 (the
768-wide attention alone 2,362,368), adapters 599,436 (image) + 399,756 (text), DGL 9,575,168 or 827,392.
The paper's 7.53M matches no subset of the code. Initialisation: PyTorch's defaults for every new module, as
the official code leaves them; DGL's parts as dgl.py initialises them.

This class adds no copy of DGL: it overrides DGL's hooks (`visual_inputs` for the two prompters,
`global_local_layer` and `text_block` for the adapters).

Quirks of the official code, reproduced by default:
- The intra-frame saliency convolution gets no gradient: M is boolean. It is tuned and counted (as the official
  count does) but never learns. Here M carries a zero gradient so that the parameter takes part in the graph;
  Adam's step is then zero, and the harness's weight decay only scales its kernel, which changes no cell's
  rank, hence nothing it computes. No option: a learnt mask would be a design the paper does not describe.
- Strided pooling (`saliency_pool=strided`): the official reshape (B, T, 32, 7, 32, 7) averaged over the 32s
  makes cell (i, j) the mean over pixels with h = i and w = j modulo the grid, not patch (i, j)'s pixels, and
  spreads M back the same way (pixel (h, w) takes cell (h mod grid, w mod grid)). `saliency_pool=patch` pools
  and spreads per patch, so cell (i, j) is patch (i, j) and lines up with its token in the inter-frame weight.
- The prompter's dropouts (p = `dropout`, 0.5) are active in training, while the frozen modules run in eval
  mode (the official train() sets CLIP's Dropout and LayerNorm modules to eval, not the prompter's; here the
  frozen towers have no active dropout in either mode, so the same holds); the second
  dropout is applied twice (after the MLP and again after the permute), so P's output keeps a quarter of its
  values, times 4. `dropout_twice=false` applies it once; `dropout=0` turns the prompter's dropout off.
- The min-max normalisation has no epsilon: a batch whose frames all get the same saliency divides 0 by 0.
  Guarded here: a zero range gives weights 0.
Differences, each for the harness's contract:
- Min-max range (`saliency_norm`): the official code takes min and max over the whole batch (every frame of
  every clip), so a clip's video vector depends on the other clips in its batch. `clip` (default) takes them
  over the clip's own real frames, as the harness needs (a score depends only on its caption and clip).
  `batch` is the official rule (over the batch's real frames); it breaks that contract: use it only to compare
  with the official code.
- Padded frames: the official loader repeats the last frame. Here padded slots are zeroed before the
  prompter's and the inter-frame convolutions and after each of them, left out of the inter-frame attention's
  keys and of the min-max, so a clip computes the same whatever fills its padding, and the same as a clip
  tensor without the padded slots (the convolutions zero-pad time anyway). Clips with at least
  `data.num_frames` frames compute what the official code computes (one clip at a time, or the whole batch
  with `saliency_norm=batch`): perf/stop_official_check.py measures at most 4.5e-6 on the vectors.
- Everything dgl.py lists for DGL applies (padding and masking in the global view, the harness's weight decay,
  which here also leaves the PReLU gains undecayed where the official optimiser decays them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from vtrbench.methods.backbone import Backbone, text_width, visual_width
from vtrbench.methods.base import image_tokens
from vtrbench.methods.dgl import DGL, DGLConfig, global_local_block
from vtrbench.registry import METHODS

SALIENCY_POOLS = ("strided", "patch")
SALIENCY_NORMS = ("clip", "batch")


@dataclass
class STOPConfig(DGLConfig):
    # `latent` keeps DGL's default, "linear", so that a STOP built from this class alone runs on any frame count; the
    # method yaml (configs/methods/stop.yaml) selects the official default, "transformer", sized by
    # data.num_frames.
    intra_scale: float = 0.05  # s in x + s*P + s*P*M
    inter_scale: float = 0.05  # the inter-frame prompts' factor
    top_cells: int = 6  # eta: cells per frame the saliency mask keeps (those above the (eta+1)-th largest)
    saliency_pool: str = "strided"  # official; or "patch" (see the module docstring)
    saliency_norm: str = "clip"  # min-max over the clip's frames; "batch": the official rule (breaks the contract)
    dropout: float = 0.5  # the prompter's dropouts (nn.Dropout's default, as the official code builds them)
    dropout_twice: bool = True  # official: the second dropout runs twice
    adapter_dim: int = 32  # bottleneck of the adapters in every block of both towers
    adapter_scale: float = 0.1
    # The convolutions' kernels. The official sizes are written for ViT-B/32 at 224 pixels: 11 pixels of 224
    # (intra-frame), 15 of 49 patch tokens and 25 of 768 channels (inter-frame). "scaled": each scaled to this
    # backbone's sizes, odd, at least 3, never above the official one, so every ViT-B at 224 pixels gets the
    # official kernels and the offline backbone (32 pixels, 16 tokens, width 64) gets 3, (5, 3): there the
    # official ones would span most of the frame and made a run take 40 times a DGL run. "official": as written.
    kernels: str = "scaled"
    section: ClassVar[str] = "stop"

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("intra_scale", "inter_scale", "adapter_scale"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"stop.{name}={getattr(self, name)}: a scale must be finite")
        for name, value, allowed in (
            ("saliency_pool", self.saliency_pool, SALIENCY_POOLS),
            ("saliency_norm", self.saliency_norm, SALIENCY_NORMS),
        ):
            if value not in allowed:
                raise ValueError(f"stop.{name}={value!r}: expected one of {', '.join(allowed)}")
        if self.kernels not in KERNELS:
            raise ValueError(f"stop.kernels={self.kernels!r}: expected one of {', '.join(KERNELS)}")
        if self.top_cells < 0 or self.adapter_dim < 1 or not 0.0 <= self.dropout < 1.0:
            raise ValueError("stop: top_cells must be >= 0, adapter_dim >= 1 and dropout in [0, 1)")


KERNELS = ("scaled", "official")
# The sizes the official kernels were written for (ViT-B/32, 224 pixels): image side, patch tokens, width.
OFFICIAL_IMAGE, OFFICIAL_TOKENS, OFFICIAL_WIDTH = 224, 49, 768


def kernel_size(official: int, size: int, official_size: int, kernels: str) -> int:
    """One kernel side: the official one, or (`scaled`) scaled to `size`, odd, at least 3, at most official."""
    if kernels == "official":
        return official
    scaled = round(official * size / official_size)
    return min(official, max(3, scaled if scaled % 2 else scaled + 1))


def conv3d(channels_in: int, channels_out: int, kernel: tuple[int, int, int]) -> nn.Conv3d:
    """Stride 1, 'same' zero padding (every kernel here has odd sizes)."""
    return nn.Conv3d(channels_in, channels_out, kernel, padding=tuple((k - 1) // 2 for k in kernel))


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """[B, C, T, ...] laid out channels-last: the same 3-D convolutions, whose backward pass runs 2 to 4 times
    faster on a CPU (oneDNN) than on the default layout; only the order of float sums changes."""
    return x.contiguous(memory_format=torch.channels_last_3d)


def masked_convs(convs: nn.Sequential, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Run a stack of 3-D convolutions (and activations) over [B, C, T, ...], zeroing the padded frames
    (`keep` [B, 1, T, 1, 1], 0 for padding) after every convolution, so padding never reaches a real frame."""
    for module in convs:
        x = module(x)
        if isinstance(module, nn.Conv3d):
            x = x * keep
    return x


class BottleneckAdapter(nn.Module):
    """scale * up(PReLU(down(x))), no input LayerNorm; PyTorch's default initialisation, as the official."""

    def __init__(self, width: int, bottleneck: int, scale: float):
        super().__init__()
        self.down, self.act, self.up = nn.Linear(width, bottleneck), nn.PReLU(), nn.Linear(bottleneck, width)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * self.up(self.act(self.down(x)))


class IntraFramePrompter(nn.Module):
    """Pixels [B, T, C, H, W] -> prompted pixels and the saliency mask M on the patch grid, [B, T, grid^2]."""

    def __init__(self, cfg: STOPConfig, grid: int, patch: int):
        super().__init__()
        self.grid, self.patch, self.cfg = grid, patch, cfg
        side = kernel_size(11, grid * patch, OFFICIAL_IMAGE, cfg.kernels)
        kernel = (3, side, side)
        self.convs = nn.Sequential(
            conv3d(3, 9, kernel), conv3d(9, 9, kernel), nn.PReLU(), conv3d(9, 9, kernel), nn.PReLU(),
            conv3d(9, 16, kernel),
        )
        self.mlp = nn.Sequential(nn.Linear(16, 16), nn.PReLU(), nn.Linear(16, 3))
        self.dropout = nn.Dropout(cfg.dropout)
        self.saliency = conv3d(3, 1, (5, side, side))

    def cells(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, T, H, W] (padding zeroed) -> [B, T, grid^2] 0/1 mask of the top `top_cells` cells per frame.

        It carries a zero gradient, so the saliency convolution takes part in the graph without learning.
        """
        grid, patch = self.grid, self.patch
        score = self.saliency(x).squeeze(1)  # [B, T, H, W]
        if self.cfg.saliency_pool == "strided":  # cell (i, j): pixels (a * grid + i, b * grid + j)
            score = score.unflatten(2, (patch, grid)).unflatten(4, (patch, grid)).mean(dim=(2, 4))
        else:  # cell (i, j): patch (i, j)
            score = score.unflatten(2, (grid, patch)).unflatten(4, (grid, patch)).mean(dim=(3, 5))
        score = score.flatten(2)
        if self.cfg.top_cells >= score.shape[-1]:
            raise ValueError(f"stop.top_cells={self.cfg.top_cells}: the patch grid has only {score.shape[-1]} cells")
        bar = score.sort(dim=-1, descending=True).values[..., self.cfg.top_cells : self.cfg.top_cells + 1]
        return (score > bar).to(score.dtype) + 0.0 * (score - score.detach())

    def spread(self, cells: torch.Tensor) -> torch.Tensor:
        """[B, T, grid^2] -> [B, T, 1, H, W], back onto the pixels the way `cells` pooled them."""
        grid, patch = self.grid, self.patch
        cells = cells.unflatten(-1, (grid, grid))
        if self.cfg.saliency_pool == "strided":
            pixels = cells.repeat(1, 1, patch, patch)
        else:
            pixels = cells.repeat_interleave(patch, dim=2).repeat_interleave(patch, dim=3)
        return pixels.unsqueeze(2)

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keep = mask[:, None, :, None, None].to(frames.dtype)
        x = frames.transpose(1, 2) * keep  # [B, C, T, H, W]
        laid_out = channels_last(x)  # for the convolutions only; the pixels keep their layout
        prompt = self.dropout(masked_convs(self.convs, laid_out, keep))
        prompt = self.dropout(self.mlp(prompt.permute(0, 2, 3, 4, 1)))  # [B, T, H, W, 3], per pixel
        prompt = prompt.permute(0, 1, 4, 2, 3)  # [B, T, C, H, W]
        if self.cfg.dropout_twice:
            prompt = self.dropout(prompt)
        cells = self.cells(laid_out)
        scale = self.cfg.intra_scale
        return x.transpose(1, 2) + prompt * scale + prompt * self.spread(cells) * scale, cells


class InterFramePrompter(nn.Module):
    """Patch tokens [B, T, 1 + P, Dv] (after ln_pre) and M -> [B, T, Nl, Dv] prompts added to the local ones."""

    def __init__(self, cfg: STOPConfig, width: int, num_patches: int):
        super().__init__()
        self.cfg = cfg
        self.attention = nn.MultiheadAttention(width, max(1, width // 64), batch_first=True)
        tokens = kernel_size(15, num_patches, OFFICIAL_TOKENS, cfg.kernels)
        channels = kernel_size(25, width, OFFICIAL_WIDTH, cfg.kernels)
        kernel = (3, tokens, channels)
        self.convs = nn.Sequential(conv3d(1, 9, kernel), nn.PReLU(), conv3d(9, 1, kernel))
        self.mlp = nn.Sequential(nn.Linear(num_patches, 16), nn.PReLU(), nn.Linear(16, cfg.num_local))
        saliency = (kernel_size(11, num_patches, OFFICIAL_TOKENS, cfg.kernels),
                    kernel_size(11, width, OFFICIAL_WIDTH, cfg.kernels))
        self.saliency = conv3d(1, 1, (5, *saliency))

    def frame_weights(self, x: torch.Tensor, cells: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, 1, T, P, Dv] attention output -> [B, T] min-max normalised saliency (0 on padded frames)."""
        score = self.saliency(x).squeeze(1)  # [B, T, P, Dv]
        score = (score + score * cells.unsqueeze(-1)).mean(dim=(2, 3))  # [B, T]
        if self.cfg.saliency_norm == "batch":
            real = score[mask]
            low, high = real.min(), real.max()
        else:
            low = score.masked_fill(~mask, float("inf")).amin(dim=1, keepdim=True)
            high = score.masked_fill(~mask, float("-inf")).amax(dim=1, keepdim=True)
        span = (high - low).clamp_min(torch.finfo(score.dtype).tiny)  # the official has no guard: 0 / 0
        return ((score - low) / span) * mask

    def forward(self, tokens: torch.Tensor, cells: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, num_frames = mask.shape
        patches = tokens[:, :, 1:]
        num_patches = patches.shape[2]
        x = patches.flatten(1, 2)  # [B, T * P, Dv]: one sequence per clip
        padded = ~mask.repeat_interleave(num_patches, dim=1)
        x = self.attention(x, x, x, key_padding_mask=padded if padded.any() else None, need_weights=False)[0]
        keep = mask[:, None, :, None, None].to(x.dtype)
        x = channels_last(x.unflatten(1, (num_frames, num_patches)).unsqueeze(1) * keep)  # [B, 1, T, P, Dv]
        weights = self.frame_weights(x, cells, mask)
        x = masked_convs(self.convs, x, keep).squeeze(1)  # [B, T, P, Dv]
        x = self.mlp(x.transpose(2, 3)).transpose(2, 3)  # [B, T, Nl, Dv]: over the token axis
        x = x + x * weights[:, :, None, None]
        return x * self.cfg.inter_scale


@METHODS.register("stop")
class STOP(DGL):
    Config = STOPConfig

    def __init__(self, backbone: Backbone, config: STOPConfig | None = None):
        super().__init__(backbone, config)
        cfg: Any = self.config
        visual = self.clip.visual
        grid_h, grid_w = visual.grid_size
        patch_h, patch_w = visual.conv1.kernel_size
        if grid_h != grid_w or patch_h != patch_w:
            raise ValueError("stop needs square images and patches (its saliency grid is square)")
        dv, dt = visual_width(self.clip), text_width(self.clip)
        self.intra = IntraFramePrompter(cfg, grid_h, patch_h)
        self.inter = InterFramePrompter(cfg, dv, grid_h * grid_w)
        self.visual_adapters = nn.ModuleList(
            BottleneckAdapter(dv, cfg.adapter_dim, cfg.adapter_scale) for _ in visual.transformer.resblocks)
        self.text_adapters = nn.ModuleList(
            BottleneckAdapter(dt, cfg.adapter_dim, cfg.adapter_scale) for _ in self.clip.transformer.resblocks)

    def visual_inputs(self, frames: torch.Tensor, mask: torch.Tensor,
                      local: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The intra-frame prompt on the pixels, then the inter-frame prompts added to every prompted layer's
        local prompts: [B, T, 1 + P, Dv] tokens and [K_p, B, T, Nl, Dv] local prompts."""
        prompted, cells = self.intra(frames, mask)
        tokens = image_tokens(self.clip.visual, prompted.flatten(0, 1)).unflatten(0, mask.shape)
        inter = self.inter(tokens, cells, mask)  # [B, T, Nl, Dv]
        return tokens, local.to(tokens.dtype).unsqueeze(1) + inter

    def global_local_layer(self, layer: int, block: nn.Module, global_tokens: torch.Tensor, frames: torch.Tensor,
                           mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return global_local_block(block, global_tokens, frames, mask, adapter=self.visual_adapters[layer])

    def text_block(self, layer: int, block: nn.Module, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        x = x + block.ls_1(block.attention(block.ln_1(x), attn_mask=attn_mask))
        return x + block.ls_2(block.mlp(block.ln_2(x))) + self.text_adapters[layer](x)
