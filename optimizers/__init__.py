"""Optimizers and schedules: one spec per optimizer, chosen by name. Knows workloads only by parameter roles."""

from __future__ import annotations

from optimizers import adamw
from optimizers.spec import OptimizerSpec

REGISTRY: dict[str, OptimizerSpec] = {spec.name: spec for spec in (adamw.SPEC,)}


def get_spec(name: str) -> OptimizerSpec:
    if name not in REGISTRY:
        raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


__all__ = ["REGISTRY", "OptimizerSpec", "get_spec"]
