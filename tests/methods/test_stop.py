"""STOP on the suite's DGL: counts against the official modules' (issue 20), the saliency mask's pooling, its
zero gradient, the padding rule and the min-max guard. The numeric match with the official code itself needs
its checkout: perf/stop_official_check.py."""

from __future__ import annotations

import json

import pytest
import torch

from vtrbench.benchmark.cli import main as vtrbench_main
from vtrbench.benchmark.counting import count_parameters
from vtrbench.methods.dgl import DGL
from vtrbench.methods.stop import STOP, InterFramePrompter, IntraFramePrompter, STOPConfig

# ---- parameter counts -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "expected"),
    [([], 13_081_528), (["stop.latent=linear"], 4_333_752)],  # issue 20, from the official modules at 7253928
)
def test_cli_params_on_vit_b_32(options, expected, capsys):
    assert vtrbench_main(["params", "stop", "--backbone", "ViT-B-32", *options, "data.num_frames=12"]) == 0
    assert json.loads(capsys.readouterr().out)["tuned"] == expected


def temporal_count(width: int, num_patches: int, num_local: int) -> int:
    intra = 120_924 + 324 + 1_816  # the four (3, 11, 11) convolutions and two PReLUs, the pixel MLP, saliency
    attention = 4 * width * width + 4 * width
    inter = 20_261 + (num_patches * 16 + 16 + 1 + 16 * num_local + num_local) + 606
    return intra + attention + inter


def adapters_count(width: int, layers: int, bottleneck: int = 32) -> int:
    return layers * (width * bottleneck + bottleneck + 1 + bottleneck * width + width)


def test_vit_b_32_breakdown_matches_the_official_count():
    assert temporal_count(768, 49, 4) == 2_507_168
    assert adapters_count(768, 12) == 599_436 and adapters_count(512, 12) == 399_756
    assert 2_507_168 + 599_436 + 399_756 + 9_575_168 == 13_081_528
    assert 2_507_168 + 599_436 + 399_756 + 827_392 == 4_333_752


@pytest.mark.parametrize("latent", ["linear", "transformer"])
def test_count_is_dgl_plus_prompters_plus_adapters(latent, small_backbone):
    backbone = small_backbone(96, 64, 3, patch_size=8)  # grid 2: 4 patch tokens
    config = STOPConfig(latent=latent, num_frames=3, kernels="official")  # as the formula
    dgl = count_parameters(DGL(backbone, config), backbone.num_elements)["tuned"]
    stop = count_parameters(STOP(backbone, config), backbone.num_elements)["tuned"]
    assert stop == dgl + temporal_count(96, 4, 4) + adapters_count(96, 3) + adapters_count(64, 3)


def test_shapes_follow_vit_b_16():
    from vtrbench.methods.backbone import load_backbone

    method = STOP(load_backbone("ViT-B-16", "random")).eval()
    assert (method.intra.grid, method.intra.patch) == (14, 16)
    assert method.inter.mlp[0].in_features == 196 and method.inter.attention.num_heads == 12
    with torch.no_grad():  # one clip of two frames: about 2 s on one core
        video = method.encode_video(torch.randn(1, 2, 3, 224, 224), torch.ones(1, 2, dtype=torch.bool))
    assert video.shape == (1, 512) and torch.isfinite(video).all()


# ---- the saliency mask ------------------------------------------------------------------------------------


