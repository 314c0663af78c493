"""VoP as docs/methods.md gives it: counts per variant, the F scheme and the CMM against loops, masks."""

from __future__ import annotations

import json

import pytest
import torch
from open_clip.model import CLIP
from open_clip.transformer import ResidualAttentionBlock
from tests.conftest import with_noise_in_padding

from vtrbench.benchmark.cli import main as vtrbench_main
from vtrbench.benchmark.counting import count_parameters
from vtrbench.methods.backbone import Backbone, load_backbone
from vtrbench.methods.vop import NUM_PROMPTS, VARIANTS, ContextPromptGenerator, VoP, VoPConfig, video_block

# ---- parameter counts -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "expected"),
    [([], 14_269_440), (["variant=P"], 528_384)],  # the bare `variant=` is vop's option, not the run label
)
def test_cli_params_on_vit_b_32(options, expected, capsys):
    assert vtrbench_main(["params", "vop", *options, "data.num_frames=12"]) == 0
    assert json.loads(capsys.readouterr().out)["tuned"] == expected


@pytest.fixture(scope="module")
def vit_b_32() -> Backbone:
    return load_backbone("ViT-B-32", "random")


@pytest.mark.parametrize(
    ("options", "expected"),
    [  # docs/methods.md, 12 frames
        ({"variant": "F+C"}, 14_269_440),
        ({"variant": "P"}, 528_384),
        ({"variant": "C"}, 14_257_152),
        ({"variant": "base"}, 122_880),
        ({"variant": "F"}, 122_880),
        ({"variant": "F+P"}, 393_216),
        ({"variant": "F+C", "frame_embedding": "learned"}, 14_269_440 + 12 * 768),
    ],
)
def test_counts_on_vit_b_32(options, expected, vit_b_32):
    method = VoP(vit_b_32, VoPConfig(num_frames=12, **options))
    assert count_parameters(method, vit_b_32.num_elements)["tuned"] == expected


def small_backbone(visual_width: int, text_width: int, layers: int) -> Backbone:
    """A CLIP of the given widths and depth, small vocabulary: only shapes matter for counting."""
    model = CLIP(
        embed_dim=24,
        vision_cfg={"image_size": 16, "patch_size": 8, "width": visual_width, "layers": layers, "head_width": 32},
        text_cfg={"context_length": 16, "vocab_size": 64, "width": text_width, "heads": 2, "layers": layers},
    )
    elements = sum(p.numel() for p in model.parameters())
    return Backbone("small", "random", model, 16, (0.5,) * 3, (0.5,) * 3, elements)


def vop_count(variant: str, dv: int, dt: int, depth: int, frames: int, split: int, learned: bool = False) -> int:
    """The count from docs/methods.md's description, by hand: 8 prompts per layer, 4 generic + 4 specific in P and C."""
    text = depth * 8 * dt
    per_frame_layers = split if variant.startswith("F") else depth
    kind = variant.removeprefix("F").removeprefix("+") or "base"
    frame_part = {
        "base": per_frame_layers * 8 * dv,
        "P": per_frame_layers * 4 * dv + per_frame_layers * frames * 4 * dv,
        # BiLSTM: 2 directions x (W_ih 4dv x dv, W_hh 4dv x dv, two biases 4dv); FC 2dv -> 4dv with bias
        "C": per_frame_layers * 4 * dv + 2 * (8 * dv * dv + 8 * dv) + (2 * dv * 4 * dv + 4 * dv),
    }[kind]
    clip_part = (depth - split) * 8 * dv + learned * frames * dv if variant.startswith("F") else 0
    return text + frame_part + clip_part


@pytest.mark.parametrize(
    ("widths", "config", "split"),
    [
        ((64, 32, 3), VoPConfig(variant="base"), 3),
        ((64, 32, 3), VoPConfig(variant="P", num_frames=5), 3),
        ((64, 32, 3), VoPConfig(variant="C"), 3),
        ((64, 32, 3), VoPConfig(variant="F"), 2),
        ((96, 64, 4), VoPConfig(variant="F+P", num_frames=3, split_layer=1), 1),
        ((96, 64, 4), VoPConfig(variant="F+C", frame_embedding="learned", num_frames=6), 3),
    ],
)
def test_tuned_parameters_follow_the_formulas(widths, config, split):
    backbone = small_backbone(*widths)
    method = VoP(backbone, config)
    assert method.split_layer == split
    expected = vop_count(config.variant, *widths, frames=config.num_frames, split=split,
                         learned=config.frame_embedding == "learned")
    assert count_parameters(method, backbone.num_elements)["tuned"] == expected


