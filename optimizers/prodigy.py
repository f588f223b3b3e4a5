"""Prodigy (Mishchenko & Defazio 2024), learning-rate-free Adam, from the authors' prodigyopt.

Used with the external schedule (the authors recommend cosine over the whole run) and safeguard_warmup=True,
since the schedule warms up."""

from __future__ import annotations

from prodigyopt import Prodigy

from optimizers.spec import OptimizerSpec, decay_groups


def build(params, roles, hp, ctx):
    return Prodigy(
        decay_groups(params, roles, hp),
        lr=hp["lr"],
        betas=tuple(hp["betas"]),
        eps=hp["eps"],
        d0=hp["d0"],
        d_coef=hp["d_coef"],
        decouple=True,
        use_bias_correction=hp["use_bias_correction"],
        safeguard_warmup=hp["safeguard_warmup"],
    )


SPEC = OptimizerSpec(
    name="prodigy",
    build=build,
    packages=("torch", "prodigyopt"),
)
