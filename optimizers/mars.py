"""MARS (Yuan et al. 2024, variance reduction for preconditioned optimizers), pytorch-optimizer's MARS-AdamW.

As in the authors' code, 1-D parameters are stepped by the built-in AdamW branch (lr_1d, betas_1d, wd_1d)."""

from __future__ import annotations

import pytorch_optimizer

from optimizers.spec import OptimizerSpec, decay_groups


def build(params, roles, hp, ctx):
    return pytorch_optimizer.MARS(
        decay_groups(params, roles, hp),
        lr=hp["lr"],
        betas=tuple(hp["betas"]),
        gamma=hp["gamma"],
        mars_type="adamw",
        optimize_1d=False,
        lr_1d=hp["lr_1d"],
        betas_1d=tuple(hp["betas_1d"]),
        weight_decay_1d=hp["weight_decay_1d"],
        eps=hp["eps"],
    )


SPEC = OptimizerSpec(
    name="mars",
    build=build,
    packages=("torch", "pytorch_optimizer"),
)
