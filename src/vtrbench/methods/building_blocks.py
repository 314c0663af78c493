"""Building blocks several methods share, so that a method imports another method's file only where it is
that method plus parts (STOP on DGL: docs/architecture.md).

- Deep prompts: their initialisation (`new_prompts`, N(0, 0.02)), how many layers receive them
  (`resolve_prompt_layers`), and a text tower run with deep prefix and postfix prompts
  (`prompted_text_features`: separate_prompt's, DGL's and VoP's text path).
- Attention over a frozen open_clip block, written out: nn.MultiheadAttention's head layout
  (`split_heads`, `merge_heads`) and the check that a block has the plain attention these re-implement
  (`check_global_local_compatible`: DGL's global-local layers, VoP's F layers).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from vtrbench.methods.base import causal_mask, drop_common_padding, eot_positions

PROMPT_INIT_STD = 0.02


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
    tokens = drop_common_padding(tokens)  # an after-padding postfix moves up with it: still after every EOT
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


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[..., L, D] -> [..., heads, L, D / heads] (nn.MultiheadAttention's head layout)."""
    return x.unflatten(-1, (heads, -1)).transpose(-3, -2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    return x.transpose(-3, -2).flatten(-2)


def check_global_local_compatible(blocks: nn.ModuleList, method: str = "dgl") -> None:
    """The global-local layer re-implements nn.MultiheadAttention's plain path; refuse anything else."""
    for block in blocks:
        attn = getattr(block, "attn", None)
        if (
            not isinstance(attn, nn.MultiheadAttention)
            or not attn._qkv_same_embed_dim
            or attn.bias_k is not None
            or attn.add_zero_attn
            or hasattr(block, "ln_1_kv")
        ):
            raise ValueError(f"{method} needs open_clip's plain ResidualAttentionBlock (nn.MultiheadAttention)")
