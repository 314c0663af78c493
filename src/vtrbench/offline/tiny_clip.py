"""The package's own small CLIP, `vtrbench-tiny`, pretrained here on generated still images.

Real CLIP weights cannot be downloaded offline, so the suite pretrains a tiny open_clip model (architecture in
`configs/backbones/vtrbench-tiny.json`) on `render_image_caption_pairs`: captions about colour, shape, size and
position, never about time. Like CLIP, it then knows appearance and has never seen a video, which is the
starting point every retrieval method adapts.

The weights are cached under `cache_dir()` in a folder named by a hash of the recipe (architecture, steps,
seed, batch, learning rate, weight decay, warm-up, AdamW's betas and eps, the temperature's cap, the version of
the pretraining code and of the renderer), so a changed recipe retrains instead of reusing stale weights; a
run's result records that name (`identity`), so a result of other weights is never reused.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from vtrbench.cache import cache_dir, exclusive_lock
from vtrbench.files import process_umask
from vtrbench.methods.backbone import OFFLINE_PRETRAINED, RANDOM_PRETRAINED, untrained_model
from vtrbench.offline import world
from vtrbench.progress import phase
from vtrbench.registry import BACKBONES

OFFLINE_MODEL_NAME = "vtrbench-tiny"
CONFIG_PATH = Path(__file__).resolve().parents[1] / "configs" / "backbones" / f"{OFFLINE_MODEL_NAME}.json"
CHECKPOINT_NAME = "open_clip_model.safetensors"
METADATA_NAME = "metadata.json"

# The recipe. 300 steps reach 47% held-out image-caption top-1, 600 steps 60%, 1,200 steps 69%, 1,800 steps 70%.
# Of the lengths tried (600, 1,200, 1,800), 1,800 misses fewest of the default run's world targets (zero-shot
# T2V R@1 of at least 10%, a zero-shot to full fine-tuning ratio in 0.5-0.85) on two second draws of the world
# (perf/world_draw.py), never on the default data's test splits; see docs/offline-world.md.
PRETRAIN_STEPS = 1800
PRETRAIN_SEED = 0
BATCH_SIZE = 256
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 0.1
WARMUP_FRACTION = 0.05
ADAM_BETAS = (0.9, 0.98)
ADAM_EPS = 1e-6
MAX_LOGIT_SCALE = 100.0  # CLIP's cap on the temperature
# Bumped whenever the pretraining's code changes what it computes beyond the constants above (the loss and its
# targets, the schedule's shape, which parameters skip weight decay, how a batch's seed is derived).
PRETRAIN_VERSION = 1
EVAL_PAIRS = 1000
# Training batch i is rendered from seed (seed << 20) + i; the held-out set from the last seed of that range.
_SEED_RANGE = 1 << 20


def register_offline_config() -> None:
    """Make open_clip know `vtrbench-tiny` (safe to call any number of times)."""
    import open_clip

    if OFFLINE_MODEL_NAME not in open_clip.list_models():
        open_clip.add_model_config(CONFIG_PATH)


def _recipe(steps: int, seed: int) -> dict:
    return {
        "model": OFFLINE_MODEL_NAME,
        "config": json.loads(CONFIG_PATH.read_text()),
        "steps": steps,
        "seed": seed,
        "batch_size": BATCH_SIZE,
        "learning_rate": LEARNING_RATE,
        "weight_decay": WEIGHT_DECAY,
        "warmup_fraction": WARMUP_FRACTION,
        "adam_betas": list(ADAM_BETAS),
        "adam_eps": ADAM_EPS,
        "max_logit_scale": MAX_LOGIT_SCALE,
        "pretrain_version": PRETRAIN_VERSION,
        "renderer_version": world.IMAGES_VERSION,
    }


def recipe_hash(steps: int = PRETRAIN_STEPS, seed: int = PRETRAIN_SEED) -> str:
    """Short hash of everything that determines the pretrained weights."""
    return hashlib.sha256(json.dumps(_recipe(steps, seed), sort_keys=True).encode()).hexdigest()[:10]


def recipe_name(steps: int = PRETRAIN_STEPS, seed: int = PRETRAIN_SEED) -> str:
    """The pretrained weights' name, `vtrbench-tiny-<recipe hash>`: their cache folder's, and what a run's
    result records (`Registry.identity`)."""
    return f"{OFFLINE_MODEL_NAME}-{recipe_hash(steps, seed)}"


def ensure_offline_clip(progress: bool = True) -> Path:
    """Path of the pretrained `vtrbench-tiny` checkpoint (`.safetensors`), pretraining it first if not cached.

    Load it with `open_clip.create_model(OFFLINE_MODEL_NAME, pretrained=str(path))` after
    `register_offline_config()`.
    """
    return build_offline_clip(steps=PRETRAIN_STEPS, seed=PRETRAIN_SEED, cache_dir=cache_dir(), progress=progress)


def build_offline_clip(steps: int, seed: int, cache_dir: Path, progress: bool = True) -> Path:
    """Checkpoint path for this recipe under `cache_dir`, pretraining it once if it is not there.

    A lock file makes concurrent callers wait for one pretraining instead of each running their own; the
    folder is filled under a temporary name and renamed into place, so an interrupted run leaves nothing
    that looks finished.
    """
    target = Path(cache_dir) / "offline_clip" / recipe_name(steps, seed)
    checkpoint = target / CHECKPOINT_NAME
    if _readable(checkpoint):
        return checkpoint
    target.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(target.with_name(target.name + ".lock")):
        if _readable(checkpoint):  # another process finished while we waited
            return checkpoint
        if target.exists():  # its weights gone, cut short or damaged: pretrained again, never renamed onto
            print(f"{checkpoint}: missing or unreadable; pretraining the offline backbone again", file=sys.stderr)
            shutil.rmtree(target)
        for leftover in target.parent.glob(f".{target.name}.*"):  # of a pretraining killed before its cleanup
            shutil.rmtree(leftover, ignore_errors=True)  # (SIGTERM, kill -9): nobody else holds the lock
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
        os.chmod(staging, 0o777 & ~process_umask())  # mkdtemp makes it private; the cache follows the umask
        try:
            with phase(f"pretraining the offline backbone {OFFLINE_MODEL_NAME} ({steps} steps, several minutes "
                       f"on 2 CPU cores; once, then cached in {target})", progress):
                pretrain_offline_clip(staging, steps=steps, seed=seed, progress=progress)
            os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return checkpoint


def _readable(checkpoint: Path) -> bool:
    """Whether the checkpoint is there and whole: safetensors checks its header against the file's length."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(checkpoint), framework="pt") as handle:
            return bool(list(handle.keys()))
    except (OSError, SafetensorError):
        return False


