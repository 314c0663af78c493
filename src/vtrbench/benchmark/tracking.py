"""wandb logging: copies of the numbers the result file holds, offline unless WANDB_MODE says otherwise (and
online only with an API key: without one it falls back to offline with one warning, before training)."""

from __future__ import annotations

import netrc
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from omegaconf import DictConfig, OmegaConf

from vtrbench.benchmark import distributed as dist
from vtrbench.schema import method_label


def wandb_key_found() -> bool:
    """Whether wandb can log in without asking: WANDB_API_KEY, or a ~/.netrc entry (or $NETRC's) for its host.
    Online mode without one would prompt, or stop the run, after training had started."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlsplit(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname
    path = os.environ.get("NETRC") or str(Path.home() / ".netrc")
    try:
        return netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


class Tracker:
    """Does nothing unless `output.wandb=true`; only rank 0 logs."""

    def __init__(self, config: DictConfig, out_dir: Path):
        self.run = None
        if not config.output.wandb or not dist.is_main():
            return
        mode = os.environ.setdefault("WANDB_MODE", "offline")  # nothing leaves the machine unless the user asks
        if mode in ("online", "run") and not wandb_key_found():
            print("wandb: WANDB_MODE=online but no API key (WANDB_API_KEY, or `wandb login`'s ~/.netrc): logging "
                  "offline instead; `wandb sync` uploads the run folder's wandb/ later", file=sys.stderr)
            os.environ["WANDB_MODE"] = "offline"  # one warning per process: the next runs go offline silently
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
