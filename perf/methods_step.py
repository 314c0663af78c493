"""CPU time of one training step and peak resident memory of every method at the ViT-B/32 shape.

Random weights and random inputs (no data loading): one step is what the runner does per batch, with its own
pieces (the gathered contrastive loss, AdamW param groups, gradient clipping): forward, backward, AdamW. A
frozen-trunk method trains its heads on trunk features computed once, as the runner caches them, so its row
times the heads only. A method that tunes nothing has no step. Each method runs in a fresh subprocess, so
the peak resident set (VmHWM, reset through /proc/self/clear_refs before the steps) is its own; "step peak"
is that peak minus the memory held before the first step (weights, inputs).

    python perf/methods_step.py                            # every method, ~8 minutes on 2 cores
    python perf/methods_step.py --methods dgl lora --repeats 5
    python perf/methods_step.py --backbone vtrbench-tiny   # checks the logic in seconds
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

CAPTIONS = ["a man is playing a guitar on a stage", "a cat jumps onto a table", "people dance at a party",
            "a car drives along a coastal road at sunset"]
REFERENCE = "full_finetune"


def default_specs() -> list[str]:
    from vtrbench.registry import METHODS

    specs = METHODS.names()
    if "dgl" in specs:  # both latent spaces; the transformer's table is sized for the clips' frames
        specs.insert(specs.index("dgl") + 1, "dgl:latent=transformer")
    if "vop" in specs:  # F+C (the default) and the other two variants the suite reports
        specs[specs.index("vop") + 1:specs.index("vop") + 1] = ["vop:variant=P", "vop:variant=C"]
    return specs


def resident_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def measure(spec: str, backbone: str, frames_per_clip: int, batch: int, warmup: int, repeats: int) -> dict:
    """One method's step time and memory, in this process."""
    import torch

    from vtrbench.benchmark.config import resolve_config
    from vtrbench.benchmark.counting import count_parameters, tuned_parameters
    from vtrbench.benchmark.runner import build_method, contrastive_loss, make_optimizer
    from vtrbench.methods.backbone import load_backbone

    name, _, options = spec.partition(":")
    overrides = [f"method={name}", f"backbone.name={backbone}", "backbone.pretrained=random"]
    overrides += [f"{name}.{item}" for item in options.split(",") if item]
    overrides.append(f"data.num_frames={frames_per_clip}")  # per-frame parameters follow the clips' frames
    config = resolve_config(overrides)
    torch.manual_seed(0)
    model = load_backbone(backbone, "random")
    method = build_method(config, model)
    params = count_parameters(method, model.num_elements)
    row = {"method": spec, "tuned": params["tuned"], "tuned_pct": params["tuned_pct"]}
    if params["tuned"] == 0:
        return row

    context = min(32, model.model.positional_embedding.shape[0])
    tokens = model.tokenizer(context)(CAPTIONS[:batch] * (batch // len(CAPTIONS) + 1))[:batch]
    frames = torch.randn(batch, frames_per_clip, 3, model.image_size, model.image_size)
    mask = torch.ones(batch, frames_per_clip, dtype=torch.bool)
    if method.frozen_trunk:
        with torch.no_grad():
            text_features, video_features = method.text_features(tokens), method.video_features(frames, mask)
    optimizer = make_optimizer(method, config)
    tuned = list(tuned_parameters(method).values())
    method.train()

    def step() -> None:
        if method.frozen_trunk:
            text, video = method.text_head(text_features), method.video_head(video_features, mask)
        else:
            text, video = method(tokens, frames, mask)
        loss = contrastive_loss(method, text, video, mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(tuned, config.train.grad_clip)
        optimizer.step()

    before_steps = resident_mb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM restarts from the current resident size
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    peak = resident_mb("VmHWM")
    return {**row, "step_s": statistics.median(times), "peak_mb": peak, "step_peak_mb": peak - before_steps}


def run_isolated(spec: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--one", spec, "--backbone", args.backbone, "--frames", str(args.frames),
               "--batch", str(args.batch), "--warmup", str(args.warmup), "--repeats", str(args.repeats)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{spec} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    reference = next((r for r in rows if r["method"] == REFERENCE and "step_s" in r), None)
    lines = [
        f"{'method':26s} {'tuned':>12s} {'tuned%':>8s} {'step s':>8s} {'x ' + REFERENCE:>16s} "
        f"{'peak MB':>8s} {'step peak MB':>13s} {'x ' + REFERENCE:>16s}"
    ]
    for r in rows:
        if "step_s" not in r:
            lines.append(f"{r['method']:26s} {r['tuned']:>12,d} {r['tuned_pct']:>8.3f}   (tunes nothing: no step)")
            continue
        time_ratio = f"{r['step_s'] / reference['step_s']:.2f}" if reference else "-"
        memory_ratio = f"{r['step_peak_mb'] / reference['step_peak_mb']:.2f}" if reference else "-"
        lines.append(
            f"{r['method']:26s} {r['tuned']:>12,d} {r['tuned_pct']:>8.3f} {r['step_s']:>8.2f} {time_ratio:>16s} "
            f"{r['peak_mb']:>8.0f} {r['step_peak_mb']:>13.0f} {memory_ratio:>16s}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="*",
                        help="names, or name:key=value,... (default: all, both DGL latents, VoP F+C, P and C)")
    parser.add_argument("--backbone", default="ViT-B-32")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one method in this process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.backbone, args.frames, args.batch, args.warmup, args.repeats)))
        return 0
    specs = args.methods or default_specs()
    print(f"{args.backbone} (random weights), {args.frames} frames, batch {args.batch}, CPU "
          f"({os.cpu_count()} cores), median of {args.repeats} steps after {args.warmup} warm-up", flush=True)
    rows = []
    for spec in specs:
        rows.append(run_isolated(spec, args))
        print(f"  measured {spec}", file=sys.stderr, flush=True)
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
