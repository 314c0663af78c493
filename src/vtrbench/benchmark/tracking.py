"""wandb logging: copies of the numbers the result file holds, offline unless WANDB_MODE says otherwise."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from vtrbench.benchmark import distributed as dist
from vtrbench.schema import method_label


class Tracker:
    """Does nothing unless `output.wandb=true`; only rank 0 logs."""

    def __init__(self, config: DictConfig, out_dir: Path):
        self.run = None
        if not config.output.wandb or not dist.is_main():
            return
        os.environ.setdefault("WANDB_MODE", "offline")  # nothing leaves the machine unless the user asks
        import wandb

        name = f"{config.dataset}/{method_label(config.method, config.variant)}/seed{config.seed}"
        out_dir.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            project=config.output.wandb_project, name=name, dir=str(out_dir),
            config=OmegaConf.to_container(config, resolve=True), reinit="finish_previous",
        )

    def log(self, values: dict[str, Any], step: int | None = None) -> None:
        if self.run is not None:
            self.run.log(values, step=step)

    def finish(self, result: dict | None = None) -> None:
        if self.run is None:
            return
        if result is not None:
            summary = {f"test/{d}/{k}": v for d in ("t2v", "v2t") for k, v in result["metrics"][d].items()}
            summary["test/rsum"] = result["metrics"]["rsum"]
            summary.update({f"params/{k}": v for k, v in result["params"].items()})
            self.run.summary.update(summary)
        self.run.finish()
        self.run = None
