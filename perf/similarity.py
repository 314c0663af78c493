"""Time of the evaluation's score matrix: every caption against every clip, as `Run.evaluate` computes it.

The default score (cosine of two vectors) against Cross-Modal Adapter's text-conditioned one, which pools each
clip's frames anew for every caption, on the same random inputs in one process: 1,000 captions x 1,000 clips,
12 frames, D = 512 by default (MSR-VTT 1k-A at ViT-B/32). Both go through `runner.score_matrix` (caption
chunks that keep a [chunk, clips, frames] tensor within 2**26 scores). The scores read only the inputs and the
backbone's frozen temperature, so the small offline backbone (random weights) builds the methods; the inputs
have the width asked for.

    python perf/similarity.py                           # CPU, ~1 minute on 2 cores
    python perf/similarity.py --device cuda --repeats 20
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from vtrbench.benchmark.config import resolve_config
from vtrbench.benchmark.runner import build_method, score_matrix
from vtrbench.methods.backbone import load_backbone

METHODS = ("zero_shot", "cross_modal_adapter")  # the default cosine, then the text-conditioned score


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--captions", type=int, default=1000)
    parser.add_argument("--clips", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5, help="timed score matrices per method (median)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("similarity.py: no CUDA GPU is visible; run without --device", file=sys.stderr)
        return 2

    generator = torch.Generator().manual_seed(0)
    text = torch.randn(args.captions, args.dim, generator=generator)
    frames = torch.randn(args.clips, args.frames, args.dim, generator=generator)
    lengths = torch.randint(1, args.frames + 1, (args.clips,), generator=generator)
    mask = torch.arange(args.frames)[None, :] < lengths[:, None]
    frames = frames * mask[..., None]  # padded slots are zeros, as encode_video leaves them
    # a [B, D] method scores the pooled clip; a text-conditioned one the frames themselves
    inputs = {"zero_shot": frames.sum(1) / lengths[:, None], "cross_modal_adapter": frames}

    what = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{what}, torch {torch.__version__}: {args.captions} captions x {args.clips} clips, {args.frames} frames, "
          f"D={args.dim}, median of {args.repeats}")
    seconds = {}
    for name in METHODS:
        config = resolve_config([f"method={name}", "backbone.pretrained=random"])
        method = build_method(config, load_backbone(config.backbone.name, "random")).to(device).eval()
        video = inputs[name]
        score_matrix(method, text, video, mask, device)  # warm-up
        times = []
        for _ in range(args.repeats):
            synchronize(device)
            started = time.perf_counter()
            scores = score_matrix(method, text, video, mask, device)
            synchronize(device)
            times.append(time.perf_counter() - started)
        assert scores.shape == (args.captions, args.clips) and torch.isfinite(scores).all()
        seconds[name] = statistics.median(times)
        print(f"  {name:22s} {seconds[name]:8.4f} s")
    print(f"  ratio cross_modal_adapter / cosine: {seconds['cross_modal_adapter'] / seconds['zero_shot']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
