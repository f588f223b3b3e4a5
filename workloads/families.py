"""The workload families: the class each `family` of conf/workload/<name>.yaml builds."""

from __future__ import annotations

from workloads.base import Workload
from workloads.lm.workload import LanguageModel
from workloads.quadratic import Quadratic
from workloads.vision.workload import ImageClassification

FAMILIES: dict[str, type[Workload]] = {"lm": LanguageModel, "quadratic": Quadratic, "vision": ImageClassification}


def build_workload(cfg: dict) -> Workload:
    """Build the workload described by a resolved `workload` config (its `family` picks the class)."""
    if cfg["family"] not in FAMILIES:
        raise ValueError(f"unknown workload family {cfg['family']!r}; valid: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[cfg["family"]](cfg)
