"""The optimizer spec: how one optimizer is built from role-tagged parameters, and what it accepts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from workloads.base import ParamRole

NamedParams = Mapping[str, nn.Parameter]
Roles = Mapping[str, ParamRole]
Builder = Callable[[NamedParams, Roles, Mapping], torch.optim.Optimizer]


@dataclass(frozen=True)
class OptimizerSpec:
    """One optimizer: its builder (which also splits parameters by role into groups), the hyperparameter
    keys its YAML may set (defaults and their sources live in conf/optimizer/<name>.yaml), and the
    distributions whose versions go into every run record."""

    name: str
    build: Builder
    hparams: frozenset[str]
    packages: tuple[str, ...] = ("torch",)

    def validate(self, hp: Mapping) -> None:
        """Refuse unknown keys and out-of-range values with a message naming the key and the optimizer."""
        for key in hp:
            if key not in self.hparams:
                raise ValueError(
                    f"optimizer {self.name}: unknown hyperparameter {key!r}; valid: {', '.join(sorted(self.hparams))}"
                )
        for key, value in hp.items():
            if (key == "lr" or key.endswith("_lr")) and not value > 0:
                raise ValueError(f"optimizer {self.name}: {key} must be positive, got {value}")
            if key in ("eps", "weight_decay") and not value >= 0:
                raise ValueError(f"optimizer {self.name}: {key} must be non-negative, got {value}")
            if key == "betas" and not all(0 <= b < 1 for b in value):
                raise ValueError(f"optimizer {self.name}: every beta must lie in [0, 1), got {list(value)}")


def split_by_roles(params: NamedParams, roles: Roles, selected: set[ParamRole]) -> tuple[list, list]:
    """Parameters whose role is in `selected`, and the rest (each list keeps the model's order)."""
    inside = [p for name, p in params.items() if roles[name] in selected]
    outside = [p for name, p in params.items() if roles[name] not in selected]
    return inside, outside
