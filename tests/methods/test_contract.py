"""The method contract, checked for every registered method (a new method gets these tests for free)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tests.conftest import with_noise_in_padding

from vtrbench.benchmark.counting import count_parameters, tuned_parameters
from vtrbench.benchmark.results import load_tuned_weights, save_tuned_weights
from vtrbench.benchmark.runner import contrastive_loss
from vtrbench.methods.backbone import Backbone
from vtrbench.methods.base import RetrievalMethod
from vtrbench.registry import METHODS

ALL_METHODS = METHODS.names()
BATCH = 4
NUM_FRAMES = 3


def build(name: str, make_backbone: Callable[[int], Backbone], method_seed: int = 1) -> RetrievalMethod:
    """Same frozen backbone for a given seed 0; the method's own initialisation drawn from `method_seed`."""
    backbone = make_backbone(0)
    torch.manual_seed(method_seed)
    return METHODS.get(name)(backbone)


def scores(method: RetrievalMethod, tokens: torch.Tensor, frames: torch.Tensor,
           mask: torch.Tensor) -> torch.Tensor:
    method.eval()
    with torch.no_grad():
        return method.similarity(method.encode_text(tokens), method.encode_video(frames, mask), mask)


@pytest.mark.parametrize("name", ALL_METHODS)
def test_one_step_changes_only_tuned_parameters(name, make_tiny_backbone, caption_tokens, random_clips):
    method = build(name, make_tiny_backbone)
    frames, mask = random_clips([3, 1, 2, 3], NUM_FRAMES)
    before = {key: value.clone() for key, value in method.state_dict().items()}
    tuned = tuned_parameters(method)
    if not tuned:
        assert count_parameters(method, 1)["tuned"] == 0
        return
    optimizer = torch.optim.AdamW(tuned.values(), lr=1e-2)
    method.train()
    loss = contrastive_loss(method, *method(caption_tokens[:BATCH], frames, mask), mask)
    loss.backward()
    # a tuned parameter outside the graph would be counted and saved but never trained
    assert [n for n, p in tuned.items() if p.grad is None] == []
    optimizer.step()

    after = method.state_dict()
    frozen_changed = [k for k in before if k not in tuned and not torch.equal(before[k], after[k])]
    assert frozen_changed == []
    assert any(not torch.equal(before[k], after[k]) for k in tuned)


@pytest.mark.parametrize("name", ALL_METHODS)
def test_saved_weights_match_count_and_reload_identically(
    name, make_tiny_backbone, caption_tokens, random_clips, tmp_path: Path
):
    method = build(name, make_tiny_backbone)
    with torch.no_grad():  # move away from any zero/identity initialisation so the reload is meaningful
        for param in tuned_parameters(method).values():
            param.add_(0.05 * torch.randn_like(param))
    frames, mask = random_clips([3, 2], NUM_FRAMES)
    path = tmp_path / "tuned.safetensors"
    save_tuned_weights(method, path)
    saved = load_file(str(path))
    assert sum(t.numel() for t in saved.values()) == count_parameters(method, 1)["tuned"]

    fresh = build(name, make_tiny_backbone, method_seed=2)
    load_tuned_weights(fresh, path)
    inputs = (caption_tokens, frames, mask)
    assert torch.equal(scores(fresh, *inputs), scores(method, *inputs))


@pytest.mark.parametrize("name", ALL_METHODS)
def test_output_shapes_with_one_frame_and_padded_clips(name, make_tiny_backbone, caption_tokens,
                                                         random_clips):
    method = build(name, make_tiny_backbone).eval()
    dim = method.clip.text_projection.shape[1]
    with torch.no_grad():
        assert method.encode_text(caption_tokens).shape == (len(caption_tokens), dim)
        for lengths, num_frames in (([1, 1], 1), ([1, 3, 2], NUM_FRAMES)):
            frames, mask = random_clips(lengths, num_frames)
            video = method.encode_video(frames, mask)
            assert video.shape[0] == len(lengths) and torch.isfinite(video).all()
            sim = scores(method, caption_tokens, frames, mask)
            assert sim.shape == (len(caption_tokens), len(lengths)) and torch.isfinite(sim).all()

        # what sits in a padded slot must not matter, neither to the clip's tensor nor to any score
        noisy = with_noise_in_padding(frames, mask)
        torch.testing.assert_close(method.encode_video(noisy, mask), video, rtol=0, atol=1e-6, msg=lambda m: (
            f"{name}: what sits in a padded frame slot (mask False) changed the clip's video tensor; padded "
            f"slots must never reach it\n{m}"))
        torch.testing.assert_close(scores(method, caption_tokens, noisy, mask), sim, rtol=0, atol=1e-5,
                                   msg=lambda m: f"{name}: what sits in a padded frame slot changed a score\n{m}")