def delta_saliency(prompter: IntraFramePrompter) -> None:
    """Make the saliency convolution read channel 0 of the pixel itself, so its score is that channel."""
    with torch.no_grad():
        prompter.saliency.weight.zero_()
        prompter.saliency.bias.zero_()
        kernel = prompter.saliency.weight.shape[2:]
        prompter.saliency.weight[0, 0, kernel[0] // 2, kernel[1] // 2, kernel[2] // 2] = 1.0


@pytest.mark.parametrize("pool", ["strided", "patch"])
def test_cells_pool_as_the_official_reshape_or_per_patch(pool):
    grid, patch = 4, 3
    prompter = IntraFramePrompter(STOPConfig(saliency_pool=pool), grid, patch)
    delta_saliency(prompter)
    x = torch.randn(2, 3, 2, grid * patch, grid * patch)  # [B, C, T, H, W]
    cells = prompter.cells(x)
    score = x[:, 0]
    expected = torch.empty(2, 2, grid, grid)
    for i in range(grid):
        for j in range(grid):
            if pool == "strided":  # pixels congruent to (i, j) modulo the grid
                expected[..., i, j] = score[..., i::grid, j::grid].mean(dim=(-2, -1))
            else:  # patch (i, j)
                expected[..., i, j] = score[..., i * patch : (i + 1) * patch, j * patch : (j + 1) * patch].mean(
                    dim=(-2, -1))
    top = expected.flatten(2).topk(6, dim=-1).indices
    assert torch.equal(cells, torch.zeros_like(cells).scatter(-1, top, 1.0))
    # spread back: a pixel takes the cell it was pooled into
    pixels = prompter.spread(cells)[:, :, 0]
    h, w = 7, 10
    cell = (h % grid, w % grid) if pool == "strided" else (h // patch, w // patch)
    assert torch.equal(pixels[..., h, w], cells.unflatten(-1, (grid, grid))[..., cell[0], cell[1]])


def test_intra_saliency_convolution_gets_a_zero_gradient(tiny_backbone, caption_tokens, random_clips):
    method = STOP(tiny_backbone, STOPConfig(num_frames=3))
    frames, mask = random_clips([3, 2], 3)
    text, video = method(caption_tokens[:2], frames, mask)
    (text.sum() + video.sum()).backward()
    assert method.intra.saliency.weight.grad is not None
    assert torch.count_nonzero(method.intra.saliency.weight.grad) == 0
    assert torch.count_nonzero(method.inter.saliency.weight.grad) > 0
    assert torch.count_nonzero(method.intra.convs[0].weight.grad) > 0


# ---- padding, normalisation, dropout ----------------------------------------------------------------------


def test_a_padded_clip_computes_as_the_same_clip_without_padding(tiny_backbone, random_clips):
    method = STOP(tiny_backbone).eval()  # the linear latent: any frame count
    frames, mask = random_clips([2, 4], 4)
    with torch.no_grad():
        padded = method.encode_video(frames[:1], mask[:1])
        short = method.encode_video(frames[:1, :2], mask[:1, :2])
    torch.testing.assert_close(padded, short, rtol=0, atol=1e-5)


def test_min_max_is_per_clip_by_default_and_guarded():
    prompter = InterFramePrompter(STOPConfig(), 128, 16)
    x = torch.randn(2, 1, 3, 16, 128)
    cells = torch.zeros(2, 3, 16)
    mask = torch.tensor([[True, True, True], [True, False, False]])
    weights = prompter.frame_weights(x, cells, mask)
    assert torch.allclose(weights[0].amin(), torch.tensor(0.0)) and torch.allclose(weights[0].amax(), torch.tensor(1.0))
    assert torch.equal(weights[1], torch.zeros(3))  # one real frame: zero range, no 0 / 0
    prompter.cfg = STOPConfig(saliency_norm="batch")
    batch_weights = prompter.frame_weights(x, cells, mask)
    assert torch.isfinite(batch_weights).all() and batch_weights[mask].amax() == 1.0


def test_prompter_dropout_only_in_training(tiny_backbone, random_clips):
    method = STOP(tiny_backbone)
    frames, mask = random_clips([2], 2)
    method.train()
    with torch.no_grad():
        first, second = method.intra(frames, mask)[0], method.intra(frames, mask)[0]
    assert not torch.equal(first, second)
    method.eval()
    with torch.no_grad():
        assert torch.equal(method.intra(frames, mask)[0], method.intra(frames, mask)[0])


# ---- the paper preset -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dataset", "lr", "epochs", "batch", "frames", "latent"),
    [
        ("msrvtt", 1e-3, 5, 128, 12, "transformer"),
        ("vatex", 5e-3, 10, 512, 12, "linear"),
        ("activitynet", 1e-3, 10, 128, 64, "linear"),
        ("lsmdc", 1e-3, 5, 128, 12, "transformer"),  # none published: MSR-VTT's recipe
    ],
)
def test_paper_preset_follows_the_official_scripts(dataset, lr, epochs, batch, frames, latent):
    from vtrbench.benchmark.config import method_options, resolve_config

    cfg = resolve_config(["preset=paper", "method=stop", f"dataset={dataset}"])
    assert (cfg.train.lr, cfg.train.epochs, cfg.data.batch_size, cfg.data.num_frames) == (lr, epochs, batch, frames)
    assert (cfg.train.weight_decay, cfg.train.warmup, cfg.train.grad_clip) == (0.2, 0.1, 1.0)
    options = method_options(cfg)
    assert (options.latent, options.num_frames) == (latent, frames)


def test_kernels_scale_to_the_backbone_and_are_official_at_vit_b():
    from vtrbench.methods.stop import kernel_size

    for kernels in ("scaled", "official"):  # ViT-B/32 and ViT-B/16 at 224 pixels: the official kernels
        assert kernel_size(11, 224, 224, kernels) == 11
        assert kernel_size(15, 49, 49, kernels) == 15 and kernel_size(15, 196, 49, kernels) == 15
        assert kernel_size(25, 768, 768, kernels) == 25
    assert kernel_size(11, 32, 224, "scaled") == 3 and kernel_size(15, 16, 49, "scaled") == 5
    assert kernel_size(25, 64, 768, "scaled") == 3 and kernel_size(11, 32, 224, "official") == 11
    with pytest.raises(ValueError, match="stop.kernels='big'"):
        STOPConfig(kernels="big")
