"""AdEMAMix (Pagliardini et al. 2024): Adam with a second, slow EMA of gradients; pytorch-optimizer's AdEMAMix.

The alpha and beta3 warmups span the whole run, as the paper recommends: the harness passes the step budget."""

from __future__ import annotations

import pytorch_optimizer

from optimizers.spec import OptimizerSpec, decay_groups


def build(params, roles, hp, ctx):
    return pytorch_optimizer.AdEMAMix(
        decay_groups(params, roles, hp),
        lr=hp["lr"],
        betas=tuple(hp["betas"]),
        eps=hp["eps"],
        alpha=hp["alpha"],
        t_alpha_beta3=ctx.total_steps,
        weight_decouple=True,
    )


SPEC = OptimizerSpec(
    name="ademamix",
    build=build,
    packages=("torch", "pytorch_optimizer"),
)
