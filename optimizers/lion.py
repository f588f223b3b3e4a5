"""Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms") from lion-pytorch."""

from __future__ import annotations

from lion_pytorch import Lion

from optimizers.spec import OptimizerSpec, decay_groups


def build(params, roles, hp, ctx):
    # decoupled_weight_decay=False is the paper's update: p <- p - lr * (sign(...) + wd * p)
    return Lion(decay_groups(params, roles, hp), lr=hp["lr"], betas=tuple(hp["betas"]))


SPEC = OptimizerSpec(
    name="lion",
    build=build,
    packages=("torch", "lion-pytorch"),
)
