"""Mechanic (Cutkosky, Defazio & Mehta 2023) wrapping torch.optim.AdamW, from the authors' mechanic-pytorch.

Mechanic learns the scale of the base optimizer's updates, so the base lr (with its schedule) only sets the
shape; the paper's experiments used the JAX version in optax, this is the authors' PyTorch port. The package
keys its per-parameter reference points by the Parameter objects themselves, so its state_dict cannot be loaded
into a new model; the subclass below keys them by position instead and changes nothing else."""

from __future__ import annotations

import torch
from mechanic_pytorch import mechanize

from optimizers.spec import OptimizerSpec, decay_groups

MECHANIC_KEY = "_mechanic"  # where mechanic-pytorch keeps its state inside optimizer.state


def mechanic_adamw(s_decay: float, s_init: float) -> type:
    base = mechanize(torch.optim.AdamW, s_decay=s_decay, s_init=s_init)

    class MechanicAdamW(base):
        def _params(self) -> list:
            return [p for group in self.param_groups for p in group["params"]]

        def state_dict(self) -> dict:
            state = super().state_dict()
            if MECHANIC_KEY in state["state"]:
                index = {id(p): i for i, p in enumerate(self._params())}
                mech = state["state"][MECHANIC_KEY]
                state["state"][MECHANIC_KEY] = {
                    (f"param{index[id(k)]}" if isinstance(k, torch.Tensor) else k): v for k, v in mech.items()
                }
            return state

        def load_state_dict(self, state_dict: dict) -> None:
            super().load_state_dict(state_dict)
            if MECHANIC_KEY in self.state:
                params = self._params()
                mech = self.state[MECHANIC_KEY]
                self.state[MECHANIC_KEY] = {
                    (params[int(k[5:])] if isinstance(k, str) and k.startswith("param") else k): v
                    for k, v in mech.items()
                }

    return MechanicAdamW


def build(params, roles, hp, ctx):
    optimizer_class = mechanic_adamw(hp["s_decay"], hp["s_init"])
    return optimizer_class(decay_groups(params, roles, hp), lr=hp["lr"], betas=tuple(hp["betas"]), eps=hp["eps"])


SPEC = OptimizerSpec(
    name="mechanic",
    build=build,
    packages=("torch", "mechanic-pytorch"),
)
