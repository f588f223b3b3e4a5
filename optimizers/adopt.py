"""ADOPT (Taniguchi et al. 2024, "ADOPT: Modified Adam Can Converge with Any beta2") from the authors' torch-adopt."""

from __future__ import annotations

from adopt import ADOPT

from optimizers.spec import OptimizerSpec, decay_groups


def build(params, roles, hp, ctx):
    return ADOPT(decay_groups(params, roles, hp), lr=hp["lr"], betas=tuple(hp["betas"]), eps=hp["eps"], decouple=True)


SPEC = OptimizerSpec(
    name="adopt",
    build=build,
    packages=("torch", "torch-adopt"),
)
