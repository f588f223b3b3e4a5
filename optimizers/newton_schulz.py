"""The Newton–Schulz orthogonalisation shared by Muon and Scion: pytorch-optimizer's quintic iteration
(`zero_power_via_newton_schulz_5`) with the reference muon.py's coefficients. It runs in bfloat16 on CUDA, as the
references do for GPUs' fast bf16 matrix units, and in float32 on CPUs, whose bf16 matmuls are 20-50x slower than
fp32 without such units: the same update up to bf16 rounding (tests/test_optimizers.py checks both)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.distributed as dist
from pytorch_optimizer.optimizer.utils.matrix import zero_power_via_newton_schulz_5

COEFFICIENTS = (3.4445, -4.7750, 2.0315)  # the reference muon.py's quintic coefficients (Jordan et al. 2024)


def precision(param: torch.Tensor) -> torch.dtype:
    """The iteration's dtype for a parameter on this device: bf16 on CUDA, fp32 elsewhere."""
    return torch.bfloat16 if param.is_cuda else torch.float32


def orthogonalise(matrix: torch.Tensor, steps: int, dtype: torch.dtype, eps: float = 1e-7) -> torch.Tensor:
    """The approximate polar factor of a 2-D `matrix` (a conv kernel is passed as its (out, in*kh*kw) view)."""
    return zero_power_via_newton_schulz_5(matrix, steps, eps, weights=COEFFICIENTS, dtype=dtype)


def across_ranks(inputs: list[torch.Tensor], fn: Callable[[torch.Tensor], torch.Tensor]) -> list[torch.Tensor]:
    """`fn(x).to(x.dtype)` for each x of `inputs` (`fn` keeps the shape). Under torch.distributed with several
    ranks, as the reference's distributed Muon does, rank r computes items r, r + W, r + 2W, ... and each result is
    broadcast from the rank that computed it: every rank ends with every result, and the orthogonalisation work
    per rank falls as ranks are added. The inputs must be the same on every rank (DDP's averaged gradients)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [fn(x).to(x.dtype) for x in inputs]
    world, rank = dist.get_world_size(), dist.get_rank()
    results, pending = [], []
    for i, x in enumerate(inputs):
        out = fn(x).to(x.dtype).contiguous() if i % world == rank else torch.empty_like(x)  # (gloo, NCCL: dense)
        pending.append(dist.broadcast(out, src=i % world, async_op=True))
        results.append(out)
    for work in pending:
        work.wait()
    return results
