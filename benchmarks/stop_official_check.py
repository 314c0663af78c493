"""Check vtrbench's `stop` against the official STOP modules on shared random weights (CPU, no data).

The official code cannot be shipped: bring a checkout of zhoujiahuan1991/CVPR2025-STOP at commit 7253928 (the
consistent one; HEAD's modules/clip.py holds merge-conflict markers), for example

    git clone https://github.com/zhoujiahuan1991/CVPR2025-STOP /tmp/CVPR2025-STOP
    git -C /tmp/CVPR2025-STOP checkout 7253928
    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/stop_official_check.py /tmp/CVPR2025-STOP

What it does, for each latent (transformer, linear):
- builds the official CLIP of modules/clip.py (ViT-B/32 shapes: the official prompter hard-codes them) with the
  arguments of scripts/msrvtt.sh ('group2-2' prompter, adapters on, 4 global, 4 local and 8 text prompts,
  12 prompted layers), and vtrbench's `stop` on a random ViT-B/32 (QuickGELU, as the official CLIP);
- perturbs every tuned tensor of `stop` (so no zero or default initialisation hides a mapping error) and copies
  every weight, frozen and tuned, into the official model by a name map (`official_state_dict`), loaded
  strictly, so every official tensor is set exactly once;
- feeds both the same random clips (all frames real: the official loader has no padding) and captions, in eval
  mode (no dropout), and compares the prompted pixels, the inter-frame prompts, the text vectors (after the
  text projection) and the video vectors (global prompt 0 after ln_post and the projection);
- twice: the whole batch with `saliency_norm=batch` (the official min-max over the batch), then the default
  `saliency_norm=clip` against the official code run on one clip at a time (where both rules agree).

It fails (exit status 1) when a vector differs by more than --tolerance (1e-4). Only modules/clip.py,
modules/temporal_prompting.py and modules/utils.py are imported, as a package of their own, so the official
modules/__init__.py (which pulls in boto3 and requests through clip4clip.py and file.py) is never run; nothing
in the checkout is modified. About 80 s for both latents on one core.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
import types
from pathlib import Path

import torch

from vtrbench.methods.backbone import load_backbone
from vtrbench.methods.base import image_tokens
from vtrbench.methods.stop import STOP, STOPConfig

PACKAGE = "_stop_official_modules"


def import_official_clip(checkout: Path) -> types.ModuleType:
    """modules/clip.py as `_stop_official_modules.clip`, without running the official modules/__init__.py."""
    modules = checkout / "modules"
    if not (modules / "clip.py").is_file() or not (modules / "temporal_prompting.py").is_file():
        raise SystemExit(f"{checkout}: no modules/clip.py and modules/temporal_prompting.py (a STOP checkout?)")
    if "<<<<<<<" in (modules / "clip.py").read_text():
        raise SystemExit(f"{modules / 'clip.py'} holds merge-conflict markers: check out commit 7253928")
    package = types.ModuleType(PACKAGE)
    package.__path__ = [str(modules)]
    sys.modules[PACKAGE] = package
    return importlib.import_module(f"{PACKAGE}.clip")


def official_args(latent: str, max_words: int) -> types.SimpleNamespace:
    return types.SimpleNamespace(
        global_visual_prompt_length=4, local_each_frame_prompt_length=4, text_prompt_length=8,
        unified_transformer_layers=12, shared_latent_space=latent, lora=True, temporal_prompt="group2-2",
        time_embedding=0, visual_output_type="global_prompt0", max_words=max_words,
    )


def build_official(clip_module: types.ModuleType, latent: str, frames: int, max_words: int) -> torch.nn.Module:
    return clip_module.CLIP(
        embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768, vision_patch_size=32,
        context_length=77, vocab_size=49408, transformer_width=512, transformer_heads=8, transformer_layers=12,
        linear_patch="2d", video_frames=frames, args=official_args(latent, max_words),
    )


def official_name(name: str) -> str:
    """A `stop` state-dict key -> the official CLIP's key (frozen CLIP keys are the same in both)."""
    if name.startswith("clip."):
        return name[len("clip."):]
    renames = [
        ("global_prompts", "visual.prompt_embeddings"),
        ("latent.table", "unified_prompt_embedding.weight"),
        ("latent.block.", "PromptTransformer.resblocks.0."),
        ("latent.to_text.0.", "unified_prompt_mlp.c_fc."),
        ("latent.to_text.2.", "unified_prompt_mlp.c_proj."),
        ("latent.latent", "visual_prompt_embedding"),
        ("latent.to_prefix.", "prefix_text_prompt_proj_layer."),
        ("latent.to_postfix.", "postfix_text_prompt_proj_layer."),
        ("intra.convs.", "visual.TemporalPrompt.Conv."),
        ("intra.mlp.", "visual.TemporalPrompt.MLP."),
        ("intra.saliency.", "visual.TemporalPrompt.Cal_Net."),
        ("inter.attention.", "visual.TemporalPrompt.Attention."),
        ("inter.convs.", "visual.TemporalPrompt.InterConv."),
        ("inter.mlp.", "visual.TemporalPrompt.InterMLP."),
        ("inter.saliency.", "visual.TemporalPrompt.Cal_Net_Inter."),
    ]
    for ours, theirs in renames:
        if name.startswith(ours):
            return theirs + name[len(ours):]
    towers = (("visual_adapters.", "visual.transformer.resblocks."), ("text_adapters.", "transformer.resblocks."))
    for tower, prefix in towers:
        if name.startswith(tower):
            layer, part, rest = name[len(tower):].split(".", 2)
            return f"{prefix}{layer}.LoRA.{ {'down': 0, 'act': 1, 'up': 2}[part] }.{rest}"
    raise KeyError(name)


