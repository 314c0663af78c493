"""MV-Adapter as docs/methods.md specifies: counts, CMT variants, init, masks, the position tables' sizes."""

from __future__ import annotations

import json

import pytest
import torch
from tests.conftest import with_noise_in_padding

from vtrbench.benchmark.cli import main as vtrbench_main
from vtrbench.benchmark.counting import count_parameters
from vtrbench.methods.mv_adapter import MVAdapter, MVAdapterConfig


def trm(d: int) -> int:
    """One pre-LN block of width d with a 4d MLP: two LayerNorms, q/k/v + out projections, the MLP."""
    return 2 * 2 * d + (3 * d * d + 3 * d) + (d * d + d) + (d * 4 * d + 4 * d) + (4 * d * d + d)


def mv_adapter_count(dv: int, dt: int, layers: int, frames: int, words: int, d: int = 64, cmt_layers: int = 2,
                     down_in: bool = True, factor: int = 32, calibration: int = 16) -> int:
    own = d * d + d + 2 * d * calibration + calibration + calibration * d  # G, W1, W2 (no bias)
    video = (dv * d + d) + (d * dv + dv) + 2 * d + trm(d) + (1 + 2 * frames) * d + d + own
    text = (dt * d + d) + (d * dt + dt) + 2 * d + trm(d) + words * d
    cmt = cmt_layers * (factor + sum(factor * (w if down_in else d) + (w if down_in else d) for w in (dv, dt)))
    return layers * (video + text) + cmt


def clip_bias_count(dv: int, dt: int, layers: int) -> int:
    """Every CLIP bias: per block q/k/v 3w, out w, two LayerNorms 2w, MLP 4w + w; ln_pre, ln_post, ln_final."""
    return layers * 11 * (dv + dt) + 2 * dv + dt


@pytest.mark.parametrize(
    ("options", "expected"),
    [([], 3_401_728), (["cmt_position=down_out"], 3_325_696), (["train_clip_biases=true"], 3_401_728 + 171_008)],
)
def test_cli_params_on_vit_b_32(options, expected, capsys):
    assert mv_adapter_count(768, 512, 12, 12, 32, down_in="cmt_position=down_out" not in options) + (
        clip_bias_count(768, 512, 12) if options == ["train_clip_biases=true"] else 0) == expected
    assert vtrbench_main(["params", "mv_adapter", *options, "data.num_frames=12", "data.max_words=32",
                          "--backbone", "ViT-B-32"]) == 0
    assert json.loads(capsys.readouterr().out)["tuned"] == expected


@pytest.mark.parametrize(
    ("widths", "config"),
    [((64, 32, 3), MVAdapterConfig(bottleneck=16, num_frames=5, max_words=16)),
     ((64, 32, 3), MVAdapterConfig(bottleneck=8, heads=4, num_frames=2, max_words=10, cmt_position="down_out",
                                   cmt_layers=3, factor_dim=4, calibration_dim=3)),
     ((32, 64, 2), MVAdapterConfig(bottleneck=8, num_frames=3, max_words=16, cmt_layers=0, train_clip_biases=True))],
)
def test_tuned_parameters_follow_the_formula(widths, config, small_backbone):
    backbone = small_backbone(*widths)
    method = MVAdapter(backbone, config)
    expected = mv_adapter_count(*widths, config.num_frames, config.max_words, config.bottleneck, config.cmt_layers,
                                config.cmt_position == "down_in", config.factor_dim, config.calibration_dim)
    expected += clip_bias_count(*widths) if config.train_clip_biases else 0
    assert count_parameters(method, backbone.num_elements)["tuned"] == expected


def test_starts_as_zero_shot_clip(make_tiny_backbone, caption_tokens, random_clips):
    """Up is zero in every adapter, so text and frame vectors are the frozen CLIP's until training."""
    from vtrbench.methods.zero_shot import ZeroShot

    torch.manual_seed(1)
    method, plain = MVAdapter(make_tiny_backbone(0)).eval(), ZeroShot(make_tiny_backbone(0)).eval()
    frames, mask = random_clips([3, 1], 3)
    with torch.no_grad():
        torch.testing.assert_close(method.encode_text(caption_tokens), plain.encode_text(caption_tokens))
        torch.testing.assert_close(method.encode_video(frames, mask), plain.encode_video(frames, mask))
    for adapter in [*method.visual_adapters, *method.text_adapters]:
        assert torch.count_nonzero(adapter.up.weight) == 0 and torch.count_nonzero(adapter.up.bias) == 0
    assert all(torch.count_nonzero(f) == 0 for f in method.cmt_factors)
    assert all(torch.count_nonzero(a.calibration_w2.weight) == 0 for a in method.visual_adapters)


