"""SophiaH (Liu et al. 2023, "Sophia: A Scalable Stochastic Second-order Optimizer"), pytorch-optimizer's SophiaH.

Every `update_period` steps it estimates the Hessian diagonal by Hutchinson's method from the gradients'
graph: the harness runs those steps' backward with create_graph=True."""

from __future__ import annotations

import pytorch_optimizer

from optimizers.spec import OptimizerSpec, decay_groups


def build(params, roles, hp, ctx):
    # The authors decay by their lr times wd, their lr being the largest step a coordinate takes; here steps are
    # clipped at lr * rho and the package decays by lr * wd, so the authors' wd is passed as wd * rho.
    decayed = {**hp, "weight_decay": hp["weight_decay"] * hp["rho"]}
    return pytorch_optimizer.SophiaH(
        decay_groups(params, roles, decayed),
        lr=hp["lr"],
        betas=tuple(hp["betas"]),
        p=hp["rho"],
        update_period=hp["update_period"],
        num_samples=hp["num_samples"],
        eps=hp["eps"],
    )


def hessian_step(optimizer) -> bool:
    """True when the coming step() will estimate the Hessian (pytorch-optimizer: (step - 1) % period == 0)."""
    return optimizer.param_groups[0].get("step", 0) % optimizer.update_period == 0


SPEC = OptimizerSpec(
    name="sophia",
    build=build,
    packages=("torch", "pytorch_optimizer"),
    hessian_step=hessian_step,
)
