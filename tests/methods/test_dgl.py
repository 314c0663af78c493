"""DGL as docs/methods.md defines it: batched global-local layer, parameter counts, postfix placement, masks, and
the official code's video heads and initialisation."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
import torch.nn.functional as F
from open_clip.transformer import ResidualAttentionBlock
from tests.conftest import with_noise_in_padding

from vtrbench.benchmark.cli import main as vtrbench_main
from vtrbench.benchmark.counting import count_parameters
from vtrbench.methods.dgl import DGL, VISUAL_OUTPUT_TYPES, DGLConfig, global_local_block, vpt_uniform_bound


def reference_global_local_block(block, global_tokens, frames, mask):
    """The definition, one clip and one frame at a time through the layer's own nn.MultiheadAttention."""
    global_out, frames_out = [], []
    for b in range(frames.shape[0]):
        g, x = block.ln_1(global_tokens[b]), block.ln_1(frames[b])
        clip_frames = []
        for t in range(frames.shape[1]):
            keys = torch.cat([g, x[t]])[None]
            y = frames[b, t] + block.attn(x[t][None], keys, keys, need_weights=False)[0][0]
            clip_frames.append(y + block.mlp(block.ln_2(y)))
        keys = torch.cat([g] + [x[t] for t in range(frames.shape[1]) if mask[b, t]])[None]
        y = global_tokens[b] + block.attn(g[None], keys, keys, need_weights=False)[0][0]
        global_out.append(y + block.mlp(block.ln_2(y)))
        frames_out.append(torch.stack(clip_frames))
    return torch.stack(global_out), torch.stack(frames_out)


def test_batched_global_local_block_matches_per_frame_loop():
    torch.manual_seed(0)
    block = ResidualAttentionBlock(64, 4).eval()
    with torch.no_grad():  # non-trivial biases and gains, so every weight is exercised
        for param in block.parameters():
            param.normal_(0, 0.2)
    global_tokens, frames = torch.randn(3, 2, 64), torch.randn(3, 4, 6, 64)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.bool)
    with torch.no_grad():
        batched = global_local_block(block, global_tokens, frames, mask)
        expected = reference_global_local_block(block, global_tokens, frames, mask)
    for got, want in zip(batched, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def linear_count(nl: int, kp: int, dv: int, dt: int, ng: int) -> int:
    return nl * kp * dv + 2 * (dv * dt + dt) + ng * dv


def transformer_count(nt: int, nl: int, frames: int, kp: int, dv: int, dt: int, ng: int) -> int:
    table = (nt + nl * frames) * kp * dv
    # pre-LN block: LayerNorms 2*2Dv, q/k/v 3Dv^2 + 3Dv, out Dv^2 + Dv, MLP Dv->4Dv->Dv 8Dv^2 + 5Dv
    block = 12 * dv * dv + 13 * dv
    text_mlp = dv * 2 * dv + 2 * dv + 2 * dv * dt + dt
    return table + block + text_mlp + ng * dv


@pytest.mark.parametrize(
    ("widths", "config", "expected"),
    [
        ((64, 32, 2), DGLConfig(num_local=2, num_text=4, num_global=3), linear_count(2, 2, 64, 32, 3)),
        ((64, 32, 2), DGLConfig(num_local=3, num_text=6, num_global=1, prompt_layers=1),
         linear_count(3, 1, 64, 32, 1)),
        ((96, 64, 3), DGLConfig(latent="transformer", num_frames=3),
         transformer_count(8, 4, 3, 3, 96, 64, 4)),
        ((96, 64, 3), DGLConfig(latent="transformer", num_text=4, num_local=2, num_global=2, num_frames=5,
                                prompt_layers=2), transformer_count(4, 2, 5, 2, 96, 64, 2)),
    ],
)
def test_tuned_parameters_follow_the_formulas(widths, config, expected, small_backbone):
    backbone = small_backbone(*widths)
    assert count_parameters(DGL(backbone, config), backbone.num_elements)["tuned"] == expected


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["latent=linear"], 827_392),
        (["latent=transformer", "num_frames=12"], transformer_count(8, 4, 12, 12, 768, 512, 4)),  # 9,575,168
    ],
)
def test_cli_params_on_vit_b_32(options, expected, capsys):
    assert vtrbench_main(["params", "dgl", *options]) == 0
    assert json.loads(capsys.readouterr().out)["tuned"] == expected


