"""The optimizer spec: how one optimizer is built from role-tagged parameters, what it accepts, and what the
harness must do for it (schedule or not, train/eval modes, averaged weights for evaluation, Hessian steps)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from optimizers import validate_search_space
from workloads.base import ParamRole

NamedParams = Mapping[str, nn.Parameter]
Roles = Mapping[str, ParamRole]


@dataclass(frozen=True)
class BuildContext:
    """What a builder may need beyond parameters and hyperparameters."""

    total_steps: int
    warmup_steps: int
    model_facts: Mapping[str, Any] = field(default_factory=dict)  # e.g. d_model, n_head for Adam-mini


Builder = Callable[[NamedParams, Roles, Mapping, BuildContext], Any]


class Averager(Protocol):
    """Weights averaged over training, evaluated instead of the raw iterate (DoG's polynomial-decay averager)."""

    def step(self) -> None: ...

    @property
    def averaged_model(self) -> nn.Module: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


@dataclass(frozen=True)
class OptimizerSpec:
    """One optimizer. Defaults and their sources live in conf/optimizer/<name>.yaml; the spec says how to build
    it (its builder also splits parameters by role into groups) and which harness hooks it needs."""

    name: str
    build: Builder
    hparams: frozenset[str]
    packages: tuple[str, ...] = ("torch",)  # distributions whose versions go into every run record
    external_schedule: bool = True  # False: the optimizer schedules itself (Schedule-Free, DoG); lr stays at peak
    train_eval_modes: bool = False  # optimizer.train()/.eval() around evaluation and checkpoints (Schedule-Free)
    averager: Callable[[nn.Module], Averager] | None = None  # evaluate averaged weights (DoG)
    hessian_step: Callable[[Any], bool] | None = None  # does this step's backward need create_graph (SophiaH)?
    choices: Mapping[str, tuple] = field(default_factory=dict)  # the values a categorical hyperparameter may take

    def validate(self, hp: Mapping) -> None:
        """Refuse unknown keys and out-of-range values with a message naming the key and the optimizer."""
        for key in hp:
            if key not in self.hparams:
                raise ValueError(
                    f"optimizer {self.name}: unknown hyperparameter {key!r}; valid: {', '.join(sorted(self.hparams))}"
                )
        for key, value in hp.items():
            kind = key.rsplit("_", 1)[-1] if key.rsplit("_", 1)[-1] in ("lr", "betas", "eps") else key
            if kind == "lr" and not value > 0:
                raise ValueError(f"optimizer {self.name}: {key} must be positive, got {value}")
            if (kind == "eps" or key.endswith("weight_decay")) and not value >= 0:
                raise ValueError(f"optimizer {self.name}: {key} must be non-negative, got {value}")
            if kind == "betas" and not all(0 <= b < 1 for b in value):
                raise ValueError(f"optimizer {self.name}: every value of {key} must lie in [0, 1), got {list(value)}")
            if key == "momentum" and not 0 <= value < 1:
                raise ValueError(f"optimizer {self.name}: momentum must lie in [0, 1), got {value}")
            if key in self.choices and value not in self.choices[key]:
                valid = ", ".join(self.choices[key])
                raise ValueError(f"optimizer {self.name}: {key} must be one of {valid}, got {value!r}")

    def validate_search_space(self, space: Mapping) -> None:
        validate_search_space(self.name, space, set(self.hparams))


def split_by_roles(params: NamedParams, roles: Roles, selected: set[ParamRole]) -> tuple[list, list]:
    """Parameters whose role is in `selected`, and the rest (each list keeps the model's order)."""
    inside = [p for name, p in params.items() if roles[name] in selected]
    outside = [p for name, p in params.items() if roles[name] not in selected]
    return inside, outside


def decay_groups(params: NamedParams, roles: Roles, hp: Mapping, weight_decay_key: str = "weight_decay") -> list:
    """Two groups: roles in hp['no_decay_roles'] with weight decay 0, the others with hp[weight_decay_key]."""
    no_decay, decay = split_by_roles(params, roles, {ParamRole(r) for r in hp["no_decay_roles"]})
    groups = [{"params": decay, "weight_decay": hp[weight_decay_key]}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def on_cuda(params: NamedParams) -> bool:
    return next(iter(params.values())).is_cuda


class ChainedOptimizer:
    """Optimizers over disjoint parameter sets stepped as one (a matrix optimizer and its AdamW companion).

    Exposes the union of their param_groups (the same dicts), so the harness's schedule reaches every group."""

    def __init__(self, *optimizers: torch.optim.Optimizer):
        self.optimizers = optimizers

    @property
    def param_groups(self) -> list[dict]:
        # looked up each time: load_state_dict replaces an optimizer's group dicts
        return [g for opt in self.optimizers for g in opt.param_groups]

    def step(self) -> None:
        for opt in self.optimizers:
            opt.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return {"optimizers": [opt.state_dict() for opt in self.optimizers]}

    def load_state_dict(self, state: dict) -> None:
        for opt, sub in zip(self.optimizers, state["optimizers"], strict=True):
            opt.load_state_dict(sub)
