"""Optimizers and schedules: one spec per optimizer, chosen by name. Knows workloads only by parameter roles.

A spec's module (and its package) is imported when the spec is first asked for, so a process pays only for the
optimizer it runs, and tools that only read configs (the sweep driver) import no torch at all."""

from __future__ import annotations

import importlib
from pathlib import Path

YAMLS = Path(__file__).resolve().parent.parent / "conf" / "optimizer"
# The optimizers are the YAMLs: conf/optimizer/<name>.yaml declares one (its authors' defaults with their sources, and
# its search space), optimizers/<name>.py builds it (its SPEC). Nothing else lists them.
NAMES = tuple(sorted(p.stem for p in YAMLS.glob("*.yaml")))


def get_spec(name: str):
    """The OptimizerSpec of `name` (its module is imported on first use)."""
    if name not in NAMES:
        raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(sorted(NAMES))}")
    return importlib.import_module(f"optimizers.{name}").SPEC


__all__ = ["NAMES", "YAMLS", "get_spec"]
