"""SOAP (Vyas et al. 2024): Adam in the eigenbasis of Shampoo's preconditioner, pytorch-optimizer's SOAP.

The reference repository is not on PyPI; pytorch-optimizer's port keeps the reference defaults (heavyball's
SOAP uses different ones). Every parameter goes to SOAP, as in the reference; dimensions above
max_precondition_dim (the vocabulary) and 1-D parameters are not preconditioned."""

from __future__ import annotations

import pytorch_optimizer

from optimizers.spec import OptimizerSpec, decay_groups


def build(params, roles, hp, ctx):
    return pytorch_optimizer.SOAP(
        decay_groups(params, roles, hp),
        lr=hp["lr"],
        betas=tuple(hp["betas"]),
        eps=hp["eps"],
        precondition_frequency=hp["precondition_frequency"],
        max_precondition_dim=hp["max_precondition_dim"],
        merge_dims=hp["merge_dims"],
        precondition_1d=hp["precondition_1d"],
        normalize_gradient=hp["normalize_gradient"],
        correct_bias=hp["correct_bias"],
    )


SPEC = OptimizerSpec(
    name="soap",
    build=build,
    packages=("torch", "pytorch_optimizer"),
)
