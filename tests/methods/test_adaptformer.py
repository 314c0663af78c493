"""AdaptFormer (VoP's Adapter^FFN) as docs/methods.md specifies: counts, init, the parallel placement."""

from __future__ import annotations

import json

import pytest
import torch

from vtrbench.benchmark.cli import main as vtrbench_main
from vtrbench.benchmark.counting import count_parameters
from vtrbench.methods.adaptformer import AdaptFormer, AdaptFormerConfig


def adaptformer_count(dv: int, dt: int, layers: int, hidden: int = 64) -> int:
    return layers * sum(2 * width * hidden + hidden + width for width in (dv, dt))


def test_cli_params_on_vit_b_32(capsys):
    assert adaptformer_count(768, 512, 12) == 1_982_976
    assert vtrbench_main(["params", "adaptformer", "--backbone", "ViT-B-32"]) == 0
    assert json.loads(capsys.readouterr().out)["tuned"] == 1_982_976


@pytest.mark.parametrize(("widths", "hidden"), [((64, 32, 2), 8), ((32, 96, 3), 16)])
def test_tuned_parameters_follow_the_formula(widths, hidden, small_backbone):
    backbone = small_backbone(*widths)
    method = AdaptFormer(backbone, AdaptFormerConfig(bottleneck=hidden))
    assert count_parameters(method, backbone.num_elements)["tuned"] == adaptformer_count(*widths, hidden)


def test_starts_as_zero_shot_clip(make_tiny_backbone, caption_tokens, random_clips):
    from vtrbench.methods.zero_shot import ZeroShot

    torch.manual_seed(1)
    method, plain = AdaptFormer(make_tiny_backbone(0)).eval(), ZeroShot(make_tiny_backbone(0)).eval()
    frames, mask = random_clips([3, 1], 3)
    with torch.no_grad():
        torch.testing.assert_close(method.encode_text(caption_tokens), plain.encode_text(caption_tokens))
        torch.testing.assert_close(method.encode_video(frames, mask), plain.encode_video(frames, mask))
    for adapter in [*method.visual_adapters, *method.text_adapters]:
        assert torch.count_nonzero(adapter.up.weight) + torch.count_nonzero(adapter.up.bias) == 0
        assert torch.count_nonzero(adapter.down.bias) == 0 and torch.count_nonzero(adapter.down.weight) > 0


def test_the_adapter_runs_parallel_to_the_mlp_on_the_block_input(tiny_backbone):
    """x' = x + MLP(LN2 x) + 0.1 Up(ReLU(Dn x)), with x the attention branch's output: the input of LN2."""
    torch.manual_seed(0)
    method = AdaptFormer(tiny_backbone, AdaptFormerConfig(dropout=0.0)).eval()
    block, adapter = method.clip.visual.transformer.resblocks[1], method.visual_adapters[1]
    with torch.no_grad():
        adapter.up.weight.normal_()
        x = torch.randn(2, 5, block.ln_1.normalized_shape[0])  # the tower's width
        after_attention = x + block.attention(block.ln_1(x))
        branch = adapter.up(torch.relu(adapter.down(after_attention)))
        expected = after_attention + block.mlp(block.ln_2(after_attention)) + 0.1 * branch
        torch.testing.assert_close(method.visual_block(1, block, x), expected)


def test_dropout_acts_in_training_only(tiny_backbone):
    method = AdaptFormer(tiny_backbone, AdaptFormerConfig(dropout=0.5))
    adapter = method.text_adapters[0]
    with torch.no_grad():
        adapter.up.weight.normal_()
        x = torch.randn(3, 4, adapter.down.in_features)
        method.eval()
        assert torch.equal(adapter(x), adapter(x))
        method.train()
        assert not torch.equal(adapter(x), adapter(x))
