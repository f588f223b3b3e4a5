"""Data-parallel trials (DDP): one process per device, each taking an equal slice of every step's batch.

The ranks come from torchrun-style variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) or, in a
SLURM job with several tasks, from submitit's job environment. NCCL on GPUs, gloo on CPUs (the tests run 2 CPU
processes). Rank 0 writes the record; every rank evaluates the same held-out set, so all take the same decisions."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


SINGLE = Ranks()  # a trial without data parallelism


def from_environment() -> tuple[Ranks, str | None]:
    """The ranks and the rendezvous address of this process (None for a single-process trial)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        ranks = Ranks(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", "0")))
        return ranks, f"tcp://{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SUBMITIT_EXECUTOR" in os.environ:
        import submitit

        job = submitit.JobEnvironment()
        port = 20000 + int(job.job_id.split("_")[0]) % 20000  # one port per job, the same on every task
        return Ranks(job.global_rank, job.num_tasks, job.local_rank), f"tcp://{job.hostnames[0]}:{port}"
    return Ranks(), None


def init(device_type: str) -> Ranks:
    ranks, address = from_environment()
    if ranks.active and not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        dist.init_process_group(backend, init_method=address, rank=ranks.rank, world_size=ranks.world)
    return ranks


def mean(value: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """The mean of a scalar over the ranks (the value itself without DDP)."""
    if ranks.active:
        value = value.clone()
        dist.all_reduce(value)
        value /= ranks.world
    return value


def any_rank(flag: bool, ranks: Ranks, device: torch.device) -> bool:
    """True on every rank when it is true on one (so that all stop at the same step)."""
    if not ranks.active:
        return flag
    t = torch.tensor([int(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def smallest(value: int, ranks: Ranks, device: torch.device) -> int:
    """The minimum of an integer over the ranks (the value itself without DDP)."""
    if not ranks.active:
        return value
    t = torch.tensor([value], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())