def official_state_dict(method: STOP, official: torch.nn.Module) -> dict[str, torch.Tensor]:
    target = official.state_dict()
    out: dict[str, torch.Tensor] = {}
    for name, tensor in method.state_dict().items():
        key = official_name(name)
        if key not in target:
            if name.startswith("clip."):
                continue  # open_clip-only buffers (attention masks)
            raise KeyError(f"{name} -> {key}: not in the official model")
        if key in out:
            raise KeyError(f"{key} set twice")
        # the official keeps the global prompts as [1, Ng, Dv] and the linear latent as [1, Nl, K_p * Dv]
        out[key] = tensor.reshape(target[key].shape).clone()
    missing = [k for k in target if k not in out and k != "visual.position_ids"]
    if missing:
        raise KeyError(f"official tensors without a source: {missing}")
    out["visual.position_ids"] = target["visual.position_ids"]
    return out


def random_tokens(count: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """SOT, random words, EOT at a random position, zero padding (CLIP's layout)."""
    tokens = torch.zeros(count, length, dtype=torch.long)
    for row in range(count):
        eot = int(torch.randint(3, length, (1,), generator=generator))
        tokens[row, 0] = 49406
        tokens[row, 1:eot] = torch.randint(1, 49000, (eot - 1,), generator=generator)
        tokens[row, eot] = 49407
    return tokens


def official_outputs(official: torch.nn.Module, frames: torch.Tensor, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    batch, num_frames = frames.shape[:2]
    text_prompts, _ = official.encode_prompt(tokens.shape[0], device=tokens.device)
    _, visual_prompts = official.encode_prompt(batch, device=frames.device)
    prompter = official.visual.TemporalPrompt
    pixels = prompter(frames)  # sets the mask the inter-frame prompt reads, as the forward does
    video = official.encode_image(frames.flatten(0, 1), visual_prompts, video_frame=num_frames)
    # the inter-frame prompts of the tokens the forward built (encode_image recomputed the same pixels)
    visual = official.visual
    x = visual.conv1(pixels.flatten(0, 1)).flatten(2).transpose(1, 2)
    x = torch.cat([visual.class_embedding.expand(x.shape[0], 1, -1), x], dim=1) + visual.positional_embedding
    inter = prompter.get_inter_frame_prompt(visual.ln_pre(x))[0].reshape(batch, num_frames, 4, -1)
    return {"pixels": pixels, "inter": inter, "text": official.encode_text(tokens, text_prompts),
            "video": video.squeeze(1)}


def our_outputs(method: STOP, frames: torch.Tensor, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    mask = torch.ones(frames.shape[:2], dtype=torch.bool)
    pixels, cells = method.intra(frames, mask)
    tokens_v = image_tokens(method.clip.visual, pixels.flatten(0, 1)).unflatten(0, mask.shape)
    return {"pixels": pixels, "inter": method.inter(tokens_v, cells, mask), "text": method.encode_text(tokens),
            "video": method.encode_video(frames, mask)}


def compare(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor]) -> dict[str, float]:
    return {key: float((ours[key] - theirs[key]).abs().max()) for key in ours}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkout", type=Path, help="a CVPR2025-STOP checkout at commit 7253928")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--captions", type=int, default=3)
    parser.add_argument("--words", type=int, default=32, help="caption length (max_words)")
    parser.add_argument("--latents", nargs="+", default=["transformer", "linear"], choices=["transformer", "linear"])
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    clip_module = import_official_clip(args.checkout.resolve())
    generator = torch.Generator().manual_seed(args.seed)
    frames = torch.randn(args.batch, args.frames, 3, 224, 224, generator=generator)
    tokens = random_tokens(args.captions, args.words, generator)
    worst = 0.0
    for latent in args.latents:
        torch.manual_seed(args.seed)
        backbone = load_backbone("ViT-B-32", "random", quick_gelu=True)
        config = STOPConfig(latent=latent, num_frames=args.frames, saliency_norm="batch")
        method = STOP(backbone, config).eval()
        with torch.no_grad():
            for param in method.parameters():
                if param.requires_grad:
                    param.add_(0.02 * torch.randn(param.shape, generator=generator))
        official = build_official(clip_module, latent, args.frames, args.words).eval()
        official.load_state_dict(official_state_dict(method, official), strict=True)

        with torch.no_grad():
            theirs = official_outputs(official, frames, tokens)
            rows = [("whole batch, saliency_norm=batch", compare(our_outputs(method, frames, tokens), theirs))]
            method.config = dataclasses.replace(config, saliency_norm="clip")
            method.intra.cfg = method.inter.cfg = method.config
            ours_video = method.encode_video(frames, torch.ones(frames.shape[:2], dtype=torch.bool))
            theirs_video = torch.cat([official_outputs(official, frames[b : b + 1], tokens)["video"]
                                      for b in range(args.batch)])
            rows.append(("one clip at a time, saliency_norm=clip (default)",
                         {"video": float((ours_video - theirs_video).abs().max())}))
        for title, diffs in rows:
            text = ", ".join(f"{key} {value:.2e}" for key, value in diffs.items())
            print(f"latent={latent}, {title}: max |ours - official|: {text}")
            worst = max(worst, *diffs.values())
    ok = worst <= args.tolerance
    print(f"{'PASS' if ok else 'FAIL'}: largest difference {worst:.2e} (tolerance {args.tolerance:.0e})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
