"""SGD with Nesterov momentum (torch.optim.SGD), the classic baseline AlgoPerf used to set targets."""

from __future__ import annotations

import torch

from optimizers.spec import OptimizerSpec, decay_groups


def build(params, roles, hp, ctx) -> torch.optim.Optimizer:
    return torch.optim.SGD(decay_groups(params, roles, hp), lr=hp["lr"], momentum=hp["momentum"], nesterov=True)


SPEC = OptimizerSpec(name="sgd", build=build)