@pytest.mark.parametrize("name", ALL_METHODS)
def test_a_score_depends_only_on_its_caption_and_clip(name, make_tiny_backbone, caption_tokens, random_clips):
    """Evaluation scores captions in chunks against clips encoded in shards: every split must agree."""
    method = build(name, make_tiny_backbone).eval()
    frames, mask = random_clips([3, 1, 2], NUM_FRAMES)
    with torch.no_grad():
        text, video = method.encode_text(caption_tokens), method.encode_video(frames, mask)
        whole = method.similarity(text, video, mask)
        def said(m):
            return f"{name}: a score changed with the other captions or clips scored beside it\n{m}"

        torch.testing.assert_close(method.similarity(text[1:3], video, mask), whole[1:3], rtol=1e-5, atol=1e-5,
                                   msg=said)
        torch.testing.assert_close(method.similarity(text, video[1:], mask[1:]), whole[:, 1:], rtol=1e-5,
                                   atol=1e-5, msg=said)


@pytest.mark.parametrize("name", [n for n in ALL_METHODS if METHODS.get(n).frozen_trunk])
def test_frozen_trunk_heads_reproduce_the_encoders(name, make_tiny_backbone, caption_tokens, random_clips):
    method = build(name, make_tiny_backbone).eval()
    frames, mask = random_clips([3, 1], NUM_FRAMES)
    text_trunk = method.text_features(caption_tokens)
    video_trunk = method.video_features(frames, mask)
    # the cache is only valid if nothing that trains takes part in computing it
    assert not text_trunk.requires_grad and not video_trunk.requires_grad
    with torch.no_grad():
        torch.testing.assert_close(method.text_head(text_trunk), method.encode_text(caption_tokens),
                                   rtol=0, atol=0)
        torch.testing.assert_close(method.video_head(video_trunk, mask), method.encode_video(frames, mask),
                                   rtol=0, atol=0)


@pytest.mark.parametrize("method, options, expected", [
    ("lora", {"dropout": 1.5}, "lora: dropout must be in"),  # before: torch's message, naming no option
    ("lora", {"alpha": float("nan")}, "alpha a finite number"),  # before: a NaN scale, then a diverged run
    ("adaptformer", {"scale": float("nan")}, "scale finite"),
    ("cross_modal_adapter", {"temperature": float("nan")}, "temperature and init_std must be > 0"),
    # found in review: these were accepted, and the scores came out NaN
    ("stop", {"intra_scale": float("nan")}, r"stop.intra_scale=nan: a scale must be finite"),
    ("stop", {"inter_scale": float("inf")}, r"stop.inter_scale=inf: a scale must be finite"),
    ("stop", {"adapter_scale": float("inf")}, r"stop.adapter_scale=inf"),
    ("mv_adapter", {"scale": float("nan")}, r"mv_adapter.scale=nan: a scale must be finite"),
    # found in review: STOP's errors named DGL's section, which a `method=stop` user never set
    ("stop", {"latent": "foo"}, r"stop.latent='foo': expected one of"),
    ("stop", {"num_text": 7, "latent": "transformer"}, r"stop.num_text=7: must be even"),
    # found in review: accepted without effect, the video vector being one token
    ("dgl", {"average": "normalized"}, r"dgl.average=normalized: it applies to the average_\* video outputs"),
])
def test_an_option_no_run_can_mean_is_refused_by_its_method(method, options, expected):
    with pytest.raises(ValueError, match=expected):
        METHODS.get(method).Config(**options)
