"""Optimizers and schedules: one spec per optimizer, chosen by name. Knows workloads only by parameter roles.

A spec's module (and its package) is imported when the spec is first asked for, so a process pays only for the
optimizer it runs, and tools that only read configs (the sweep driver) import no torch at all."""

from __future__ import annotations

import importlib

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


def get_spec(name: str):
    """The OptimizerSpec of `name` (its module is imported on first use)."""
    if name not in NAMES:
        raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(sorted(NAMES))}")
    return importlib.import_module(f"optimizers.{name}").SPEC


__all__ = ["NAMES", "get_spec"]
