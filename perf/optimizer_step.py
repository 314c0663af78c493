"""AdamW's update on a CPU: PyTorch's per-tensor loop against the multi-tensor (`foreach`) update the runner uses.

On CUDA PyTorch picks the multi-tensor update by itself; on a CPU it loops over the tensors in Python unless
asked. For each method, this builds the runner's optimiser (`runner.make_optimizer`: its groups, rate, decay)
twice over the same tuned tensors, feeds both the same gradients for `--steps` updates, checks that the two
end with the same bits, and times one update of each. Random weights, no data, one thread by default (what a
leaderboard worker gets on 2 cores).

    python perf/optimizer_step.py                              # every method, on the offline backbone
    python perf/optimizer_step.py --methods full_finetune lora --backbone ViT-B-32
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time


def measure(name: str, backbone: str, steps: int, repeats: int) -> dict | None:
    import torch

    from vtrbench.benchmark.config import resolve_config
    from vtrbench.benchmark.counting import tuned_parameters
    from vtrbench.benchmark.runner import build_method, make_optimizer
    from vtrbench.methods.backbone import load_backbone

    config = resolve_config([f"method={name}", f"backbone.name={backbone}", "backbone.pretrained=random",
                             "data.num_frames=4", "train.lr=1e-3"])
    torch.manual_seed(0)
    method = build_method(config, load_backbone(backbone, "random"))
    if not tuned_parameters(method):
        return None
    copies = {"loop": method, "foreach": copy.deepcopy(method)}
    optimisers = {}
    for kind, model in copies.items():
        optimiser = make_optimizer(model, config)
        for group in optimiser.param_groups:
            group["foreach"] = kind == "foreach"
        optimisers[kind] = optimiser
    tuned = {kind: list(tuned_parameters(model).values()) for kind, model in copies.items()}
    generator = torch.Generator().manual_seed(1)
    times: dict[str, list[float]] = {kind: [] for kind in copies}
    for step in range(steps + repeats):
        gradients = [torch.randn(p.shape, generator=generator) for p in tuned["loop"]]
        for kind in copies:
            for param, gradient in zip(tuned[kind], gradients, strict=True):
                param.grad = gradient.clone()
            started = time.perf_counter()
            optimisers[kind].step()
            if step >= steps:
                times[kind].append(time.perf_counter() - started)
    same = all(torch.equal(a, b) for a, b in zip(tuned["loop"], tuned["foreach"], strict=True))
    loop, foreach = statistics.median(times["loop"]), statistics.median(times["foreach"])
    return {"method": name, "tensors": len(tuned["loop"]), "elements": sum(p.numel() for p in tuned["loop"]),
            "loop_ms": 1000 * loop, "foreach_ms": 1000 * foreach, "ratio": loop / foreach, "same_bits": same}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="*", help="registered names (default: every method that tunes something)")
    parser.add_argument("--backbone", default="vtrbench-tiny")
    parser.add_argument("--steps", type=int, default=20, help="updates before timing (their bits are compared too)")
    parser.add_argument("--repeats", type=int, default=20, help="timed updates of each kind; the median is printed")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from vtrbench.registry import METHODS

    torch.set_num_threads(args.threads)
    print(f"AdamW update, {args.backbone}, {args.threads} thread(s), median of {args.repeats}; "
          f"'same bits': both updates end with identical tensors after {args.steps + args.repeats} steps")
    print(f"{'method':22s} {'tensors':>8s} {'elements':>11s} {'loop ms':>9s} {'foreach ms':>11s} "
          f"{'loop / foreach':>15s} {'same bits':>10s}")
    all_same = True
    for name in args.methods or METHODS.names():
        row = measure(name, args.backbone, args.steps, args.repeats)
        if row is None:
            print(f"{name:22s} (tunes nothing)")
            continue
        all_same &= row["same_bits"]
        print(f"{row['method']:22s} {row['tensors']:>8d} {row['elements']:>11,d} {row['loop_ms']:>9.2f} "
              f"{row['foreach_ms']:>11.2f} {row['ratio']:>15.2f} {str(row['same_bits']):>10s}")
    return 0 if all_same else 1


if __name__ == "__main__":
    raise SystemExit(main())