@pytest.mark.parametrize("latent", ["linear", "transformer"])
def test_postfix_after_padding_is_inert_and_before_eot_is_not(latent, make_tiny_backbone, caption_tokens):
    for placement, inert in (("after_padding", True), ("before_eot", False)):
        torch.manual_seed(1)
        method = DGL(make_tiny_backbone(0), DGLConfig(latent=latent, num_frames=2, postfix=placement)).eval()
        with torch.no_grad():
            prompts = method.latent()
            text = method.text_features(caption_tokens, prompts)
            perturbed = prompts._replace(postfix=prompts.postfix + torch.randn_like(prompts.postfix))
            changed = method.text_features(caption_tokens, perturbed)
        assert torch.equal(text, changed) == inert, placement


@pytest.mark.parametrize(
    ("latent", "output_type"),
    [("linear", kind) for kind in VISUAL_OUTPUT_TYPES]
    + [("transformer", "average_global_prompt_and_frame_cls_token")],
)
def test_padded_frames_do_not_reach_the_video_vector(latent, output_type, make_tiny_backbone, random_clips):
    torch.manual_seed(1)
    config = DGLConfig(latent=latent, num_frames=4, visual_output_type=output_type)
    method = DGL(make_tiny_backbone(0), config).eval()
    frames, mask = random_clips([4, 2, 1], 4)
    noisy = with_noise_in_padding(frames, mask, scale=3)
    with torch.no_grad():
        video = method.encode_video(frames, mask)
        torch.testing.assert_close(method.encode_video(noisy, mask), video, rtol=0, atol=1e-6)
        if latent == "linear":  # frame prompts shared by all slots: a padded clip equals the clip alone
            alone = method.encode_video(frames[2:, :1], mask[2:, :1])
            torch.testing.assert_close(alone, video[2:], rtol=1e-5, atol=1e-5)


def official_video_vector(tokens: torch.Tensor, num_global: int, real_frames: int, kind: str) -> torch.Tensor:
    """The official `encode_image` head on one clip's projected tokens [Ng + T, D] (global tokens first, then
    each frame's CLS): the first global token, or a plain mean. Frames past `real_frames` are padding, left
    out here where the official code averages repeats of the last frame (the documented difference)."""
    global_tokens, frame_cls = tokens[:num_global], tokens[num_global : num_global + real_frames]
    if kind == "global_prompt0":
        return global_tokens[0]
    if kind == "average_global_prompt":
        return torch.mean(global_tokens, 0)
    if kind == "average_frame_cls_token":
        return torch.mean(frame_cls, 0)
    assert kind == "average_global_prompt_and_frame_cls_token"
    return torch.mean(torch.cat([global_tokens, frame_cls]), 0)


@pytest.mark.parametrize("latent", ["linear", "transformer"])
def test_every_video_vector_follows_the_official_formula(latent, make_tiny_backbone, random_clips):
    torch.manual_seed(2)
    method = DGL(make_tiny_backbone(0), DGLConfig(latent=latent, num_global=3, num_frames=4)).eval()
    lengths = [4, 2, 1]
    frames, mask = random_clips(lengths, 4)
    with torch.no_grad():
        trunk = method.video_features(frames, mask)  # [B, Ng + T, Dv] after ln_post, computed once
        projected = trunk @ method.clip.visual.proj
        # the default is the official arithmetic; `normalized` L2-normalises each projected token first
        for options, tokens in (({}, projected), ({"average": "normalized"}, F.normalize(projected, dim=-1))):
            for kind in VISUAL_OUTPUT_TYPES:
                if options and not kind.startswith("average_"):  # refused: one token, nothing to average
                    continue
                method.config = dataclasses.replace(method.config, visual_output_type=kind, **options)
                expected = torch.stack([official_video_vector(tokens[b], 3, n, kind) for b, n in enumerate(lengths)])
                torch.testing.assert_close(method.video_head(trunk, mask), expected, rtol=1e-5, atol=1e-6,
                                           msg=f"{options} {kind}")


