"""LoRA computes what its definition says: each targeted weight W acts as W + (alpha / rank) B A."""

from __future__ import annotations

import torch

from vtrbench.benchmark.counting import tuned_parameters
from vtrbench.methods.lora import LoRA, LoRAConfig
from vtrbench.methods.zero_shot import ZeroShot

# where peft keeps each target's two matrices -> the weight of the plain model they update
TARGET_WEIGHTS = {
    "attn.lora_{}.default.weight": "attn.in_proj_weight",
    "attn.base_layer.out_proj.lora_{}.default.weight": "attn.out_proj.weight",
    "mlp.c_fc.lora_{}.default.weight": "mlp.c_fc.weight",
    "mlp.c_proj.lora_{}.default.weight": "mlp.c_proj.weight",
}


def test_every_update_is_added_once_as_the_merged_weights_give(make_tiny_backbone, caption_tokens, random_clips):
    """peft 0.21 added the attention output projection's update twice in every forward pass (its
    MultiheadAttention layer merged out_proj's delta by hand and then again through out_proj itself; fixed in
    peft 0.22): LoRA scored 1 T2V R@1 point apart on the offline MSR-VTT with the same rate and seeds."""
    config = LoRAConfig(rank=4, alpha=8.0)
    method, plain = LoRA(make_tiny_backbone(0), config).eval(), ZeroShot(make_tiny_backbone(0)).eval()
    tuned = tuned_parameters(method)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for value in tuned.values():
            value.copy_(torch.randn(value.shape, generator=generator) * 0.05)
    plain_weights = dict(plain.named_parameters())
    merged = 0
    with torch.no_grad():
        for name, a in tuned.items():
            for lora_name, weight_name in TARGET_WEIGHTS.items():
                block, found, _ = name.partition(lora_name.format("A"))
                if found:
                    b = tuned[block + lora_name.format("B")]
                    plain_weights[block + weight_name].add_(config.alpha / config.rank * b @ a)
                    merged += 1
    assert merged == 4 * 2 * len(method.clip.transformer.resblocks)  # 4 targets, both towers, every block
    frames, mask = random_clips([3, 2], 3)
    with torch.no_grad():
        torch.testing.assert_close(method.encode_text(caption_tokens), plain.encode_text(caption_tokens))
        torch.testing.assert_close(method.encode_video(frames, mask), plain.encode_video(frames, mask))
