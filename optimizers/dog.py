"""DoG (Ivgi et al. 2023, "DoG is SGD's Best Friend") from the authors' dog-optimizer, with its
PolynomialDecayAverager: the harness evaluates the averaged weights. DoG is its own step-size schedule, so no
external schedule applies (the authors use none). Its first step's size is reps_rel times the parameters' norm:
the authors' 1e-6, and 1e-4 for models with batch normalisation, as they advise."""

from __future__ import annotations

import dog
from torch import nn

from optimizers.spec import OptimizerSpec, decay_groups

AVERAGER_GAMMA = 8.0  # the authors' default


def build(params, roles, hp, ctx):
    reps_rel = {True: hp["reps_rel_batch_norm"], False: hp["reps_rel"]}[ctx.batch_norm]  # (both declared, one used)
    return dog.DoG(decay_groups(params, roles, hp), lr=hp["lr"], reps_rel=reps_rel, eps=hp["eps"])


class Averager(dog.PolynomialDecayAverager):
    """The authors' averager plus the state_dict round trip that checkpoints need."""

    def state_dict(self) -> dict:
        return {"t": self.t, "model": self.av_model.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.t = state["t"]
        self.av_model.load_state_dict(state["model"])


def averager(model: nn.Module) -> Averager:
    return Averager(model, gamma=AVERAGER_GAMMA)


SPEC = OptimizerSpec(
    name="dog",
    build=build,
    packages=("torch", "dog-optimizer"),
    external_schedule=False,
    averager=averager,
)
