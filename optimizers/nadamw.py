"""NAdamW: torch.optim.NAdam (Dozat 2016) with decoupled weight decay, AlgoPerf's baseline."""

from __future__ import annotations

import torch

from optimizers.spec import OptimizerSpec, decay_groups


def build(params, roles, hp, ctx) -> torch.optim.Optimizer:
    return torch.optim.NAdam(
        decay_groups(params, roles, hp),
        lr=hp["lr"],
        betas=tuple(hp["betas"]),
        eps=hp["eps"],
        momentum_decay=hp["momentum_decay"],
        decoupled_weight_decay=True,
    )


SPEC = OptimizerSpec(name="nadamw", build=build)
