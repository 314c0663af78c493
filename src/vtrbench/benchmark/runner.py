"""One run: build backbone, method and data from a resolved config, train, evaluate, write the result.

The loop is the same for every method: symmetric InfoNCE over the (globally gathered) batch, AdamW with a
cosine schedule and linear warm-up, gradient clipping, autocast on CUDA only, one checkpoint per epoch to
resume from. Training never sees the val split (the dataset's train split excludes it); val is measured before
training and after every epoch (the learning curve, `train.val_curve`), and the model tested is the last
epoch's or, under `train.select=best_val`, the best epoch's on val: nothing is selected on the test split.
A tuning trial (`tune.trial`) is scored on val and never loads the test split.
"""

from __future__ import annotations

import math
import random
import sys
import time
import traceback
from contextlib import ExitStack, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from vtrbench.benchmark import distributed as dist
from vtrbench.benchmark.config import config_differences, dataset_options, method_options, run_dir
from vtrbench.benchmark.counting import count_parameters, tuned_parameters
from vtrbench.benchmark.data import (
    CaptionPairs,
    CheckedSplit,
    ClipFrames,
    FrameSpec,
    check_split,
    collate,
    tokenize,
)
from vtrbench.benchmark.locks import RunLockedError, is_run_writer, run_lock
from vtrbench.benchmark.memory import MemoryMeter
from vtrbench.benchmark.metrics import DivergedError, NonFiniteScoresError, metrics_and_ties, unusable_reason
from vtrbench.benchmark.results import (
    CHECKPOINT_FILE,
    LEGACY_CHECKPOINT_FILE,
    CheckpointError,
    finished_result,
    git_commit,
    inputs_misfit,
    is_finished,
    load_checkpoint,
    load_tuned_weights,
    package_versions,
    run_inputs,
    save_checkpoint,
    save_tuned_weights,
    weights_metadata,
    write_json,
)
from vtrbench.benchmark.tracking import Tracker
from vtrbench.benchmark.validation import BEST_VAL_WEIGHTS_FILE, ValidationCurve
from vtrbench.datasets.frame_cache import CacheSettings, FrameCache, frame_cache_dir
from vtrbench.datasets.video import decoder_log_path, log_decoder_messages
from vtrbench.files import atomic_write
from vtrbench.methods.backbone import RANDOM_PRETRAINED, Backbone, load_backbone
from vtrbench.methods.base import RetrievalMethod
from vtrbench.registry import DATASETS, METHODS
from vtrbench.schema import CONFIG_FILE, RESULT_FILE, VAL_IDS_FILE, WEIGHTS_FILE, RunResult, curve_point_misfit


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={name}: torch finds no CUDA GPU on this machine; use device=auto or cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise RuntimeError(f"device={name}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    return device


def build_method(config: DictConfig, backbone: Backbone) -> RetrievalMethod:
    return METHODS.get(config.method)(backbone, method_options(config))


def progress_enabled(config: DictConfig) -> bool:
    return not config.quiet and sys.stderr.isatty() and dist.is_main()


def contrastive_loss(method: RetrievalMethod, text: torch.Tensor, video: torch.Tensor,
                     mask: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE over `method.similarity`; with several processes the negatives are the whole
    global batch (text, video and the clips' frame masks gathered from every rank).

    Every rank computes the same global loss. The gather's backward sums each rank's rows' gradients over
    the ranks (world_size times the gradient of the one loss) and DDP averages over the ranks, so the update
    equals the single-process one on the concatenated batch.
    """
    text_all, video_all = dist.gather_with_grad(text), dist.gather_with_grad(video)
    mask_all = dist.gather_no_grad(mask)
    # The logits are scaled by the temperature (up to 100): in bf16 they would keep ~2 significant digits.
    with torch.autocast(text_all.device.type, enabled=False):
        logits = method.similarity(text_all.float(), video_all.float(), mask_all).float()
        labels = torch.arange(logits.shape[0], device=logits.device)
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def cosine_with_warmup(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def make_optimizer(method: RetrievalMethod, config: DictConfig) -> torch.optim.Optimizer:
    """AdamW (betas (0.9, train.adam_beta2), eps train.adam_eps); backbone parameters at lr *
    backbone_lr_scale; no weight decay on gains and biases.

    `foreach=True`: the multi-tensor update, which PyTorch picks by itself on CUDA only. On a CPU it computes
    the same bits as the per-tensor loop, up to 1.7 times faster where a method tunes many small tensors
    (`python perf/optimizer_step.py`)."""
    backbone_ids = {id(p) for p in method.clip.parameters()}
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for param in tuned_parameters(method).values():
        groups.setdefault((id(param) in backbone_ids, param.ndim >= 2), []).append(param)
    lr, scale = config.train.lr, config.train.backbone_lr_scale
    return torch.optim.AdamW(
        [
            {"params": params, "lr": lr * (scale if in_backbone else 1.0),
             "weight_decay": config.train.weight_decay if decays else 0.0}
            for (in_backbone, decays), params in groups.items()
        ],
        betas=(0.9, config.train.adam_beta2),
        eps=config.train.adam_eps,
        foreach=True,
    )


def autocast_for(device: torch.device, enabled: bool):
    if device.type != "cuda" or not enabled:
        return nullcontext(), None
    # bf16 where the GPU computes it natively (Ampere on); emulated bf16 is slower than fp16 + a loss scaler
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    return torch.autocast("cuda", dtype=dtype), scaler


def precision_name(device: torch.device, amp: bool) -> str:
    """What `autocast_for` computes in: the forward pass's dtype (the loss is always fp32)."""
    if device.type != "cuda" or not amp:
        return "fp32"
    return "bf16 autocast" if torch.cuda.is_bf16_supported(including_emulation=False) else \
        "fp16 autocast with a loss scaler"


# No run applies any: scores are the raw similarities (papers that report QB-Norm or DSL numbers re-rank them
# at test time, which changes R@1 by several points).
POST_PROCESSING = "none (raw similarity: no QB-Norm, no DSL, no re-ranking)"


def reproducibility_record(run: Run) -> dict[str, Any]:
    """What most often keeps a number from being reproduced (CLIP4Clip-style code: GPU count and batch size),
    for result.json: processes, batch per process and global batch, GPUs, precision, library versions."""
    import open_clip

    config, cuda = run.config, run.device.type == "cuda"
    return {
        "processes": dist.world_size(),
        "batch_per_process": config.data.batch_size // dist.world_size(),
        "global_batch": config.data.batch_size,
        "gpu_model": torch.cuda.get_device_name(run.device) if cuda else None,
        "gpu_count": dist.world_size() if cuda else 0,
        "precision": precision_name(run.device, config.train.amp),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if cuda else None,
        "open_clip": open_clip.__version__,
        "post_processing": POST_PROCESSING,
    }


def optimizer_state_misfit(optimizer: torch.optim.Optimizer, saved: dict) -> str | None:
    """What of a saved optimizer state does not fit `optimizer`'s parameters (a per-parameter tensor, such as
    Adam's moments, of another shape than its parameter), or None. Counts are left to load_state_dict."""
    for saved_group, group in zip(saved["param_groups"], optimizer.param_groups, strict=False):
        for index, param in zip(saved_group.get("params", []), group["params"], strict=False):
            for name, value in saved["state"].get(index, {}).items():
                if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != param.shape:
                    return (f"its {name} of parameter {index} has shape {tuple(value.shape)}, the parameter "
                            f"{tuple(param.shape)}")
    return None


def check_heads_reach_tuned(method: RetrievalMethod, loss: torch.Tensor) -> None:
    """A frozen-trunk method trains on cached trunk features through `text_head`, `video_head` and `similarity`
    alone: a tuned tensor its encoders use outside them would be counted and saved but never trained, while
    evaluation applies it at its initial value. An error naming them, at the first step."""
    params = tuned_parameters(method)
    if loss.requires_grad:
        grads = torch.autograd.grad(loss, list(params.values()), retain_graph=True, allow_unused=True)
        unreached = [name for name, grad in zip(params, grads, strict=True) if grad is None]
    else:
        unreached = list(params)
    if unreached:
        shown = ", ".join(unreached[:5]) + (f" and {len(unreached) - 5} more" if len(unreached) > 5 else "")
        raise ValueError(f"{type(method).__name__} sets frozen_trunk = True, so it trains on cached trunk features "
                         f"through text_head, video_head and similarity alone, and these tuned tensors are not "
                         f"reached there: {shown}. Move them into a head, or set frozen_trunk = False")


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler, params, grad_clip: float) -> None:
    """Backward, gradient clipping and the update, through the fp16 loss scaler when there is one."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    torch.nn.utils.clip_grad_norm_(params, grad_clip)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()


# A resume state's training counters and what each must be (`Run.train`'s stats; `val_s` once a curve was measured)
_COUNTERS = ("train_s", "clips_seen", "failed_decodes", "steps", "epochs", "val_s")
_STATS_KINDS = {"val_curve": list, "undecodable": dict, "best_val": (dict, type(None))}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def resume_state_misfit(state: dict, scheduler_state: dict, epochs: int, metric: str) -> str | None:
    """Why a resume state's epoch, counters, curve or schedule cannot stand for this run (None when they can):
    its epoch must be one of the run's, its counters numbers >= 0, its curve's points and its best val point
    whole (the best by this run's `metric`), and its schedule hold what this run's does."""
    epoch = state["epoch"]
    if not 0 <= epoch < epochs:
        return f"its epoch {epoch} is not one of this run's 0..{epochs - 1}"
    for index, point in enumerate(state["stats"].get("val_curve") or []):
        problem = curve_point_misfit(point)
        if problem:
            return f"its stats' val_curve[{index}]: {problem}"
    best = state["stats"].get("best_val")
    if isinstance(best, dict) and not (type(best.get("epoch")) is int and type(best.get("step")) is int
                                       and best.get("metric") == metric and _number(best.get("score"))):
        return f"its stats' best_val {best!r:.80} is not a point of this run's curve by {metric}"
    for key, value in state["stats"].items():
        if key in _COUNTERS:
            if not _number(value) or value < 0:
                return f"its stats' {key!r} must be a number >= 0, got {value!r:.40}"
        elif key not in _STATS_KINDS:
            return f"its stats hold an unknown key {key!r}"
        elif not isinstance(value, _STATS_KINDS[key]):
            return f"its stats' {key!r} is a {type(value).__name__}"
    missing = [key for key in (*_COUNTERS[:-1], *_STATS_KINDS) if key not in state["stats"]]
    if missing:
        return f"its stats lack {', '.join(missing)}"
    saved = state["scheduler"]
    if set(saved) != set(scheduler_state):
        return f"its schedule holds {sorted(saved)}, expected {sorted(scheduler_state)}"
    for key, value in scheduler_state.items():
        kinds = (int, float) if _number(value) else type(value)
        if not isinstance(saved[key], kinds) or isinstance(saved[key], bool) != isinstance(value, bool):
            return f"its schedule's {key!r} is {saved[key]!r:.40}, expected a {type(value).__name__}"
    return None


class Run:
    """Everything one run needs, built once."""

    def __init__(self, config: DictConfig):
        self.config = config
        self.out_dir = run_dir(config)
        self.device = dist.init_from_environment(config.device) or pick_device(config.device)
        seed_everything(config.seed)
        self.dataset = DATASETS.get(config.dataset)(dataset_options(config))
        self.dataset.check_root()  # before the backbone, which may first pretrain for minutes
        self.backbone = load_backbone(config.backbone.name, config.backbone.pretrained, config.backbone.quick_gelu,
                                      progress=not config.quiet)
        context = self.backbone.model.positional_embedding.shape[0]
        if config.data.max_words > context:
            raise ValueError(f"data.max_words={config.data.max_words} exceeds the backbone's text length {context}")
        self.method = build_method(config, self.backbone).to(self.device)
        self.tokenizer = self.backbone.tokenizer(config.data.max_words)
        self.spec = FrameSpec(config.data.num_frames, self.backbone.image_size, self.backbone.mean, self.backbone.std)
        self.params = count_parameters(self.method, self.backbone.num_elements)
        self.show = progress_enabled(config)
        self.tracker = Tracker(config, self.out_dir)
        self._frame_caches: dict[str, FrameCache | None] = {}

    # ---- data -------------------------------------------------------------------------------------------
    def split(self, name: str) -> CheckedSplit:
        checked = check_split(self.dataset.load(name), self.frame_cache(name))
        if not checked.clips:
            why = (" (val is measured for the learning curve, best_val selection and tuning trials; "
                   "train.val_curve=false runs without it)") if name == "val" else ""
            example = next(iter(checked.skipped.items()), None)
            skipped = f": all {len(checked.skipped)} clip(s) set aside, e.g. {example[0]}: {example[1]}" \
                if example else ": the split file lists no clip"
            raise ValueError(f"{self.config.dataset} {name} split: no usable clip under {self.dataset.root}"
                             f"{skipped}{why}")
        if checked.skipped and dist.is_main():
            shown = ", ".join(list(checked.skipped)[:5])
            print(f"[{name}] skipping {len(checked.skipped)} clip(s) ({shown}...)", file=sys.stderr)
        return checked

    def loader(self, dataset: torch.utils.data.Dataset, batch_size: int, shuffle: bool, epoch: int = 0):
        """A DistributedSampler even for one process: its permutation depends on (seed, epoch) only, and rank
        r takes every world_size-th item of it, so global batch k is the same set of samples whatever the
        number of processes (the batch size per rank being data.batch_size // world_size)."""
        sampler = torch.utils.data.distributed.DistributedSampler(
            dataset, num_replicas=dist.world_size(), rank=dist.rank(), shuffle=shuffle, seed=self.config.seed,
            drop_last=shuffle,
        )
        sampler.set_epoch(epoch)
        return DataLoader(
            dataset, batch_size=batch_size, sampler=sampler, num_workers=self.config.data.num_workers,
            collate_fn=collate, drop_last=shuffle and len(sampler) > batch_size,
        )

    def frame_cache(self, split: str) -> FrameCache | None:
        """The split's frame cache (`vtrbench data prepare`) when `data.frame_cache` is on and it is current;
        opened once per split and run (its index is read once, its frames are memory-mapped)."""
        if split not in self._frame_caches:
            self._frame_caches[split] = self._open_frame_cache(split)
        return self._frame_caches[split]

    def _open_frame_cache(self, split: str) -> FrameCache | None:
        if not self.config.data.frame_cache:
            return None
        settings = CacheSettings(self.spec.image_size, self.config.data.frame_cache_fps,
                                 min_frames=self.spec.num_frames)
        cache = FrameCache.open(frame_cache_dir(self.config.dataset, self.dataset.root), split, settings)
        return cache

    # ---- training ---------------------------------------------------------------------------------------
    def train(self, train: CheckedSplit, curve: ValidationCurve | None = None) -> dict[str, Any]:
        config, method = self.config, self.method
        stats = {"train_s": 0.0, "clips_seen": 0, "failed_decodes": 0, "steps": 0, "epochs": 0,
                 "val_curve": [], "best_val": None,
                 "undecodable": {}}  # clip id -> why, for training clips that failed to decode
        if self.params["tuned"] == 0:
            if curve is not None:  # a method that trains nothing has one point: where it starts
                curve.measure(stats, epoch=0)
            return stats
        if method.frozen_trunk:
            pairs = self.cached_trunk_pairs(train)
        else:
            tokens = tokenize(self.tokenizer, train.captions)
            pairs = CaptionPairs(train.clips, self.spec, tokens, seed=config.seed, cache=self.frame_cache("train"))
        if config.data.batch_size % dist.world_size():
            raise ValueError(f"data.batch_size={config.data.batch_size} is not a multiple of the "
                             f"{dist.world_size()} processes")
        per_rank = config.data.batch_size // dist.world_size()
        steps_per_epoch = max(1, len(pairs) // config.data.batch_size)
        total = steps_per_epoch * config.train.epochs
        if config.train.max_steps:
            total = min(total, config.train.max_steps)
        optimizer = make_optimizer(method, config)
        warmup = max(1, int(config.train.warmup * total))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: cosine_with_warmup(s, total, warmup))
        amp, scaler = autocast_for(self.device, config.train.amp)
        model = CachedFeatureHeads(method) if method.frozen_trunk else method
        if dist.world_size() > 1:  # DDP averages gradients only of what runs through its own forward
            model = nn.parallel.DistributedDataParallel(model, find_unused_parameters=False)
        start_epoch = self.resume(optimizer, scheduler, stats)
        steps_at_start = stats["steps"]
        if start_epoch == 0 and curve is not None:
            curve.measure(stats, epoch=0)
        ckpt = self.out_dir / CHECKPOINT_FILE
        for epoch in range(start_epoch, config.train.epochs):
            if stats["steps"] >= total:
                break
            started = time.perf_counter()
            if isinstance(pairs, CaptionPairs):
                pairs.epoch = epoch
            method.train()
            epoch_loss, epoch_start_step = 0.0, stats["steps"]
            bar = tqdm(self.loader(pairs, per_rank, True, epoch), disable=not self.show,
                       desc=f"{config.method} epoch {epoch + 1}/{config.train.epochs}", leave=False)
            for batch in bar:
                stats["failed_decodes"] += batch["failed"]
                stats["undecodable"].update((train.clips[i].video_id, why) for i, why in batch["failures"])
                if "tokens" not in batch or len(batch["tokens"]) < 2:
                    continue
                with amp:
                    loss = self.step_loss(model, batch)
                if method.frozen_trunk and stats["steps"] == steps_at_start:
                    check_heads_reach_tuned(method, loss)
                if not torch.isfinite(loss):  # every rank computes the same global loss: all of them stop
                    raise DivergedError(f"the training loss is {loss.item()} at step {stats['steps'] + 1} (epoch "
                                        f"{epoch + 1}): training diverged (train.lr={config.train.lr})")
                optimizer_step(loss, optimizer, scaler, tuned_parameters(method).values(), config.train.grad_clip)
                scheduler.step()
                stats["steps"] += 1
                stats["clips_seen"] += len(batch["tokens"]) * dist.world_size()
                bar.set_postfix(loss=f"{loss.item():.3f}")
                epoch_loss += loss.item()
                self.tracker.log({"train/loss": loss.item(), "train/lr": scheduler.get_last_lr()[0],
                                  "train/epoch": epoch}, step=stats["steps"])
                if stats["steps"] >= total:
                    break
            stats["train_s"] += time.perf_counter() - started
            stats["epochs"] = epoch + 1
            self.tracker.log({"epoch/loss": epoch_loss / max(1, stats["steps"] - epoch_start_step),
                              "epoch/seconds": time.perf_counter() - started}, step=stats["steps"])
            if curve is not None:
                curve.measure(stats, epoch=epoch + 1)
                self.tracker.log({"val/R1_t2v": stats["val_curve"][-1]["metrics"]["t2v"]["R1"]}, step=stats["steps"])
            if dist.is_main():
                save_checkpoint(ckpt, method, optimizer,
                                {"epoch": epoch, "scheduler": scheduler.state_dict(), "stats": stats}, config)
            dist.barrier()
        return stats

    def step_loss(self, model: nn.Module, batch: dict) -> torch.Tensor:
        mask = batch["mask"].to(self.device)
        if "text_features" in batch:  # frozen trunk: train the heads on cached features
            text, video = model(batch["text_features"].to(self.device), batch["video_features"].to(self.device),
                                mask)
        else:
            text, video = model(batch["tokens"].to(self.device), batch["frames"].to(self.device), mask)
        return contrastive_loss(self.method, text, video, mask)

    def resume(self, optimizer, scheduler, stats: dict) -> int:
        """The epoch to go on from. A resume state is used only when it belongs to this very config; one of
        another config or one that cannot be read is set aside (start afresh), and a pickle is never read."""
        self.drop_legacy_checkpoint()
        path = self.out_dir / CHECKPOINT_FILE
        if not path.is_file():
            return 0
        try:
            tuned, optimizer_state, state = load_checkpoint(path)
        except CheckpointError as err:
            self.say(f"{err}; starting afresh")
            return 0
        differences = config_differences(state["config"], self.config)
        if differences:
            self.say(f"{self.out_dir}: the epoch checkpoint there belongs to another config ({differences[0]}); "
                     f"starting afresh")
            if dist.is_main():
                path.unlink(missing_ok=True)
                (self.out_dir / BEST_VAL_WEIGHTS_FILE).unlink(missing_ok=True)
            return 0
        misfit = resume_state_misfit(state, scheduler.state_dict(), int(self.config.train.epochs),
                                     str(self.config.tune.metric))
        if misfit is None:
            misfit = (self.versions_misfit(state.get("versions")) or inputs_misfit(state.get("inputs"), self.config)
                      or self.best_weights_misfit(state["stats"]))
        if misfit is not None:  # edited, or written by another version: its counters would run the loop wrong
            self.say(f"{path}: {misfit}; starting afresh")
            return 0
        params = tuned_parameters(self.method)
        shapes = {name: tuple(p.shape) for name, p in params.items()}
        if {name: tuple(t.shape) for name, t in tuned.items()} != shapes:  # written by another version of it
            self.say(f"{path}: its tuned weights do not fit {self.config.method}'s; starting afresh")
            return 0
        # torch checks the counts only (moments of another shape would fail later, in a step); either check
        # comes before anything is changed, so a state that does not fit leaves the optimizer as it was
        misfit = optimizer_state_misfit(optimizer, optimizer_state)
        if misfit is None:
            try:
                optimizer.load_state_dict(optimizer_state)
            except (ValueError, KeyError) as err:
                misfit = str(err)
        if misfit is not None:
            self.say(f"{path}: its optimizer state does not fit ({misfit}); starting afresh")
            return 0
        scheduler.load_state_dict(state["scheduler"])
        with torch.no_grad():
            for name, value in tuned.items():
                params[name].copy_(value)
        restore_random_state(state["rng"])
        stats.update(state["stats"])
        self.say(f"resuming {self.out_dir} after epoch {state['epoch'] + 1}")
        return state["epoch"] + 1

    def versions_misfit(self, saved: Any) -> str | None:
        """A resume state written under other libraries would make one run of two versions, which its result
        (recording the last) could not show."""
        current = package_versions()
        if saved == current:
            return None
        if not isinstance(saved, dict):
            return "it does not record the library versions it was written with"
        changed = [f"{name} {saved.get(name)} -> {version}" for name, version in current.items()
                   if saved.get(name) != version]
        return f"it was written with other library versions ({', '.join(changed)})"

    def best_weights_misfit(self, stats: dict) -> str | None:
        """Under best_val, the best epoch's weights must be those of the point the state calls best: a run killed
        after writing a new best but before its epoch checkpoint left the weights of a point the state lacks."""
        best = stats.get("best_val")
        if self.config.train.select != "best_val" or not self.params["tuned"] or best is None:
            return None
        path = self.out_dir / BEST_VAL_WEIGHTS_FILE
        saved = weights_metadata(path) if path.is_file() else {}
        if (saved.get("epoch"), saved.get("step")) != (str(best["epoch"]), str(best["step"])):
            held = f"epoch {saved['epoch']}" if "epoch" in saved else "no epoch it names"
            return f"{path.name} holds the weights of {held}, not of the best val point, epoch {best['epoch']}"
        return None

    def drop_legacy_checkpoint(self) -> None:
        """`last_epoch.pt` is a pickle (older vtrbench, or planted in a shared folder): never loaded."""
        legacy = self.out_dir / LEGACY_CHECKPOINT_FILE
        if legacy.exists():
            self.say(f"{legacy}: not loaded (a pickle can run code; resume states are safetensors now) and "
                     f"removed; starting afresh")
            if dist.is_main():
                legacy.unlink(missing_ok=True)

    def say(self, message: str) -> None:
        if dist.is_main():
            print(message, file=sys.stderr)

    @torch.no_grad()
    def cached_trunk_pairs(self, train: CheckedSplit) -> torch.utils.data.Dataset:
        """Frozen trunk: its features for every clip (midpoint frames) and caption, computed once."""
        video_features, mask = self.encode_clips(train, trunk_only=True)  # sets aside clips that fail
        tokens = tokenize(self.tokenizer, train.captions)
        text_features = torch.cat([
            self.method.text_features(chunk.to(self.device)).cpu()
            for chunk in tokens.split(self.config.data.eval_batch_size)
        ])
        return CachedPairs(text_features, tokens, video_features, mask, train.caption_video)

    # ---- evaluation -------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_clips(self, split: CheckedSplit, trunk_only: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Vectors and frame masks of the split's clips, in clip order. A clip that fails to decode here (a
        file broken past the frames the check opened) is set aside from `split`, with its captions, and
        recorded in `split.skipped`: the rows returned are those of the clips left."""
        method = self.method
        method.eval()
        clips = split.clips
        frames = ClipFrames(clips, self.spec, train=False, cache=self.frame_cache(split.name))
        vectors, masks, order = [], [], []
        reasons: dict[int, str] = {}
        bar = tqdm(self.loader(frames, self.config.data.eval_batch_size, False), disable=not self.show,
                   desc="encoding clips", leave=False)
        for batch in bar:
            reasons.update(batch["failures"])
            if "frames" not in batch:
                continue
            x, m = batch["frames"].to(self.device), batch["mask"].to(self.device)
            out = method.video_features(x, m) if trunk_only else method.encode_video(x, m)
            vectors.append(out.float())
            masks.append(m)
            order.append(batch["clip"].to(self.device))
        failed = torch.zeros(len(clips), dtype=torch.bool, device=self.device)
        failed[list(reasons)] = True
        failed = dist.gather_no_grad(failed.long()).view(-1, len(clips)).amax(0).bool()  # any process's
        if bool(failed.all()) or not vectors:
            raise RuntimeError(f"{self.config.dataset} {split.name} split: no clip could be decoded "
                               f"({len(reasons)} failed here, e.g. {next(iter(reasons.values()), '?')})")
        vectors_t, masks_t, order_t = torch.cat(vectors), torch.cat(masks), torch.cat(order)
        vectors_t, masks_t, order_t = (dist.gather_no_grad(t) for t in (vectors_t, masks_t, order_t))
        # DistributedSampler pads shards by repeating clips; keep the first copy of each clip, in clip order
        # (scatter with "amin" is deterministic where an index_put with repeated indices is not)
        positions = torch.arange(len(order_t), device=order_t.device)
        keep = torch.full((len(clips),), len(order_t), dtype=torch.long, device=order_t.device)
        keep = keep.scatter_reduce(0, order_t, positions, reduce="amin")[~failed]
        if int(keep.max()) == len(order_t):
            raise RuntimeError("a clip was encoded by no process")
        if bool(failed.any()):
            stage = "while caching frozen-trunk features" if trunk_only else "at evaluation"
            self.set_aside_undecodable(split, failed, reasons, stage)
        return vectors_t[keep].cpu(), masks_t[keep].cpu()

    def set_aside_undecodable(self, split: CheckedSplit, failed: torch.Tensor, reasons: dict[int, str],
                              stage: str) -> None:
        named = {int(i): f"cannot decode {stage}: {reasons.get(int(i), 'failed on another process')}"
                 for i in failed.nonzero().flatten().tolist()}
        shown = ", ".join(split.clips[i].video_id for i in list(named)[:5])
        self.say(f"[{split.name}] {len(named)} clip(s) could not be decoded and are set aside with their "
                 f"captions ({shown}{', ...' if len(named) > 5 else ''}); messages in {decoder_log_path()}")
        split.set_aside(named)

    @torch.no_grad()
    def evaluate(self, test: CheckedSplit) -> tuple[dict, dict[str, np.ndarray]]:
        method = self.method
        method.eval()
        video, mask = self.encode_clips(test)  # first: it sets aside the clips that fail to decode
        tokens = tokenize(self.tokenizer, test.captions)
        text = torch.cat([
            method.encode_text(chunk.to(self.device)).float().cpu()
            for chunk in tokens.split(self.config.data.eval_batch_size)
        ])
        similarity = score_matrix(method, text, video, mask, self.device).numpy()
        try:
            metrics, ranks, ties = metrics_and_ties(similarity, test.caption_video)
        except NonFiniteScoresError as err:
            raise DivergedError(f"{test.name} split: {err}: the model diverged") from err
        return {**metrics, "ties": ties}, ranks  # ties: tied and collapsed queries, and whether degenerate


# What one chunk of captions may cost in score_matrix: 2**26 scores, 256 MB in fp32 per [chunk, B, T] tensor.
SCORE_CHUNK_ELEMENTS = 1 << 26


@torch.no_grad()
def score_matrix(method: RetrievalMethod, text: torch.Tensor, video: torch.Tensor, mask: torch.Tensor,
                 device: torch.device, max_elements: int = SCORE_CHUNK_ELEMENTS) -> torch.Tensor:
    """[N, B] float scores on the CPU: every caption against every clip, as many captions at a time as keep
    a [chunk, B, T] tensor (a text-conditioned method's largest; [chunk, B] for one vector per clip) within
    `max_elements`: all of MSR-VTT 1k-A at 12 frames at once, 213 of ActivityNet's 4,917 paragraphs at 64.
    Scores depend on their own pair only, so the chunking never changes them."""
    per_caption = max(1, video.shape[0] * (video.shape[1] if video.dim() > 2 else 1))
    text_chunk = max(1, min(len(text), max_elements // per_caption))
    video, mask = video.to(device), mask.to(device)
    return torch.cat([
        method.similarity(chunk.to(device), video, mask).float().cpu() for chunk in text.split(text_chunk)
    ])


class CachedFeatureHeads(nn.Module):
    """The trainable heads of a frozen-trunk method as one module, so DistributedDataParallel can wrap it."""

    def __init__(self, method: RetrievalMethod):
        super().__init__()
        self.method = method

    def forward(self, text_features: torch.Tensor, video_features: torch.Tensor, mask: torch.Tensor):
        return self.method.text_head(text_features), self.method.video_head(video_features, mask)


class CachedPairs(torch.utils.data.Dataset):
    """Training pairs of a frozen-trunk method: cached text and video features, no decoding."""

    def __init__(self, text_features, tokens, video_features, mask, caption_video):
        self.text_features, self.tokens = text_features, tokens
        self.video_features, self.mask, self.caption_video = video_features, mask, caption_video

    def __len__(self) -> int:
        return len(self.text_features)

    def __getitem__(self, index: int) -> dict:
        clip = int(self.caption_video[index])
        return {"text_features": self.text_features[index], "tokens": self.tokens[index],
                "video_features": self.video_features[clip], "mask": self.mask[clip]}


def execute(config: DictConfig) -> dict:
    """Run one configuration to a result file; returns the result. A finished run of this config is returned
    as it is; a finished run of another config in the same folder is an error (`RunConflictError`); a run
    another live process is executing is an error too (`RunLockedError`), raised before any work.

    A tuning trial (`tune.trial` set) is evaluated on the val split and never loads the test split."""
    return execute_or_reuse(config)[0]


# What rank 0 found in the run's folder, shared so that every rank of a group goes the same way
_RUN, _FINISHED, _STOPPED = 0, 1, 2


def execute_or_reuse(config: DictConfig) -> tuple[dict, bool]:
    """`execute`, and whether this call ran the run (False: a finished result was there, or appeared while
    another process held the run's lock).

    One process, or a group of them (torchrun, a multi-task job): rank 0 alone reads the folder and takes the
    lock, then tells every rank to run, to return the finished result, or to stop (another process holds the
    run, or the folder holds another config's run: rank 0 raises that error, the others say that rank 0
    stopped). Without this the other ranks of a group waited for rank 0 until the group's timeout."""
    out_dir = run_dir(config)
    device = dist.init_from_environment(config.device) if dist.launched_as_group() else None
    with ExitStack() as held:
        decision, error, finished = _RUN, None, None
        if dist.is_main():
            try:
                finished = finished_result(out_dir, config)
                if finished is None:
                    held.enter_context(run_lock(out_dir))
                    finished = finished_result(out_dir, config)  # its holder may have finished it meanwhile
                decision = _RUN if finished is None else _FINISHED
            except Exception as err:
                decision, error = _STOPPED, err
        decision = dist.share_from_main(decision, device)
        if decision == _RUN:
            return execute_locked(config, out_dir), True
        if decision == _FINISHED:
            return (finished if finished is not None else finished_result(out_dir, config)), False
        if error is not None:
            raise error
        raise RuntimeError(f"{out_dir}: rank 0 of this group stopped before the run (its error says why: "
                           f"another process runs it, or the folder holds another config's run)")


def execute_locked(config: DictConfig, out_dir: Path) -> dict:
    """`execute` under the run's lock, for a run with no finished result."""
    meter = MemoryMeter.start()  # before the run builds anything: its model and data are its own memory
    run = Run(config)
    if dist.is_main():
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(out_dir / CONFIG_FILE, lambda tmp: tmp.write_text(OmegaConf.to_yaml(config)))
    run.dataset.check_disjoint_splits()  # before any training: never train or tune on test clips
    meter.watch(run.device)
    decoder_log = out_dir / "decode.log"
    log_decoder_messages(decoder_log)
    trial = bool(config.tune.trial)
    best_val = config.train.select == "best_val"
    train_split = run.split("train")
    val_split = run.split("val") if (trial or best_val or config.train.val_curve) else None
    curve = ValidationCurve(run, val_split, config.tune.metric, keep_best=best_val) \
        if (best_val or config.train.val_curve) else None
    eval_split = val_split if trial else run.split("test")
    stats = run.train(train_split, curve)
    check_trained(run, stats)
    selection = select_model(run, stats)
    started = time.perf_counter()
    metrics, ranks = run.evaluate(eval_split)
    eval_s = time.perf_counter() - started
    val_ids = held_out_ids(run, val_split)
    ties = metrics.pop("ties")
    unusable = unusable_reason(ties, backbone_pretrained=config.backbone.pretrained != RANDOM_PRETRAINED)
    result = RunResult(
        status="degenerate" if unusable else "finished",  # degenerate: never ranked nor chosen
        reason=unusable,
        method=config.method,
        variant=config.variant,
        dataset=config.dataset,
        split=eval_split.name,
        trial=config.tune.trial if trial else None,
        backbone=config.backbone.name,
        pretrained=config.backbone.pretrained,
        activation=run.backbone.activation,  # read from the modules built, not from the config
        seed=config.seed,
        metrics=metrics,
        ranks={k: v.tolist() for k, v in ranks.items()},
        t2v_query_clips=eval_split.caption_video.tolist(),  # the unit the report's bootstrap draws
        num_queries={"t2v": len(ranks["t2v"]), "v2t": len(ranks["v2t"])},
        ties=ties,  # ties count in the query's favour (CLIP4Clip); how many queries had one
        params=dict(run.params),
        timing={
            "train_s": round(stats["train_s"], 3),
            "eval_s": round(eval_s, 3),
            "val_curve_s": round(stats.get("val_s", 0.0), 3),
            "clips_per_s": round(stats["clips_seen"] / stats["train_s"], 2) if stats["train_s"] else None,
            "steps": stats["steps"],
            "epochs": stats["epochs"],
        },
        **meter.record(run.device),  # peak_memory_mb: the run's own; memory: how it was measured
        device=str(run.device),
        world_size=dist.world_size(),
        reproducibility=reproducibility_record(run),
        skipped={"train": train_split.skipped, eval_split.name: eval_split.skipped,
                 **({"val": val_split.skipped} if val_split is not None else {}),
                 "train_decode_failures": stats["failed_decodes"],
                 "train_undecodable": stats.get("undecodable", {})},
        val={"source": run.dataset.val_source(), "clips": len(val_ids), "ids_file": VAL_IDS_FILE},
        val_curve=stats["val_curve"],
        model_selection=selection,
        versions=package_versions(),
        inputs=run_inputs(config),
        git_commit=git_commit(),
        config=OmegaConf.to_container(config, resolve=True),
    ).to_json()
    if dist.is_main():
        atomic_write(out_dir / VAL_IDS_FILE, lambda tmp: tmp.write_text("".join(f"{i}\n" for i in val_ids)))
        result["params"]["checkpoint_bytes"] = save_tuned_weights(run.method, out_dir / WEIGHTS_FILE)
        write_json(out_dir / RESULT_FILE, result)
        run.tracker.finish(result)
        (out_dir / CHECKPOINT_FILE).unlink(missing_ok=True)
        (out_dir / BEST_VAL_WEIGHTS_FILE).unlink(missing_ok=True)
        if decoder_log.is_file() and not decoder_log.stat().st_size:
            decoder_log.unlink()
    dist.barrier()
    return result


def restore_random_state(saved: dict[str, torch.Tensor]) -> None:
    """Put the random generators where a resume state found them (`load_checkpoint`'s `rng`); a state without
    them (an older one) leaves them as they are."""
    if "cpu" in saved:
        torch.set_rng_state(saved["cpu"])
    cuda = [saved[key] for key in sorted((k for k in saved if k.startswith("cuda/")), key=lambda k: int(k[5:]))]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def select_model(run: Run, stats: dict) -> dict:
    """The model to evaluate: the last epoch's (as trained), or under best_val the best epoch's weights on val,
    loaded back. Returns the rule and the epoch chosen, for the result file."""
    if run.config.train.select != "best_val":
        return {"rule": "last_epoch", "epoch": stats["epochs"], "step": stats["steps"]}
    best = stats["best_val"]
    if best is None:  # every val point was degenerate: no epoch to choose
        raise DivergedError(f"train.select=best_val: every val point of {run.config.method} is degenerate "
                            f"(collapsed scores); no epoch can be chosen")
    if run.params["tuned"]:
        load_tuned_weights(run.method, run.out_dir / BEST_VAL_WEIGHTS_FILE)
    return {"rule": "best_val", "metric": best["metric"], "epoch": best["epoch"], "step": best["step"],
            "val_score": best["score"], "epochs_trained": stats["epochs"]}


def held_out_ids(run: Run, val_split: CheckedSplit | None) -> list[str]:
    """Every id of the val split, usable or not: what training left out, to rebuild the split from."""
    if val_split is not None:
        return [clip.video_id for clip in val_split.clips] + list(val_split.skipped)
    return [clip.video_id for clip in run.dataset.load("val").clips]


def check_trained(run: Run, stats: dict) -> None:
    """A method that tunes parameters but took no step would report zero-shot numbers under its own name."""
    if run.params["tuned"] and not stats["steps"]:
        raise RuntimeError(f"{run.config.method} tunes {run.params['tuned']:,} parameters but no training step "
                           f"ran ({stats['failed_decodes']} training clips failed to decode); no result is "
                           f"written under its name")


def record_failure(config: DictConfig, error: BaseException) -> dict:
    """A failed run leaves a result file saying so (status `diverged` for a non-finite loss or score, else
    `failed`), never over a finished one (of any config). A folder that cannot be written is said, not raised."""
    out_dir = run_dir(config)
    result = RunResult(
        status="diverged" if isinstance(error, DivergedError) else "failed",
        method=config.method, variant=config.variant,
        dataset=config.dataset, split="val" if config.tune.trial else "test",
        backbone=config.backbone.name, pretrained=config.backbone.pretrained,
        seed=config.seed, error=f"{type(error).__name__}: {error}",
        traceback="".join(traceback.format_exception(error)),
        config=OmegaConf.to_container(config, resolve=True),
    ).to_json()
    if not is_run_writer():  # rank 0 of a torchrun group records it, as it would have written the result
        return result
    try:
        with run_lock(out_dir):  # checked and written under the run's lock: never over another process's run
            if not is_finished(out_dir):
                write_json(out_dir / RESULT_FILE, result)
    except RunLockedError:  # another process runs it now: its result is not this failure's to write
        pass
    except (OSError, ValueError) as err:  # an unwritable folder, or an unreadable result there
        result["error"] += f" (and its failure could not be recorded: {err})"
        result["unrecorded"] = True  # for the caller's count: no file says it failed, so no report lists it
    return result
