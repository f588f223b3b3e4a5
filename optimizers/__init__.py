"""Optimizers and schedules: one spec per optimizer, chosen by name. Knows workloads only by parameter roles.

A spec's module (and its package) is imported when the spec is first asked for, so a process pays only for the
optimizer it runs, and tools that only read configs (the sweep driver) import no torch at all."""

from __future__ import annotations

import importlib
from collections.abc import Mapping

NAMES = (  # one module optimizers/<name>.py each, with its SPEC
    "adamw",
    "nadamw",
    "sgd",
    "muon",
    "soap",
    "lion",
    "adopt",
    "ademamix",
    "mars",
    "kron",
    "adam_mini",
    "scion",
    "sophia",
    "sf_adamw",
    "prodigy",
    "dadapt_adam",
    "dog",
    "mechanic",
)
SCALES = ("log", "linear")


def get_spec(name: str):
    """The OptimizerSpec of `name` (its module is imported on first use)."""
    if name not in NAMES:
        raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(sorted(NAMES))}")
    return importlib.import_module(f"optimizers.{name}").SPEC


def hyperparameters(optimizer_cfg: Mapping) -> dict:
    """The hyperparameters of an optimizer config: everything but its name and its tuning search space."""
    return {k: v for k, v in optimizer_cfg.items() if k not in ("name", "search_space")}


def validate_search_space(name: str, space: Mapping, accepted: set[str]) -> None:
    """Each entry names a hyperparameter (or `name.i`, element i of a list such as betas) and a range
    {low, high, scale} with low < high, scale log or linear, and log ranges strictly positive."""
    for key, dim in space.items():
        where = f"optimizer {name}: search_space.{key}"
        if key.split(".")[0] not in accepted:
            raise ValueError(f"{where} is not a hyperparameter of {name}")
        if set(dim) != {"low", "high", "scale"} or dim["scale"] not in SCALES:
            raise ValueError(f"{where} must be {{low, high, scale}} with scale one of {', '.join(SCALES)}")
        if not dim["low"] < dim["high"]:
            raise ValueError(f"{where}: low {dim['low']} must be below high {dim['high']}")
        if dim["scale"] == "log" and not dim["low"] > 0:
            raise ValueError(f"{where}: a log scale needs positive values, got low {dim['low']}")


__all__ = ["NAMES", "get_spec", "hyperparameters", "validate_search_space"]
