"""Cross-Modal Adapter as docs/methods.md specifies: counts, the shared slice, init, text-conditioned pooling."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from vtrbench.benchmark.cli import main as vtrbench_main
from vtrbench.benchmark.counting import count_parameters
from vtrbench.methods.cross_modal_adapter import CrossModalAdapter, CrossModalAdapterConfig


def adapter_count(layers: int, dv: int, dt: int, r: int, ds: int) -> int:
    """Two adapters per block and tower: Dn (d -> r, bias), own U (r -> d - d_s, bias, absent at d_s = d);
    one shared S (r -> d_s, bias) per block and sublayer."""
    def own(d: int) -> int:
        return d * r + r + (r * (d - ds) + d - ds if d > ds else 0)

    return 2 * layers * (own(dv) + own(dt) + (r * ds + ds if ds else 0))


@pytest.mark.parametrize(
    ("options", "expected"),
    [([], 519_168), (["bottleneck=16", "shared_dim=512"], 805_632)],  # MSR-VTT; ActivityNet (no text U)
)
def test_cli_params_on_vit_b_32(options, expected, capsys):
    assert adapter_count(12, 768, 512, *((8, 16) if not options else (16, 512))) == expected
    assert vtrbench_main(["params", "cross_modal_adapter", *options, "--backbone", "ViT-B-32"]) == 0
    assert json.loads(capsys.readouterr().out)["tuned"] == expected


@pytest.mark.parametrize(("widths", "r", "ds"), [((64, 32, 2), 4, 8), ((64, 32, 3), 8, 32), ((32, 32, 2), 2, 0)])
def test_tuned_parameters_follow_the_formula(widths, r, ds, small_backbone):
    backbone = small_backbone(*widths)
    method = CrossModalAdapter(backbone, CrossModalAdapterConfig(bottleneck=r, shared_dim=ds))
    assert count_parameters(method, backbone.num_elements)["tuned"] == adapter_count(widths[2], *widths[:2], r, ds)


def test_initialisation_is_trunc_normal_with_zero_biases(small_backbone):
    torch.manual_seed(0)
    method = CrossModalAdapter(small_backbone(256, 256, 2), CrossModalAdapterConfig(bottleneck=32, shared_dim=16))
    tuned = {n: p for n, p in method.named_parameters() if p.requires_grad}
    weights = torch.cat([p.flatten() for n, p in tuned.items() if n.endswith("weight")])
    assert all(torch.count_nonzero(p) == 0 for n, p in tuned.items() if n.endswith("bias"))
    assert abs(weights.std().item() - 0.01) < 5e-4 and weights.abs().max() < 0.1


def test_the_shared_matrix_feeds_both_towers_and_the_own_ones_only_theirs(make_tiny_backbone, caption_tokens,
                                                                          random_clips):
    torch.manual_seed(0)
    method = CrossModalAdapter(make_tiny_backbone(0)).eval()
    frames, mask = random_clips([2, 1], 2)

    def outputs() -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            return method.encode_text(caption_tokens), method.encode_video(frames, mask)

    text, video = outputs()
    with torch.no_grad():
        method.visual_adapters[1].mlp.up.weight.add_(0.5)
    text_after_visual, video_after_visual = outputs()
    assert torch.equal(text_after_visual, text) and not torch.equal(video_after_visual, video)
    with torch.no_grad():
        method.shared_up[1].mlp.weight.add_(0.5)
    text_after_shared, video_after_shared = outputs()
    assert not torch.equal(text_after_shared, text) and not torch.equal(video_after_shared, video_after_visual)


def test_adapter_puts_the_shared_channels_last(tiny_backbone):
    torch.manual_seed(0)
    method = CrossModalAdapter(tiny_backbone, CrossModalAdapterConfig(bottleneck=4, shared_dim=16))
    own, shared = method.text_adapters[0].attn, method.shared_up[0].attn
    h = torch.randn(3, 5, own.down.in_features)  # the text tower's width
    z = F.linear(h, own.down.weight, own.down.bias)
    z = z * torch.sigmoid(1.702 * z)  # QuickGELU
    expected = h + torch.cat([F.linear(z, own.up.weight, own.up.bias), F.linear(z, shared.weight, shared.bias)], -1)
    torch.testing.assert_close(method.adapt(h, own, shared), expected)


def direct_scores(text: torch.Tensor, frames: torch.Tensor, mask: torch.Tensor, temperature: float) -> torch.Tensor:
    """The definition, one caption and one clip at a time: softmax over the real frames only."""
    rows = []
    for t in text:
        row = []
        for f, m in zip(frames, mask, strict=True):
            real = f[m]
            weights = torch.softmax(real @ t / temperature, dim=0)
            row.append(F.cosine_similarity(t, weights @ real, dim=0))
        rows.append(torch.stack(row))
    return torch.stack(rows)


def test_text_conditioned_pooling_matches_the_definition(tiny_backbone):
    method = CrossModalAdapter(tiny_backbone)
    generator = torch.Generator().manual_seed(0)
    text, frames = torch.randn(5, 16, generator=generator), 3 * torch.randn(4, 6, 16, generator=generator)
    mask = torch.arange(6)[None, :] < torch.tensor([6, 1, 3, 4])[:, None]
    # padded slots filled with values that would dominate the softmax and the sum if they took part
    frames = torch.where(mask[..., None], frames, torch.full_like(frames, 50.0))
    scale = method.clip.logit_scale.exp()
    with torch.no_grad():
        for temperature in (5.0, 1.0):  # the default, and a sharper pooling: the temperature must take part
            method.config.temperature = temperature
            expected = scale * direct_scores(text, frames, mask, temperature)
            torch.testing.assert_close(method.similarity(text, frames, mask), expected, rtol=1e-5, atol=1e-5)


def test_one_frame_clip_scores_as_the_cosine_with_that_frame(tiny_backbone, caption_tokens, random_clips):
    method = CrossModalAdapter(tiny_backbone).eval()
    frames, mask = random_clips([1, 1], 3)
    with torch.no_grad():
        text, video = method.encode_text(caption_tokens), method.encode_video(frames, mask)
        cosine = F.normalize(text, dim=-1) @ F.normalize(video[:, 0], dim=-1).T
        torch.testing.assert_close(method.similarity(text, video, mask), method.clip.logit_scale.exp() * cosine)


def test_refuses_a_shared_width_beyond_the_towers(small_backbone):
    with pytest.raises(ValueError, match="shared_dim=64"):
        CrossModalAdapter(small_backbone(64, 32, 2), CrossModalAdapterConfig(shared_dim=64))
    with pytest.raises(ValueError, match="temperature"):
        CrossModalAdapterConfig(temperature=0)