def test_initialisation_follows_the_release(small_backbone):
    torch.manual_seed(0)
    method = MVAdapter(small_backbone(256, 128, 2), MVAdapterConfig(num_frames=4, max_words=16))
    video, text = method.visual_adapters[0], method.text_adapters[0]
    # TRM: in_proj std width^-1/2, the other matrices (2 width)^-1/2, width = the tower's (256 / 128), not 64
    assert video.block.attn.in_proj_weight.std().item() == pytest.approx(256 ** -0.5, rel=0.05)
    assert video.block.mlp.c_fc.weight.std().item() == pytest.approx(512 ** -0.5, rel=0.05)
    assert text.block.attn.out_proj.weight.std().item() == pytest.approx(256 ** -0.5, rel=0.1)
    assert text.down.weight.std().item() == pytest.approx(256 ** -0.5, rel=0.05)  # text Dn: (2 Dt)^-1/2
    assert video.down.weight.abs().max().item() <= 256 ** -0.5  # kaiming-uniform(a=sqrt 5): U(+-1/sqrt(fan_in))
    assert video.positional_embedding.std().item() == pytest.approx(0.01, rel=0.2)
    assert video.cc.std().item() == pytest.approx(64 ** -0.5, rel=0.3)


def test_cmt_factors_are_shared_by_both_towers_on_the_last_layers(make_tiny_backbone, caption_tokens, random_clips):
    torch.manual_seed(1)
    method = MVAdapter(make_tiny_backbone(0), MVAdapterConfig(num_frames=2)).eval()  # 4 layers: CMT on 2 and 3
    assert [a.cmt is not None for a in method.text_adapters] == [False, False, True, True]
    assert [a.cmt is not None for a in method.visual_adapters] == [False, False, True, True]
    with torch.no_grad():
        for adapter in [*method.visual_adapters, *method.text_adapters]:
            adapter.up.weight.normal_(0, 0.5)  # let the adapters act
    frames, mask = random_clips([2, 1], 2)

    def outputs() -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            return method.encode_text(caption_tokens), method.encode_video(frames, mask)

    text, video = outputs()
    with torch.no_grad():
        method.cmt_factors[1].add_(1.0)
    text_after, video_after = outputs()
    assert not torch.equal(text_after, text) and not torch.equal(video_after, video)


@pytest.mark.parametrize("position", ["down_in", "down_out"])
def test_cmt_rescales_the_down_projection_on_the_side_it_names(position, tiny_backbone):
    method = MVAdapter(tiny_backbone, MVAdapterConfig(cmt_position=position))
    adapter, factor = method.visual_adapters[-1], torch.randn(32)
    beta = adapter.cmt(factor)
    width = adapter.down.weight.shape[1]  # the tower's width in, the adapter's width out
    assert beta.shape == ((width,) if position == "down_in" else (adapter.down.weight.shape[0],))
    expected = adapter.down.weight * (beta[None, :] if position == "down_in" else beta[:, None])
    torch.testing.assert_close(adapter.down_weight(factor), expected)


def test_padded_frames_change_nothing_and_a_short_clip_equals_it_padded(make_tiny_backbone, caption_tokens,
                                                                        random_clips):
    torch.manual_seed(1)
    method = MVAdapter(make_tiny_backbone(0), MVAdapterConfig(num_frames=4)).eval()
    with torch.no_grad():
        for param in method.parameters():
            if param.requires_grad:
                param.add_(0.1 * torch.randn_like(param))  # every part of the adapters active
    frames, mask = random_clips([4, 2, 1], 4)
    noisy = with_noise_in_padding(frames, mask, scale=3)
    with torch.no_grad():
        video = method.encode_video(frames, mask)
        torch.testing.assert_close(method.encode_video(noisy, mask), video, rtol=0, atol=1e-6)
        # a clip of 2 slots takes the position rows its frames have in a clip padded to num_frames
        torch.testing.assert_close(method.encode_video(frames[1:2, :2], mask[1:2, :2]), video[1:2],
                                   rtol=1e-5, atol=1e-5)


def test_refuses_inputs_longer_than_its_position_tables(tiny_backbone, caption_tokens, random_clips):
    method = MVAdapter(tiny_backbone, MVAdapterConfig(num_frames=2, max_words=8))
    with pytest.raises(ValueError, match="num_frames=2"):
        method.encode_video(*random_clips([3], 3))
    with pytest.raises(ValueError, match="max_words=8"):
        method.encode_text(caption_tokens)  # the longest caption runs past 8 tokens


@pytest.mark.parametrize("options", [{"cmt_position": "up_in"}, {"bottleneck": 63}, {"num_frames": 0},
                                     {"cmt_layers": -1}])
def test_invalid_options_are_refused(options):
    with pytest.raises(ValueError, match="mv_adapter"):
        MVAdapterConfig(**options)


def test_the_method_yaml_sizes_the_tables_from_the_data_settings():
    from vtrbench.benchmark.config import resolve_config

    config = resolve_config(["method=mv_adapter", "data.num_frames=7", "data.max_words=20"])
    assert (config.mv_adapter.num_frames, config.mv_adapter.max_words) == (7, 20)
