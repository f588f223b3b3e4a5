"""PSGD Kron (Li 2018; Kronecker-factored preconditioner, the kron_torch defaults), pytorch-optimizer's Kron.

Its preconditioner einsum needs opt_einsum installed (a dependency): torch then contracts in an optimal order,
instead of materialising a (rows^2 x cols^2) intermediate."""

from __future__ import annotations

import pytorch_optimizer

from optimizers.spec import OptimizerSpec, decay_groups


def build(params, roles, hp, ctx):
    return pytorch_optimizer.Kron(
        decay_groups(params, roles, hp),
        lr=hp["lr"],
        momentum=hp["momentum"],
        max_size_triangular=hp["max_size_triangular"],
        min_ndim_triangular=hp["min_ndim_triangular"],
        memory_save_mode=hp["memory_save_mode"],
        momentum_into_precondition_update=hp["momentum_into_precondition_update"],
        balance_prob=hp["balance_prob"],
    )


SPEC = OptimizerSpec(
    name="kron",
    build=build,
    packages=("torch", "pytorch_optimizer", "opt_einsum"),
)
