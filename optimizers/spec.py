"""The optimizer spec: how one optimizer is built from role-tagged parameters, what it accepts, and what the
harness must do for it (schedule or not, train/eval modes, averaged weights for evaluation, Hessian steps)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from workloads.base import ParamRole

NamedParams = Mapping[str, nn.Parameter]
Roles = Mapping[str, ParamRole]


@dataclass(frozen=True)
class BuildContext:
    """What a builder may need beyond parameters and hyperparameters."""

    total_steps: int
    warmup_steps: int
    model_facts: Mapping[str, Any] = field(default_factory=dict)  # e.g. d_model, n_head for Adam-mini
    batch_norm: bool = False  # the model has batch-norm layers (DoG's authors set reps_rel differently then)


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
    """One optimizer. Its hyperparameters, their defaults and sources live in conf/optimizer/<name>.yaml (the one
    declaration; optimizers/hparams.py checks values against it); the spec says how to build it (its builder also
    splits parameters by role into groups) and which harness hooks it needs."""

    name: str
    build: Builder
    packages: tuple[str, ...] = ("torch",)  # distributions whose versions go into every run record
    external_schedule: bool = True  # False: the optimizer schedules itself (Schedule-Free, DoG); lr stays at peak
    train_eval_modes: bool = False  # optimizer.train()/.eval() around evaluation and checkpoints (Schedule-Free)
    averager: Callable[[nn.Module], Averager] | None = None  # evaluate averaged weights (DoG)
    hessian_step: Callable[[Any], bool] | None = None  # does this step's backward need create_graph (SophiaH)?
    # bytes of state that grow beyond a few buffers per parameter (M-FAC's window), from (hp, parameters, steps):
    # a trial whose state cannot fit on its device is refused before it starts
    state_bytes: Callable[[Mapping, int, int], int] | None = None


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
