"""The val split during training: the learning curve (val metrics before training and after every epoch,
with the step count) and best-epoch selection (`train.select: best_val`), both on val only.

The curve lives in the run's `stats` (saved in every epoch checkpoint), so a resumed run keeps the points it
had; under best_val the best epoch's tuned weights are kept on disk beside the checkpoint for the same reason.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from vtrbench.benchmark import distributed as dist

BEST_VAL_WEIGHTS_FILE = "best_val.safetensors"


def metric_value(metrics: dict[str, Any], name: str) -> float:
    """`rsum`, or `<t2v|v2t>.<R1|R5|R10|MdR|MnR>` of a metrics dict as the runner writes it."""
    if name == "rsum":
        return float(metrics["rsum"])
    direction, metric = name.split(".", 1)
    return float(metrics[direction][metric])


def is_better(name: str, score: float, than: float | None) -> bool:
    """Recalls and rsum: higher is better; ranks (MdR, MnR): lower. Ties keep the earlier one."""
    if than is None:
        return True
    return score < than if name.endswith(("MdR", "MnR")) else score > than


class ValidationCurve:
    """Measures the val split at the end of each epoch (and at step 0) into `stats["val_curve"]`; tracks the
    best point by `metric` in `stats["best_val"]`, saving its tuned weights when `keep_best`."""

    def __init__(self, run: Any, split: Any, metric: str, keep_best: bool):
        self.run, self.split, self.metric, self.keep_best = run, split, metric, keep_best

    @property
    def best_weights(self) -> Path:
        return self.run.out_dir / BEST_VAL_WEIGHTS_FILE

    def measure(self, stats: dict, epoch: int) -> None:
        from vtrbench.benchmark.results import save_tuned_weights

        started = time.perf_counter()
        metrics, _ = self.run.evaluate(self.split)
        stats["val_s"] = stats.get("val_s", 0.0) + time.perf_counter() - started
        point = {"epoch": epoch, "step": stats["steps"], "metrics": metrics}
        stats.setdefault("val_curve", []).append(point)
        score = metric_value(metrics, self.metric)
        best = stats.get("best_val")
        # a degenerate point (collapsed scores, see metrics.py) is never the best
        if not metrics.get("ties", {}).get("degenerate") and is_better(self.metric, score,
                                                                      best["score"] if best else None):
            stats["best_val"] = {"epoch": epoch, "step": stats["steps"], "metric": self.metric, "score": score}
            if self.keep_best and dist.is_main():  # named by its point, which a resume checks against its state
                save_tuned_weights(self.run.method, self.best_weights,
                                   {"epoch": str(epoch), "step": str(stats["steps"])})
            dist.barrier()
