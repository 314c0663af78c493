"""Shared fixtures: tiny random open_clip backbones, captions and frames; no weights, network or videos."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import pytest
import torch

from vtrbench.methods.backbone import Backbone, load_backbone
from vtrbench.offline.tiny_clip import OFFLINE_MODEL_NAME, register_offline_config

CAPTION_LENGTH = 16
CAPTIONS = ["a red cube", "two blue balls move to the left", "a small green star grows", "nothing"]


@pytest.fixture(autouse=True, scope="session")
def _small_tensor_settings() -> None:
    """One intra-op thread: the tensors here are tiny, and worker threads only contend with other processes.
    open_clip logs a warning for every random init; here random weights are the point."""
    torch.set_num_threads(1)
    logging.getLogger().setLevel(logging.ERROR)


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tests never read or fill the user's cache (~/.cache/vtrbench): one throwaway cache for the session,
    inherited by the subprocesses the tests start."""
    os.environ["VTRBENCH_CACHE"] = str(tmp_path_factory.mktemp("vtrbench-cache"))


@pytest.fixture(autouse=True, scope="session")
def _one_run_at_a_time() -> None:
    """Leaderboards in this process run their runs here, one at a time (auto workers would spawn processes
    the tests' monkeypatches never reach); tests of `workers=N` name it, and subprocesses keep the default."""
    from vtrbench.benchmark import launchers

    launchers.auto_workers = lambda: 1


@pytest.fixture
def make_tiny_backbone() -> Callable[[int], Backbone]:
    """Factory: a fresh `vtrbench-tiny` with random weights that depend only on `seed` (methods mutate it)."""

    def make(seed: int = 0) -> Backbone:
        torch.manual_seed(seed)
        return load_backbone(OFFLINE_MODEL_NAME, "random")

    return make


@pytest.fixture
def small_backbone() -> Callable[..., Backbone]:
    """Factory: a random CLIP of the given widths and depth with a small vocabulary (only shapes matter, for
    counting parameters against formulas)."""
    from open_clip.model import CLIP

    def make(visual_width: int, text_width: int, layers: int, context_length: int = 16,
             patch_size: int = 8) -> Backbone:
        model = CLIP(
            embed_dim=24,
            vision_cfg={"image_size": 2 * patch_size, "patch_size": patch_size, "width": visual_width,
                        "layers": layers, "head_width": 32},
            text_cfg={"context_length": context_length, "vocab_size": 64, "width": text_width, "heads": 2,
                      "layers": layers},
        )
        elements = sum(p.numel() for p in model.parameters())
        return Backbone("small", "random", model, 2 * patch_size, (0.5,) * 3, (0.5,) * 3, elements)

    return make


@pytest.fixture
def tiny_backbone(make_tiny_backbone: Callable[[int], Backbone]) -> Backbone:
    return make_tiny_backbone(0)


@pytest.fixture(scope="session")
def caption_tokens() -> torch.Tensor:
    """[4, 16] token ids of captions of different lengths."""
    import open_clip

    register_offline_config()
    return open_clip.get_tokenizer(OFFLINE_MODEL_NAME, context_length=CAPTION_LENGTH)(CAPTIONS)


@pytest.fixture
def random_clips(tiny_backbone: Backbone) -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """Factory: [B, T, 3, H, W] random frames and a [B, T] mask; `lengths` gives each clip's real frames."""

    def make(lengths: list[int], num_frames: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(seed)
        size = tiny_backbone.image_size
        frames = torch.randn(len(lengths), num_frames, 3, size, size, generator=generator)
        mask = torch.arange(num_frames)[None, :] < torch.tensor(lengths)[:, None]
        return frames * mask[..., None, None, None], mask  # padded slots are zeros, as the loader pads them

    return make


def with_noise_in_padding(frames: torch.Tensor, mask: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """The same clips with random values in their padded slots: what a method must never see."""
    return frames + scale * torch.randn_like(frames) * (~mask)[..., None, None, None]