def test_prompts_start_as_n_0_002(tiny_backbone):
    torch.manual_seed(0)
    method = VoP(tiny_backbone, VoPConfig(variant="F+P", frame_embedding="learned", num_frames=4))
    for name in ("text_prompts", "generic_prompts", "position_prompts", "video_prompts", "frame_embedding"):
        values = getattr(method, name).detach()
        assert abs(values.std().item() - 0.02) < 0.003, name
        assert abs(values.mean().item()) < 0.003, name


# ---- the computation against loops ------------------------------------------------------------------------


def test_video_block_matches_a_per_clip_loop_through_the_frozen_block():
    torch.manual_seed(0)
    block = ResidualAttentionBlock(64, 4).eval()
    with torch.no_grad():  # non-trivial biases and gains, so every weight is exercised
        for param in block.parameters():
            param.normal_(0, 0.2)
    x = torch.randn(3, 10, 64)
    valid = torch.ones(3, 10, dtype=torch.bool)
    valid[1, 6:] = False
    valid[2, [1, 4, 5]] = False
    with torch.no_grad():
        batched = video_block(block, x, valid)
        for b in range(3):  # each clip alone, only its valid tokens, through open_clip's own forward
            alone = block(x[b, valid[b]][None])[0]
            torch.testing.assert_close(batched[b, valid[b]], alone, rtol=1e-4, atol=1e-5)


