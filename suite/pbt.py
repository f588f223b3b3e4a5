"""Population Based Training (Jaderberg et al. 2017, 'Population Based Training of Neural Networks') as pure
functions: after each interval the bottom quarter of the population copies a top-quarter member (exploit) and
perturbs its searched hyperparameters, each ×0.8 or ×1.25 or, with probability `resample`, drawn afresh from the
search space (explore). suite/study.py keeps the population's state and launches its members' trials."""

from __future__ import annotations

import math

import numpy as np

from suite.protocols import Config
from suite.search_space import Dim

FACTORS = (0.8, 1.25)


def boundaries(interval: float) -> list[float]:
    """The fractions of the budget where the population is compared: interval, 2 interval, ... below 1."""
    count = math.ceil(round(1 / interval, 9)) - 1
    return [round(interval * k, 9) for k in range(1, count + 1)]


def check(tuning: dict, space: list[Dim]) -> None:
    """PBT's relations to the search space and the seeds (each setting's value is declared in suite/settings.py)."""
    if not space:
        raise ValueError("tuning=pbt has nothing to perturb: the optimizer's search space is empty")
    if tuning["seeds"] != 1:
        raise ValueError(
            "tuning=pbt selects and scores on seed 0 (a member's history of hyperparameters is not rerun on other "
            f"seeds): tuning.seeds must be 1, got {tuning['seeds']}"
        )


def perturb(config: Config, space: list[Dim], rng: np.random.Generator, resample: float) -> Config:
    """Each searched value ×0.8 or ×1.25 (kept inside its search range), or with probability `resample` a fresh
    draw from the range on its scale."""
    found = {}
    for d in space:
        if rng.random() < resample:
            found[d.key] = d.value(rng.random())
        else:
            value = min(max(config[d.key] * FACTORS[rng.integers(2)], d.low), d.high)
            found[d.key] = float(f"{value:.6g}")
    return found


def exploit(losses: list[float], rng: np.random.Generator) -> dict[int, int]:
    """Member index -> the top-quarter member it copies, for each member of the bottom quarter by current loss
    (lower is better; a diverged member's inf is last; ties by index)."""
    order = sorted(range(len(losses)), key=lambda i: (losses[i], i))
    quarter = max(1, len(losses) // 4)
    top, bottom = order[:quarter], order[-quarter:]
    return {loser: int(top[rng.integers(len(top))]) for loser in bottom}
