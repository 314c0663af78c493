"""Training and inference speed and peak GPU memory of every registered method at the ViT-B/32 shape.

Random weights and random input tensors (no data loading, no decoding): this times the model side of the
harness only, with the runner's own pieces (autocast, the gathered contrastive loss, AdamW param groups,
gradient clipping). A method that tunes nothing has no training row; every method gets an inference row
(encode_video + encode_text, fp32 as the evaluation runs). full_finetune is the reference of the ratios.
A frozen-trunk method trains its heads on cached trunk features, as the runner does, so its training
row times the heads only.

    python perf/gpu_methods.py --steps 20                 # one GPU, a few minutes at most
    python perf/gpu_methods.py --device cpu --tiny        # checks the logic on CPU in seconds
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from vtrbench.benchmark.config import resolve_config
from vtrbench.benchmark.counting import count_parameters, tuned_parameters
from vtrbench.benchmark.memory import peak_memory_mb, reset_peak_memory
from vtrbench.benchmark.runner import (
    CachedFeatureHeads,
    autocast_for,
    build_method,
    contrastive_loss,
    make_optimizer,
    optimizer_step,
)
from vtrbench.methods.backbone import load_backbone
from vtrbench.methods.base import RetrievalMethod
from vtrbench.registry import METHODS

REFERENCE = "full_finetune"


@dataclass
class Shape:
    backbone: str
    frames: int
    batch: int


FULL = Shape(backbone="ViT-B-32", frames=12, batch=32)  # image size and text length come from the backbone
TINY = Shape(backbone="vtrbench-tiny", frames=4, batch=8)


@dataclass
class Timing:
    clips_per_s: float
    peak_mb: float


@dataclass
class Row:
    method: str
    tuned: int = 0
    train: Timing | None = None
    inference: Timing | None = None
    error: str = ""


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step: Callable[[], None], steps: int, warmup: int, clips_per_step: int, device: torch.device) -> Timing:
    """Clips per second over `steps` calls after `warmup` untimed ones; peak memory over all of them (the
    process's peak resident memory on CPU, as result files report it)."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    reset_peak_memory(device)
    for _ in range(warmup):
        step()
    synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    elapsed = time.perf_counter() - started
    return Timing(clips_per_s=steps * clips_per_step / elapsed, peak_mb=peak_memory_mb(device))


def training_step(method: RetrievalMethod, config, batch: dict, device: torch.device) -> Callable[[], None]:
    """One optimiser step exactly as Run.train takes it (heads on cached features for a frozen trunk)."""
    optimizer = make_optimizer(method, config)
    amp, scaler = autocast_for(device, config.train.amp)
    if method.frozen_trunk:
        with torch.no_grad():
            features = (method.text_features(batch["tokens"]), method.video_features(batch["frames"], batch["mask"]),
                        batch["mask"])
        model, inputs = CachedFeatureHeads(method), features
    else:
        model, inputs = method, (batch["tokens"], batch["frames"], batch["mask"])
    tuned = list(tuned_parameters(method).values())

    def step() -> None:
        with amp:
            loss = contrastive_loss(method, *model(*inputs), batch["mask"])
        optimizer_step(loss, optimizer, scaler, tuned, config.train.grad_clip)

    method.train()
    return step


def inference_step(method: RetrievalMethod, batch: dict) -> Callable[[], None]:
    @torch.no_grad()
    def step() -> None:
        method.encode_video(batch["frames"], batch["mask"])
        method.encode_text(batch["tokens"])

    method.eval()
    return step


def random_batch(shape: Shape, image_size: int, tokenizer, device: torch.device) -> dict:
    generator = torch.Generator().manual_seed(0)
    frames = torch.randn(shape.batch, shape.frames, 3, image_size, image_size, generator=generator)
    captions = [f"a clip number {i} where something happens" for i in range(shape.batch)]
    return {"frames": frames.to(device), "mask": torch.ones(shape.batch, shape.frames, dtype=torch.bool, device=device),
            "tokens": tokenizer(captions).long().to(device)}


def measure(name: str, shape: Shape, args: argparse.Namespace, device: torch.device) -> Row:
    config = resolve_config([f"method={name}", f"backbone.name={shape.backbone}", "backbone.pretrained=random",
                             f"data.num_frames={shape.frames}", f"data.batch_size={shape.batch}",
                             f"train.amp={not args.no_amp}"])
    torch.manual_seed(0)
    backbone = load_backbone(shape.backbone, "random")
    method = build_method(config, backbone).to(device)
    batch = random_batch(shape, backbone.image_size, backbone.tokenizer(config.data.max_words), device)
    row = Row(method=name, tuned=count_parameters(method, backbone.num_elements)["tuned"])
    if row.tuned:
        row.train = timed(training_step(method, config, batch, device), args.steps, args.warmup, shape.batch, device)
    row.inference = timed(inference_step(method, batch), args.steps, args.warmup, shape.batch, device)
    return row


def ratio(value: float, reference: float | None) -> str:
    return f"{value / reference:.2f}x" if reference else "-"


def table(rows: list[Row]) -> str:
    reference = next((r for r in rows if r.method == REFERENCE and r.train), None)
    ref_train = reference.train if reference else None
    ref_inference = reference.inference if reference else None
    lines = ["| method | tuned params | train clips/s | vs full_finetune | train peak MiB | vs full_finetune "
             "| inference clips/s | vs full_finetune | inference peak MiB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        if row.error:
            lines.append(f"| {row.method} | failed: {row.error} |||||||| ")
            continue
        train = row.train
        cells = [row.method, f"{row.tuned:,}"]
        cells += ([f"{train.clips_per_s:.1f}", ratio(train.clips_per_s, ref_train and ref_train.clips_per_s),
                   f"{train.peak_mb:.0f}", ratio(train.peak_mb, ref_train and ref_train.peak_mb)]
                  if train else ["- (nothing tunes)", "-", "-", "-"])
        inference = row.inference
        cells += [f"{inference.clips_per_s:.1f}",
                  ratio(inference.clips_per_s, ref_inference and ref_inference.clips_per_s),
                  f"{inference.peak_mb:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per method and phase")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (allocator, cuDNN autotune)")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--tiny", action="store_true", help="vtrbench-tiny, 4 frames, batch 8: a logic check")
    parser.add_argument("--no-amp", action="store_true", help="train in fp32 (default: the runner's autocast)")
    parser.add_argument("--methods", nargs="*", help="default: every registered method")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_methods.py: no CUDA GPU is visible, and this benchmark times methods on one. "
              "To check its logic on CPU: python perf/gpu_methods.py --device cpu --tiny --steps 2",
              file=sys.stderr)
        return 2
    shape = TINY if args.tiny else FULL
    names = args.methods or METHODS.names()
    if REFERENCE in names:  # the reference first: a failure there is seen before the long tail
        names = [REFERENCE, *[n for n in names if n != REFERENCE]]
    what = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    amp = "off" if args.no_amp or device.type != "cuda" else str(autocast_for(device, True)[0].fast_dtype)
    print(f"{what}, torch {torch.__version__}, {shape.backbone} random init, {shape.frames} frames, "
          f"batch {shape.batch}, autocast {amp}, {args.steps} timed steps after {args.warmup}", flush=True)
    rows = []
    for name in names:
        try:
            rows.append(measure(name, shape, args, device))
        except Exception as err:  # one broken or out-of-memory method must not hide the others' numbers
            rows.append(Row(method=name, error=f"{type(err).__name__}: {str(err).splitlines()[0][:120]}"))
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
        print(f"  {name}: done", file=sys.stderr, flush=True)
    print(table(rows))
    return 1 if any(row.error for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
