"""Process-group helpers. One process is the degenerate case of every function here, so the runner has a
single code path for `python -m vtrbench run` and `torchrun ... -m vtrbench run`."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def init_from_environment(device: str = "auto") -> torch.device | None:
    """Join the process group torchrun describes (RANK/WORLD_SIZE/LOCAL_RANK); None when not launched so.

    nccl on GPU LOCAL_RANK, gloo on CPU: the CPU when `device` (the config's) is "cpu" or no GPU is there.
    Returns this process's device.
    """
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return None
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device != "cpu" and torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
        backend = "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return device


class _GatherRows(torch.autograd.Function):
    """all_gather along dim 0 whose backward gives each rank the SUM over ranks of its rows' gradients.

    With a loss that every rank computes identically on the gathered rows, that sum is world_size times the
    loss's gradient; DDP then averages the parameter gradients over the ranks, which leaves exactly the
    single-process gradient of the loss on the whole global batch.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.rows = x.shape[0]
        return gather_no_grad(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)  # gloo has no reduce_scatter; these are batch x embedding, small either way
        return grad[rank() * ctx.rows:(rank() + 1) * ctx.rows]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate `x` (same shape on every rank) from every rank along dim 0, rank order; gradients flow
    back to each rank's own rows (see `_GatherRows` for their scale)."""
    if world_size() == 1:
        return x
    return _GatherRows.apply(x)


def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate `x` (same shape on every rank) from every rank along dim 0, for evaluation."""
    if world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


def launched_as_group() -> bool:
    """Whether this process is one of several that torchrun or a multi-task job started (WORLD_SIZE > 1)."""
    return "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def share_from_main(value: int, device: torch.device) -> int:
    """Rank 0's `value` on every rank (an int, so that nothing is pickled)."""
    if world_size() == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.long, device=device)
    dist.broadcast(tensor, src=0)
    return int(tensor.item())


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def shutdown() -> None:
    """Leave the process group (torchrun and submitit workers exit cleanly, without NCCL's warning)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
