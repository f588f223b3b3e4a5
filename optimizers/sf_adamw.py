"""Schedule-Free AdamW (Defazio et al. 2024, "The Road Less Scheduled") from the authors' schedulefree package.

No external schedule: warmup happens inside the optimizer (the harness passes the schedule's warmup steps),
and the harness switches optimizer.train()/.eval() with the model around evaluation and checkpoints."""

from __future__ import annotations

import schedulefree

from optimizers.spec import OptimizerSpec, decay_groups


def build(params, roles, hp, ctx):
    return schedulefree.AdamWScheduleFree(
        decay_groups(params, roles, hp),
        lr=hp["lr"],
        betas=tuple(hp["betas"]),
        eps=hp["eps"],
        warmup_steps=ctx.warmup_steps,
        r=hp["r"],
        weight_lr_power=hp["weight_lr_power"],
    )


SPEC = OptimizerSpec(
    name="sf_adamw",
    build=build,
    packages=("torch", "schedulefree"),
    external_schedule=False,
    train_eval_modes=True,
)
