"""AdamW (Loshchilov & Hutter 2019) from torch.optim, with decoupled weight decay on chosen roles only."""

from __future__ import annotations

import torch

from optimizers.spec import OptimizerSpec, decay_groups, on_cuda


def build(params, roles, hp, ctx) -> torch.optim.Optimizer:
    return torch.optim.AdamW(
        decay_groups(params, roles, hp),
        lr=hp["lr"],
        betas=tuple(hp["betas"]),
        eps=hp["eps"],
        fused=on_cuda(params) or None,  # the fused CUDA kernel; torch picks foreach/for-loop elsewhere
    )


SPEC = OptimizerSpec(name="adamw", build=build)