def reference_frame_features(method: VoP, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Variants base and F, written as the official code runs a frame, then as docs/methods.md runs the F layers.

    One frame at a time: the prompts are inserted after CLS before ln_pre at layer 1, and dropped after each
    layer; then, per clip, [CLS of the real frames ; video prompts ; their patches] through the frozen blocks.
    """
    visual = method.clip.visual
    blocks = visual.transformer.resblocks
    out = torch.zeros(*mask.shape, visual.ln_post.weight.shape[0])
    for b in range(mask.shape[0]):
        real = []
        for t in range(mask.shape[1]):
            if not mask[b, t]:
                continue
            x = visual.conv1(frames[b, t][None]).flatten(2).transpose(1, 2)
            x = torch.cat([visual.class_embedding[None, None], x], dim=1) + visual.positional_embedding
            for layer in range(method.split_layer):
                x = torch.cat([x[:, :1], method.generic_prompts[layer][None], x[:, 1:]], dim=1)
                if layer == 0:
                    x = visual.ln_pre(x)
                x = blocks[layer](x)
                x = torch.cat([x[:, :1], x[:, 1 + NUM_PROMPTS:]], dim=1)
            real.append(x[0])
        tokens = torch.stack(real)  # [n, 1 + P, Dv]
        cls, patches = tokens[:, 0], tokens[:, 1:].flatten(0, 1)
        for layer, block in enumerate(blocks[method.split_layer:]):
            x = block(torch.cat([cls, method.video_prompts[layer], patches])[None])[0]
            cls, patches = x[: len(real)], x[len(real) + NUM_PROMPTS:]
        out[b, mask[b]] = visual.ln_post(cls)
    return out


@pytest.mark.parametrize("variant", ["base", "F"])
def test_frame_features_match_the_per_frame_and_per_clip_reference(variant, make_tiny_backbone, random_clips):
    torch.manual_seed(1)
    method = VoP(make_tiny_backbone(0), VoPConfig(variant=variant)).eval()
    assert method.split_layer == (4 if variant == "base" else 3)  # round(2/3 of 4 layers) for F
    frames, mask = random_clips([3, 2, 1], 3)
    with torch.no_grad():
        got = method.video_features(frames, mask)
        torch.testing.assert_close(got, reference_frame_features(method, frames, mask), rtol=1e-4, atol=1e-5)


def test_context_prompts_match_the_bilstm_run_on_each_clip_alone():
    torch.manual_seed(0)
    generator = ContextPromptGenerator(16, 4).eval()
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0], [1, 0, 1, 1]], dtype=torch.bool)
    cls = torch.randn(int(mask.sum()), 16)
    with torch.no_grad():
        got = generator(cls, mask)
        start = 0
        for length in mask.sum(dim=1).tolist():  # each clip's real frames, in order, as one unpadded sequence
            alone = generator.fc(generator.cmm(cls[start:start + length][None])[0][0])
            torch.testing.assert_close(got[start:start + length], alone.view(length, 4, 16), rtol=1e-5, atol=1e-6)
            start += length


def test_context_prompts_run_in_float32_under_autocast():
    torch.manual_seed(0)
    generator = ContextPromptGenerator(16, 4)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool)
    cls = torch.randn(5, 16)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        low = generator(cls.bfloat16(), mask)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, generator(cls.bfloat16().float(), mask), rtol=0, atol=0)


# ---- masks and frames -------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_padded_frames_do_not_matter(variant, make_tiny_backbone, random_clips):
    torch.manual_seed(1)
    options = {"frame_embedding": "learned"} if variant.startswith("F") else {}
    method = VoP(make_tiny_backbone(0), VoPConfig(variant=variant, num_frames=4, **options)).eval()
    frames, mask = random_clips([4, 2, 1], 4)
    noisy = with_noise_in_padding(frames, mask, scale=3)
    with torch.no_grad():
        video = method.encode_video(frames, mask)
        torch.testing.assert_close(method.encode_video(noisy, mask), video, rtol=0, atol=1e-6)
        # a clip padded to 4 slots is the same clip given 2 slots: nothing (not the CMM's backward pass,
        # not the F layers' attention) sees the padding
        torch.testing.assert_close(method.encode_video(frames[1:2, :2], mask[1:2, :2]), video[1:2],
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("variant", VARIANTS)
def test_only_c_and_f_let_frames_see_each_other(variant, make_tiny_backbone, random_clips):
    torch.manual_seed(1)
    method = VoP(make_tiny_backbone(0), VoPConfig(variant=variant, num_frames=3)).eval()
    frames, mask = random_clips([3], 3)
    changed = frames.clone()
    changed[0, 2] = torch.randn_like(changed[0, 2])
    with torch.no_grad():
        first = method.video_features(frames, mask)[0, 0]
        first_after = method.video_features(changed, mask)[0, 0]
    assert torch.equal(first, first_after) == (variant in ("base", "P"))


def test_position_prompts_follow_the_frame_slot(make_tiny_backbone, random_clips):
    torch.manual_seed(1)
    method = VoP(make_tiny_backbone(0), VoPConfig(variant="P", num_frames=2)).eval()
    frames, mask = random_clips([2], 2)
    swapped = frames.flip(1)
    with torch.no_grad():
        features, features_swapped = method.video_features(frames, mask), method.video_features(swapped, mask)
    # the same image in another slot gets other prompts
    assert not torch.allclose(features[0, 0], features_swapped[0, 1])


def test_more_frame_slots_than_position_rows_are_refused(tiny_backbone, random_clips):
    method = VoP(tiny_backbone, VoPConfig(variant="F+P", num_frames=2))
    method.encode_video(*random_clips([2, 1], 2))  # fewer slots use the first rows
    with pytest.raises(ValueError, match="num_frames"):
        method.encode_video(*random_clips([3], 3))
    VoP(tiny_backbone, VoPConfig(num_frames=2)).encode_video(*random_clips([3], 3))  # F+C: nothing per slot


# ---- text -------------------------------------------------------------------------------------------------


def test_text_suffix_after_padding_is_inert_and_before_eot_is_not(make_tiny_backbone, caption_tokens):
    for placement, inert in (("after_padding", True), ("before_eot", False)):
        torch.manual_seed(1)
        method = VoP(make_tiny_backbone(0), VoPConfig(variant="base", text_suffix=placement)).eval()
        with torch.no_grad():
            text = method.encode_text(caption_tokens)
            method.text_prompts[:, NUM_PROMPTS // 2:] += torch.randn_like(method.text_prompts[:, NUM_PROMPTS // 2:])
            assert torch.equal(method.encode_text(caption_tokens), text) == inert, placement
            method.text_prompts[:, : NUM_PROMPTS // 2] += 1.0  # the prefix always takes effect
            assert not torch.equal(method.encode_text(caption_tokens), text)


# ---- options ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [{"variant": "F+B"}, {"variant": "VoP"}, {"frame_embedding": "sinusoid"}, {"text_suffix": "end"},
     {"num_frames": 0}, {"variant": "C", "split_layer": 2}, {"variant": "P", "frame_embedding": "learned"}],
)
def test_invalid_options_are_refused(options):
    with pytest.raises(ValueError, match="vop"):
        VoPConfig(**options)


@pytest.mark.parametrize("split_layer", [0, 4, -1])
def test_split_layer_outside_the_tower_is_refused(split_layer, tiny_backbone):
    with pytest.raises(ValueError, match="split_layer.*between 1 and 3"):
        VoP(tiny_backbone, VoPConfig(variant="F", split_layer=split_layer))