def assert_uniform(values: torch.Tensor, bound: float) -> None:
    assert values.abs().max() <= bound and values.abs().max() > 0.95 * bound  # fills the whole range
    assert values.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1)


def test_official_init_uniform_prompts_and_unit_normal_table(make_tiny_backbone, small_backbone):
    # ViT-B/32's patch and width (one layer is enough for the rule): the bound is sqrt(6 / 3840) = 0.0395
    vit_b_32 = small_backbone(768, 64, 1, patch_size=32)
    assert vpt_uniform_bound(vit_b_32.model.visual) == pytest.approx(math.sqrt(6 / (3 * 32 * 32 + 768)))
    assert vpt_uniform_bound(vit_b_32.model.visual) == pytest.approx(0.0395, abs=5e-5)
    tiny = make_tiny_backbone(0)  # patch 8, width 128
    for backbone, prompt_layers in ((vit_b_32, 1), (tiny, 4)):
        bound = vpt_uniform_bound(backbone.model.visual)
        torch.manual_seed(0)
        linear = DGL(backbone, DGLConfig(latent="linear"))
        assert linear.latent.latent.shape[1] == prompt_layers
        assert_uniform(linear.global_prompts, bound)
        assert_uniform(linear.latent.latent, bound)
        transformer = DGL(backbone, DGLConfig(latent="transformer", num_frames=12))
        assert_uniform(transformer.global_prompts, bound)
        table = transformer.latent.table
        assert table.std().item() == pytest.approx(1.0, rel=0.05) and abs(table.mean().item()) < 0.05


def test_normal_init_keeps_the_small_normal_rule(tiny_backbone):
    torch.manual_seed(0)
    linear = DGL(tiny_backbone, DGLConfig(latent="linear", init="normal"))
    transformer = DGL(tiny_backbone, DGLConfig(latent="transformer", num_frames=12, init="normal"))
    for values in (linear.global_prompts, linear.latent.latent, transformer.latent.table):
        assert values.std().item() == pytest.approx(0.02, rel=0.1)


def test_prompts_are_computed_once_per_training_forward(tiny_backbone, caption_tokens, random_clips):
    method = DGL(tiny_backbone, DGLConfig(latent="transformer", num_frames=2))
    calls = []
    method.latent.register_forward_hook(lambda *_: calls.append(1))
    method(caption_tokens, *random_clips([2, 1, 2, 2], 2))
    assert len(calls) == 1


def test_transformer_latent_refuses_a_different_frame_count(tiny_backbone, random_clips):
    method = DGL(tiny_backbone, DGLConfig(latent="transformer", num_frames=3))
    with pytest.raises(ValueError, match="num_frames"):
        method.encode_video(*random_clips([2], 2))


@pytest.mark.parametrize(
    "options", [{"latent": "mlp"}, {"num_text": 6}, {"postfix": "end"}, {"visual_output_type": "cls"},
                {"average": "mean"}, {"init": "xavier"}]
)
def test_invalid_options_are_refused(options):
    with pytest.raises(ValueError):
        DGLConfig(**options)


def test_cli_params_takes_overrides_after_the_backbone_option(capsys):
    # the README's form: `vtrbench params dgl --backbone ViT-B-32 latent=transformer data.num_frames=12`
    assert vtrbench_main(["params", "dgl", "--backbone", "ViT-B-32", "latent=transformer", "data.num_frames=12"]) == 0
    assert json.loads(capsys.readouterr().out)["tuned"] == 9_575_168
    assert vtrbench_main(["params", "dgl", "--backbone", "ViT-B-32", "--no-such-option"]) == 2
    assert "'--no-such-option': not an option of this command" in capsys.readouterr().err
