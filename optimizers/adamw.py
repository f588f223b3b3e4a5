"""AdamW (Loshchilov & Hutter 2019) from torch.optim, with decoupled weight decay on chosen roles only."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from optimizers.spec import NamedParams, OptimizerSpec, Roles, split_by_roles
from workloads.base import ParamRole


def build_adamw(params: NamedParams, roles: Roles, hp: Mapping) -> torch.optim.Optimizer:
    """Two groups: roles in `no_decay_roles` get weight_decay 0, the others hp['weight_decay']."""
    no_decay, decay = split_by_roles(params, roles, {ParamRole(r) for r in hp["no_decay_roles"]})
    groups = [
        {"params": decay, "weight_decay": hp["weight_decay"]},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    on_cuda = next(iter(params.values())).is_cuda
    return torch.optim.AdamW(
        [g for g in groups if g["params"]],
        lr=hp["lr"],
        betas=tuple(hp["betas"]),
        eps=hp["eps"],
        fused=on_cuda or None,  # the fused CUDA kernel; torch picks foreach/for-loop elsewhere
    )


SPEC = OptimizerSpec(
    name="adamw",
    build=build_adamw,
    hparams=frozenset({"lr", "betas", "eps", "weight_decay", "no_decay_roles"}),
)
