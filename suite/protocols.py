"""Tuning protocols as pure planners: which configurations to try next, given the results so far (no files, no
processes: suite/study.py keeps a study's state, suite/sweep.py runs it). `default` (the authors' defaults),
`random` (scrambled quasi-random points), `grid` (a Cartesian grid) and `coordinate_descent` ('Fantastic
Pretraining Optimizers': from the defaults, change one hyperparameter at a time over its grid, move to the best,
repeat until no single change helps), `step_law` (one configuration predicted by the Step Law) and `transfer`
(one predicted from tuned studies at other scales, with checks around it). Early stopping (suite/early_stop.py)
and Population Based Training (suite/pbt.py) decide on partial curves and keep state between rounds; the study
runs them."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Callable

import numpy as np

from suite.schema import SEARCH_SEED, best_of, scoring_seeds
from suite.search_space import Dim
from suite.transfer import checks

Config = dict[str, float]  # search-space key (`lr`, `betas.1`) -> value


def random_configs(space: list[Dim], n: int, seed: int, sampler: str = "halton") -> list[Config]:
    """n scrambled Halton (or Sobol) points, seeded: the same n points for every optimizer with the same space."""
    from scipy.stats import qmc  # (here, not at the top: the sweep driver starts its slot workers before it plans)

    engines = {"halton": qmc.Halton, "sobol": qmc.Sobol}
    if sampler not in engines:
        raise ValueError(f"tuning.sampler must be one of {', '.join(engines)}, got {sampler!r}")
    units = engines[sampler](d=len(space), scramble=True, seed=seed).random(n)
    return [{d.key: d.value(u) for d, u in zip(space, row, strict=True)} for row in units]


def grid_configs(space: list[Dim], points: int, seed: int = 0) -> list[Config]:
    """The Cartesian grid, in an order shuffled by `seed`, so that a budget cap (tuning.max_trials) keeps a
    uniform subsample of the grid, not its first rows."""
    names = [d.key for d in space]
    grid = [dict(zip(names, values, strict=True)) for values in itertools.product(*(d.grid(points) for d in space))]
    order = np.random.default_rng(seed).permutation(len(grid))
    return [grid[i] for i in order]


def neighbours(best: Config, space: list[Dim], points: int) -> list[Config]:
    """Every configuration that differs from `best` in exactly one hyperparameter, set to one of its grid values,
    or, where `best` sits at an edge of the range, one grid step past it (Marin's sweeps extend a range so; the
    study records each extension)."""
    found = []
    for d in space:
        further = d.beyond(best[d.key], points)
        for v in d.grid(points) + ([further] if further is not None else []):
            if v != best[d.key]:
                found.append({**best, d.key: v})
    return found


def key(config: Config) -> tuple:
    return tuple(sorted(config.items()))


def trial_name(config: Config) -> str:
    """The name of a configuration's trial file (conf/trial/<name>.yaml in the study directory)."""
    return "t" + hashlib.sha256(json.dumps(sorted(config.items())).encode()).hexdigest()[:10]


# --- the planners: (start, scores so far, space, settings) -> the search configurations to run next ------------
# Scores are lower-is-better, +inf for a diverged or failed configuration; each planner proposes only
# configurations without a score. A new protocol is one more function in PLANNERS.


def plan_default(start: Config, results: dict[tuple, float], space: list[Dim], settings: dict) -> list[Config]:
    return [start]


def plan_random(start: Config, results: dict[tuple, float], space: list[Dim], settings: dict) -> list[Config]:
    return random_configs(space, settings["trials"], settings["seed"], settings["sampler"])


def plan_grid(start: Config, results: dict[tuple, float], space: list[Dim], settings: dict) -> list[Config]:
    return grid_configs(space, settings["grid_points"], settings["seed"])


def plan_coordinate_descent(
    start: Config, results: dict[tuple, float], space: list[Dim], settings: dict
) -> list[Config]:
    """The start alone, then all untried one-change neighbours of the best configuration so far; empty when every
    neighbour of the best has been tried (no single change helps)."""
    if key(start) not in results:
        return [start]
    best, _ = best_of(results)
    return neighbours(dict(best), space, settings["grid_points"])


def plan_transfer(start: Config, results: dict[tuple, float], space: list[Dim], settings: dict) -> list[Config]:
    """The configuration predicted from other scales (the study's start: suite/transfer.py) and `check` others
    around it, its lr x1/2, x2, x1/4, ..., so the local optimum can be told from the prediction."""
    return [start, *checks(start, settings["check"])]


PLANNERS: dict[str, Callable[[Config, dict, list[Dim], dict], list[Config]]] = {
    "default": plan_default,
    "random": plan_random,
    "grid": plan_grid,
    "coordinate_descent": plan_coordinate_descent,
    "step_law": plan_default,  # one configuration: the Step Law's (the study's start: suite/step_law.py)
    "transfer": plan_transfer,
}


def wanted(protocol: str, start: Config, results: dict[tuple, float], space: list[Dim], settings: dict) -> list[Config]:
    """The configurations the protocol asks for next, budget aside (those without a score)."""
    if protocol not in PLANNERS:
        raise ValueError(f"unknown protocol {protocol!r}; valid: {', '.join(PLANNERS)}")
    planner = PLANNERS[protocol] if space else plan_default  # nothing to tune: the defaults are the only configuration
    return [c for c in planner(start, results, space, settings) if key(c) not in results]


def search_batch(
    protocol: str, start: Config, results: dict[tuple, float], space: list[Dim], settings: dict
) -> list[Config]:
    """The configurations of the search phase still to run, given the scores (lower is better) so far, within
    the budget `tuning.max_trials` (search configurations in all; null: no cap): the same cap for every optimizer
    makes grid and coordinate-descent budgets equal, whatever the number of dimensions searched."""
    batch = wanted(protocol, start, results, space, settings)
    cap = settings.get("max_trials")
    return batch if cap is None else batch[: max(0, cap - len(results))]


def next_trials(
    protocol: str, start: Config, space: list[Dim], settings: dict, results: dict[tuple[tuple, int], float | None]
) -> list[tuple[Config, int]]:
    """The (configuration, seed) pairs to run now, given the score of every trial run so far (keyed by
    (configuration key, seed); None for one that never finished): the protocol's next search batch on seed 0, then
    the scoring seeds 1 .. seeds-1 of the best configuration and of the defaults (`start`): the selection is made
    on seed 0 alone, so tuned and default are compared on seeds that played no part in it; empty when the study is
    done, when every configuration failed, or when a trial of the search never finished (no step is decided on
    partial results: a rerun of the command resumes it)."""
    search = {k: score for (k, seed), score in results.items() if seed == SEARCH_SEED}
    if any(score is None for score in search.values()):
        return []
    batch = search_batch(protocol, start, search, space, settings)
    if batch:
        return [(c, SEARCH_SEED) for c in batch]
    best = best_of(search)
    if best is None or not math.isfinite(best[1]):
        return []
    scored = [best[0]] + ([key(start)] if key(start) != best[0] else [])
    return [(dict(k), s) for k in scored for s in scoring_seeds(settings["seeds"]) if (k, s) not in results]
