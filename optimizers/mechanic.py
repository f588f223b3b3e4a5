"""Mechanic (Cutkosky, Defazio & Mehta 2023) wrapping torch.optim.AdamW, from the authors' mechanic-pytorch.

Mechanic learns the scale of the base optimizer's updates, so the base lr (with its schedule) only sets the
shape; the paper's experiments used the JAX version in optax, this is the authors' PyTorch port."""

from __future__ import annotations

import torch
from mechanic_pytorch import mechanize

from optimizers.spec import OptimizerSpec, decay_groups


def build(params, roles, hp, ctx):
    base = mechanize(torch.optim.AdamW, s_decay=hp["s_decay"], s_init=hp["s_init"])
    return base(decay_groups(params, roles, hp), lr=hp["lr"], betas=tuple(hp["betas"]), eps=hp["eps"])


SPEC = OptimizerSpec(
    name="mechanic",
    build=build,
    hparams=frozenset({"lr", "betas", "eps", "weight_decay", "s_decay", "s_init", "no_decay_roles"}),
    packages=("torch", "mechanic-pytorch"),
)
