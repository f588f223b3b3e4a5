"""Tuning protocols as pure functions of a search space: which configurations to try next, given the results so
far. `default` (the authors' defaults), `random` (scrambled quasi-random points), `grid` (a Cartesian grid) and
`coordinate_descent` ('Fantastic Pretraining Optimizers': from the defaults, change one hyperparameter at a time
over its grid, move to the best, repeat until no single change helps)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import qmc

Config = dict[str, float]  # search-space key (`lr`, `betas.1`) -> value


@dataclass(frozen=True)
class Dim:
    key: str
    low: float
    high: float
    log: bool

    def value(self, u: float) -> float:
        """The point at fraction u of the range (on a log scale for log dimensions), to 6 significant digits."""
        if self.log:
            v = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        else:
            v = self.low + u * (self.high - self.low)
        return float(f"{v:.6g}")

    def grid(self, points: int) -> list[float]:
        return [self.value(u) for u in np.linspace(0.0, 1.0, points)]


def dims(search_space: dict) -> list[Dim]:
    """The search space (already validated by the optimizer's spec), in a fixed order."""
    return [Dim(k, float(d["low"]), float(d["high"]), d["scale"] == "log") for k, d in sorted(search_space.items())]


def random_configs(space: list[Dim], n: int, seed: int, sampler: str = "halton") -> list[Config]:
    """n scrambled Halton (or Sobol) points, seeded: the same n points for every optimizer with the same space."""
    engines = {"halton": qmc.Halton, "sobol": qmc.Sobol}
    if sampler not in engines:
        raise ValueError(f"tuning.sampler must be one of {', '.join(engines)}, got {sampler!r}")
    units = engines[sampler](d=len(space), scramble=True, seed=seed).random(n)
    return [{d.key: d.value(u) for d, u in zip(space, row, strict=True)} for row in units]


def grid_configs(space: list[Dim], points: int) -> list[Config]:
    names = [d.key for d in space]
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*(d.grid(points) for d in space))]


def neighbours(best: Config, space: list[Dim], points: int) -> list[Config]:
    """Every configuration that differs from `best` in exactly one hyperparameter, set to one of its grid values."""
    return [{**best, d.key: v} for d in space for v in d.grid(points) if v != best[d.key]]


def key(config: Config) -> tuple:
    return tuple(sorted(config.items()))


def coordinate_descent_next(start: Config, results: dict[tuple, float], space: list[Dim], points: int) -> list[Config]:
    """The next batch: the start alone, then all untried one-change neighbours of the best configuration so far;
    empty when every neighbour of the best has been tried (no single change helps)."""
    if key(start) not in results:
        return [start]
    best = min(results, key=lambda k: (results[k], k))
    return [c for c in neighbours(dict(best), space, points) if key(c) not in results]


def search_batch(
    protocol: str, start: Config, results: dict[tuple, float], space: list[Dim], settings: dict
) -> list[Config]:
    """The configurations of the search phase still to run, given the scores (lower is better) so far."""
    fixed: dict[str, Callable[[], list[Config]]] = {
        "default": lambda: [start],
        "random": lambda: random_configs(space, settings["trials"], settings["seed"], settings["sampler"]),
        "grid": lambda: grid_configs(space, settings["grid_points"]),
    }
    if protocol not in (*fixed, "coordinate_descent"):
        raise ValueError(f"unknown protocol {protocol!r}; valid: {', '.join([*fixed, 'coordinate_descent'])}")
    if not space:  # nothing to tune: the defaults are the only configuration
        protocol = "default"
    if protocol == "coordinate_descent":
        return coordinate_descent_next(start, results, space, settings["grid_points"])
    return [c for c in fixed[protocol]() if key(c) not in results]
