"""Optimizers and schedules: one spec per optimizer, chosen by name. Knows workloads only by parameter roles."""

from __future__ import annotations

from optimizers import (
    adam_mini,
    adamw,
    ademamix,
    adopt,
    dadapt_adam,
    dog,
    kron,
    lion,
    mars,
    mechanic,
    muon,
    nadamw,
    prodigy,
    scion,
    sf_adamw,
    sgd,
    soap,
    sophia,
)
from optimizers.spec import BuildContext, OptimizerSpec, hyperparameters

MODULES = (
    adamw,
    nadamw,
    sgd,
    muon,
    soap,
    lion,
    adopt,
    ademamix,
    mars,
    kron,
    adam_mini,
    scion,
    sophia,
    sf_adamw,
    prodigy,
    dadapt_adam,
    dog,
    mechanic,
)
REGISTRY: dict[str, OptimizerSpec] = {m.SPEC.name: m.SPEC for m in MODULES}


def get_spec(name: str) -> OptimizerSpec:
    if name not in REGISTRY:
        raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


__all__ = ["REGISTRY", "BuildContext", "OptimizerSpec", "get_spec", "hyperparameters"]
