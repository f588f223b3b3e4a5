"""Workloads: models, data and metrics. Knows nothing about optimizers or launching.

The names below are imported on first use, so that `workloads.files` (the atomic writer, torch-free) can be
imported by the analysis without loading torch."""

from __future__ import annotations

import importlib
from typing import Any

EXPORTS = {
    "Metric": "workloads.base",
    "ParamRole": "workloads.base",
    "Workload": "workloads.base",
    "FAMILIES": "workloads.families",
    "build_workload": "workloads.families",
}


def __getattr__(name: str) -> Any:
    if name not in EXPORTS:
        raise AttributeError(f"module 'workloads' has no attribute {name!r}")
    return getattr(importlib.import_module(EXPORTS[name]), name)


__all__ = sorted(EXPORTS)