def _normalise(images: np.ndarray, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
    return (pixels - mean) / std


def _encode_text_trimmed(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """`model.encode_text(tokens)` computed on the tokens up to the batch's longest caption only.

    Exact, not an approximation: under CLIP's causal mask the padding after EOT never reaches EOT, where the
    text vector is read, so dropping it changes nothing but the cost (a third of the text tower here).
    """
    length = int((tokens != 0).sum(dim=1).max())
    tokens = tokens[:, :length]
    x = model.token_embedding(tokens) + model.positional_embedding[:length]
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    x = x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)]  # EOT has the highest token id
    return x @ model.text_projection


def _learning_rate(step: int, steps: int) -> float:
    warmup = max(1, int(steps * WARMUP_FRACTION))
    if step < warmup:
        return LEARNING_RATE * (step + 1) / warmup
    return LEARNING_RATE * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def pretrain_offline_clip(output_dir: Path, steps: int = PRETRAIN_STEPS, seed: int = PRETRAIN_SEED,
                          progress: bool = True) -> Path:
    """Pretrain `vtrbench-tiny` with the CLIP contrastive loss and write its checkpoint and metadata.

    Deterministic: fixed seeds and a fixed data order (batch i is rendered from a seed derived from i, so
    every batch is new data). Writes `open_clip_model.safetensors` and `metadata.json` (recipe, timings,
    parameter count, zero-shot image->caption accuracy on held-out pairs) into `output_dir`; returns the
    checkpoint path.
    """
    import open_clip
    from safetensors.torch import save_file

    if steps >= _SEED_RANGE - 1:
        raise ValueError(f"steps must be below {_SEED_RANGE - 1}")
    register_offline_config()
    torch.manual_seed(seed)
    model = untrained_model(OFFLINE_MODEL_NAME)
    tokenizer = open_clip.get_tokenizer(OFFLINE_MODEL_NAME)
    image_size = model.visual.image_size[0]
    mean = torch.tensor(model.visual.preprocess_cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(model.visual.preprocess_cfg["std"]).view(1, 3, 1, 1)
    # No weight decay on gains, biases, embeddings' scale or the temperature, as in CLIP.
    decayed = [p for n, p in model.named_parameters() if p.ndim >= 2 and "logit_scale" not in n]
    others = [p for n, p in model.named_parameters() if p.ndim < 2 or "logit_scale" in n]
    optimizer = torch.optim.AdamW(
        [{"params": decayed, "weight_decay": WEIGHT_DECAY}, {"params": others, "weight_decay": 0.0}],
        lr=LEARNING_RATE, betas=ADAM_BETAS, eps=ADAM_EPS,
    )

    started = time.perf_counter()
    model.train()
    steps_bar = tqdm(range(steps), desc=f"pretraining {OFFLINE_MODEL_NAME}",
                     disable=not (progress and sys.stderr.isatty()), leave=False)
    for step in steps_bar:
        images, captions = world.render_image_caption_pairs(BATCH_SIZE, (seed << 20) + step, image_size)
        image_features = model.encode_image(_normalise(images, mean, std), normalize=True)
        text_features = F.normalize(_encode_text_trimmed(model, tokenizer(captions)), dim=-1)
        logits = model.logit_scale.exp() * image_features @ text_features.T
        # Identical captions in one batch are not negatives of each other: all of them count as targets.
        same_caption = torch.tensor([[a == b for b in captions] for a in captions], dtype=torch.float32)
        targets = same_caption / same_caption.sum(dim=1, keepdim=True)
        loss = (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(step, steps)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(MAX_LOGIT_SCALE))
        steps_bar.set_postfix(loss=f"{loss.item():.3f}")
    seconds = time.perf_counter() - started

    accuracy, candidates = _zero_shot_image_accuracy(model, tokenizer, seed, image_size, mean, std)
    message = (f"{OFFLINE_MODEL_NAME}: pretrained {steps} steps in {seconds:.0f}s; zero-shot image->caption "
               f"top-1 {100 * accuracy:.1f}% among {candidates} captions")
    if progress:
        print(message, flush=True)

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = output_dir / CHECKPOINT_NAME
    state = {name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, str(checkpoint))
    metadata = {
        "recipe": _recipe(steps, seed),
        "recipe_hash": recipe_hash(steps, seed),
        "parameters": sum(p.numel() for p in model.parameters()),
        "pretrain_seconds": round(seconds, 1),
        "zero_shot_image_to_caption_top1": round(accuracy, 4),
        "zero_shot_candidates": candidates,
        "torch": torch.__version__,
        "open_clip": open_clip.__version__,
    }
    (output_dir / METADATA_NAME).write_text(json.dumps(metadata, indent=1))
    return checkpoint


@torch.no_grad()
def _zero_shot_image_accuracy(model: torch.nn.Module, tokenizer, seed: int, image_size: int,
                              mean: torch.Tensor, std: torch.Tensor) -> tuple[float, int]:
    """Top-1 image->caption accuracy on held-out generated pairs, among their distinct captions."""
    model.eval()
    images, captions = world.render_image_caption_pairs(EVAL_PAIRS, (seed << 20) + _SEED_RANGE - 1, image_size)
    candidates = sorted(set(captions))
    image_features = model.encode_image(_normalise(images, mean, std), normalize=True)
    text_features = model.encode_text(tokenizer(candidates), normalize=True)
    predicted = (image_features @ text_features.T).argmax(dim=1).tolist()
    correct = [candidates[p] == caption for p, caption in zip(predicted, captions, strict=True)]
    return float(np.mean(correct)), len(candidates)


@BACKBONES.register(OFFLINE_MODEL_NAME)
def offline_tiny_clip(pretrained: str, progress: bool = False) -> torch.nn.Module:
    """`vtrbench-tiny` with `pretrained`: `offline` (pretrained here once, then cached), `random`, or a file."""
    import open_clip

    register_offline_config()
    if pretrained == RANDOM_PRETRAINED:
        return untrained_model(OFFLINE_MODEL_NAME)
    if pretrained == OFFLINE_PRETRAINED:
        pretrained = str(ensure_offline_clip(progress=progress))
    elif not Path(pretrained).expanduser().is_file():
        raise FileNotFoundError(f"backbone.pretrained: {pretrained!r} is not a checkpoint file; "
                                f"{OFFLINE_MODEL_NAME} takes '{OFFLINE_PRETRAINED}', '{RANDOM_PRETRAINED}' or a file")
    return open_clip.create_model(OFFLINE_MODEL_NAME, pretrained=str(Path(pretrained).expanduser()),
                                  require_pretrained=True)


def _identity(pretrained: str) -> str | None:
    """The weights `offline_tiny_clip(pretrained)` loads, by name: the pretraining recipe's folder for `offline`
    (`Registry.identity`); None for a file of the user's or random weights, which the config names."""
    return recipe_name() if pretrained == OFFLINE_PRETRAINED else None


offline_tiny_clip.identity = _identity  # type: ignore[attr-defined]
