"""Several processes train and evaluate exactly like one: 2 ranks x batch b against 1 process x batch 2b.

Two gloo processes on CPU (`device=cpu`, even where a GPU is there) run the real `execute` path
(DistributedSampler shards, DDP, the gathered contrastive loss, sharded evaluation gathered on every rank,
rank 0 writing). The loss and the gradients are recorded by wrapping the runner's own functions; the updated
weights and the metrics are read back from the files rank 0 wrote. Gradients are compared directly because
AdamW's first step is nearly sign(gradient): a gradient off by a factor of world_size would still give almost
the same weights.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import pytest
import torch
import torch.distributed
import torch.multiprocessing
from safetensors.torch import load_file

from tests.benchmark.conftest import tiny_run_overrides
from vtrbench.benchmark import runner
from vtrbench.benchmark.config import resolve_config, run_dir
from vtrbench.benchmark.locks import run_lock
from vtrbench.benchmark.results import CHECKPOINT_FILE
from vtrbench.offline.msrvtt import generate_msrvtt
from vtrbench.schema import RESULT_FILE, WEIGHTS_FILE

GLOBAL_BATCH = 4
LR = 1e-4


def run_recording_step(overrides: list[str]) -> dict:
    """`execute` one run, recording the loss of each step and the gradients before clipping."""
    recorded: dict = {"losses": [], "grads": []}
    contrastive_loss = runner.contrastive_loss
    clip_grad_norm = torch.nn.utils.clip_grad_norm_

    def recording_loss(*args: torch.Tensor) -> torch.Tensor:
        loss = contrastive_loss(*args)
        recorded["losses"].append(loss.item())
        return loss

    def recording_clip(parameters, *args, **kwargs) -> torch.Tensor:
        parameters = list(parameters)
        recorded["grads"].append([p.grad.detach().clone() for p in parameters])
        return clip_grad_norm(parameters, *args, **kwargs)

    with mock.patch.object(runner, "contrastive_loss", recording_loss), \
            mock.patch.object(torch.nn.utils, "clip_grad_norm_", recording_clip):
        runner.execute(resolve_config(overrides))
    return recorded


def distributed_worker(rank: int, world_size: int, port: int, overrides: list[str], out: Path) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)  # two processes on two cores
    try:
        torch.save(run_recording_step(overrides), out / f"rank{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spawn(worker: Callable, world_size: int, *args: object) -> None:
    torch.multiprocessing.spawn(worker, args=(world_size, free_port(), *args), nprocs=world_size, join=True)


# full_finetune: the whole backbone through DDP; cross_modal_adapter: per-frame video tensors and a score that
# reads the frame masks, which must be gathered with them
@pytest.mark.parametrize("method", ["full_finetune", "cross_modal_adapter"])
def test_two_processes_train_and_evaluate_like_one_with_the_whole_batch(method, tmp_path):
    # 7 test clips: two shards of 4, the second padded with a repeat of the first clip; 3 val clips likewise
    data = generate_msrvtt(tmp_path / "data", sizes={"train": 4, "val": 3, "test": 7}, progress=False)

    def overrides(runs: Path) -> list[str]:
        settings = {"data.batch_size": GLOBAL_BATCH, "data.eval_batch_size": 3, "train.epochs": 1,
                    "train.max_steps": 1, "train.lr": LR}
        return tiny_run_overrides(data, runs, method=method, **settings)

    spawn(distributed_worker, 2, overrides(tmp_path / "two"), tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = run_recording_step(overrides(tmp_path / "one"))
    finally:
        torch.set_num_threads(threads)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]

    assert len(single["losses"]) == 1
    for recorded in ranks:  # every rank computes the loss of the whole global batch, and DDP's mean gradient
        torch.testing.assert_close(recorded["losses"], single["losses"], rtol=1e-5, atol=1e-6)
        for grad, expected in zip(recorded["grads"][0], single["grads"][0], strict=True):
            # float noise scales with the tensor's gradients; a wrong scale would be off by a factor of 2
            torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))

    one_dir, two_dir = (run_dir(resolve_config(overrides(tmp_path / name))) for name in ("one", "two"))
    one_weights, two_weights = load_file(str(one_dir / WEIGHTS_FILE)), load_file(str(two_dir / WEIGHTS_FILE))
    assert one_weights.keys() == two_weights.keys()
    # AdamW's first step moves every element by about lr * sign(gradient); elements whose gradient is float
    # noise (an attention key bias) may move by a fraction of lr either way, a different batch by 2 * lr
    for name, value in one_weights.items():
        torch.testing.assert_close(two_weights[name], value, rtol=0, atol=LR / 4)

    one_result = json.loads((one_dir / RESULT_FILE).read_text())
    two_result = json.loads((two_dir / RESULT_FILE).read_text())
    assert (one_result["world_size"], two_result["world_size"]) == (1, 2)
    assert two_result["ranks"] == one_result["ranks"]
    assert two_result["metrics"] == one_result["metrics"]
    assert two_result["val_curve"] == one_result["val_curve"] and len(one_result["val_curve"]) == 2
    assert two_result["timing"]["steps"] == 1
    assert not (two_dir / CHECKPOINT_FILE).exists()


@pytest.mark.parametrize(("device", "expected", "backend"), [("cpu", "cpu", "gloo"), ("auto", "cuda:1", "nccl")])
def test_torchrun_follows_the_configured_device(monkeypatch, device, expected, backend):
    """On a machine with GPUs, `device=cpu` under torchrun trains on the CPU with gloo; before, the process
    group took GPU LOCAL_RANK whatever the config said."""
    from vtrbench.benchmark import distributed

    joined = []
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda index: None)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.distributed, "init_process_group", lambda backend: joined.append(backend))
    assert distributed.init_from_environment(device) == torch.device(expected)
    assert joined == [backend]


def outcome_worker(rank: int, world_size: int, port: int, overrides: list[str], out: Path) -> None:
    """`execute` one run as one rank of a group; write how it ended (a process that raised would end the group)."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    try:
        runner.execute(resolve_config(overrides))
        outcome = "ran"
    except Exception as err:
        outcome = f"{type(err).__name__}: {err}"
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    (out / f"rank{rank}.txt").write_text(outcome)


def test_a_group_whose_run_another_process_holds_stops_on_every_rank(tmp_path):
    """Only rank 0 takes the run's lock. When another process held it, rank 0 stopped before joining the
    group and the other ranks waited for it until the group's timeout (30 minutes: on SLURM, holding the
    GPUs); now rank 0 tells them, and every rank stops at once."""
    data = generate_msrvtt(tmp_path / "data", sizes={"train": 4, "val": 3, "test": 4}, progress=False)
    overrides = tiny_run_overrides(data, tmp_path / "runs", method="zero_shot")
    with run_lock(run_dir(resolve_config(overrides))):  # another process runs it
        group = torch.multiprocessing.spawn(outcome_worker, args=(2, free_port(), overrides, tmp_path), nprocs=2,
                                            join=False)
        deadline = time.monotonic() + 120
        while not group.join(timeout=5):
            if time.monotonic() > deadline:
                for process in group.processes:
                    process.kill()
                pytest.fail("a rank was still waiting for rank 0 after 120 s")
    assert (tmp_path / "rank0.txt").read_text().startswith("RunLockedError: ")
    assert "rank 0 of this group stopped before the run" in (tmp_path / "rank1.txt").read_text()
    assert not (run_dir(resolve_config(overrides)) / RESULT_FILE).exists()
