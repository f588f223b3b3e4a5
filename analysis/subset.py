"""Representative subsets of tasks (carps, Benjamins et al. 2025): embed each task by the normalised final
performance of reference optimizers, pick k tasks whose embedded points have the lowest star discrepancy, and
check that the subset ranks optimizers as the full set does."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import kendalltau
from scipy.stats.qmc import discrepancy

from analysis.speedup import check_columns

REQUIRED = ("optimizer", "workload", "final_metric")


def task_matrix(df: pd.DataFrame) -> pd.DataFrame:
    """Task x optimizer table of final loss normalised per task to [0, 1] (0 = best, 1 = worst); a task is a
    workload, or a workload at a budget when the table has `budget_tokens`."""
    check_columns(df, REQUIRED)
    task = df.workload.astype(str) + ("@" + df.budget_tokens.astype(str) if "budget_tokens" in df.columns else "")
    table = df.assign(task=task).pivot_table(index="task", columns="optimizer", values="final_metric", aggfunc="median")
    if table.isna().any().any():
        raise ValueError(
            "every optimizer needs a result on every task (missing: "
            f"{', '.join(map(str, table[table.isna().any(axis=1)].index[:5]))})"
        )
    low, high = table.min(axis=1), table.max(axis=1)
    return table.sub(low, axis=0).div((high - low).replace(0, 1), axis=0)


def ranking(matrix: pd.DataFrame) -> pd.Series:
    """Mean normalised result per optimizer over the tasks (lower is better)."""
    return matrix.mean(axis=0)


def choose_references(matrix: pd.DataFrame, n: int = 3) -> list[str]:
    """Optimizers that behave differently: greedily the one farthest (in task space) from those chosen so far,
    starting from the best-ranked."""
    chosen = [ranking(matrix).idxmin()]
    while len(chosen) < min(n, matrix.shape[1]):
        distance = {o: min(np.linalg.norm(matrix[o] - matrix[c]) for c in chosen) for o in matrix if o not in chosen}
        chosen.append(max(distance, key=distance.get))
    return chosen


def min_discrepancy_subset(points: np.ndarray, k: int, candidates: list[int], restarts: int, seed: int) -> list[int]:
    """k of the candidate rows with the lowest L2-star discrepancy: swap local search from random starts."""
    rng = np.random.default_rng(seed)
    best, best_value = None, np.inf
    for _ in range(restarts):
        current = list(rng.choice(candidates, size=k, replace=False))
        value = discrepancy(points[current], method="L2-star")
        improved = True
        while improved:
            improved = False
            for i in range(k):
                for j in candidates:
                    if j in current:
                        continue
                    trial = current[:i] + [j] + current[i + 1 :]
                    trial_value = discrepancy(points[trial], method="L2-star")
                    if trial_value < value - 1e-15:
                        current, value, improved = trial, trial_value, True
        if value < best_value:
            best, best_value = sorted(current), value
    return best


@dataclass(frozen=True)
class Subset:
    k: int
    tasks: list[str]
    second: list[str]
    references: list[str]
    reproduces: bool  # both sets rank the reference optimizers as the full set does
    validation_tau: float  # Kendall's tau of the other optimizers' ranking, subset vs full set


def select(
    df: pd.DataFrame, k: int | None, references: list[str] | None = None, restarts: int = 10, seed: int = 0
) -> Subset:
    """A subset of k tasks (k=None: the smallest k whose two disjoint sets both reproduce the full ranking)."""
    matrix = task_matrix(df)
    references = references or choose_references(matrix)
    unknown = [r for r in references if r not in matrix.columns]
    if unknown:
        raise ValueError(f"reference optimizer(s) {', '.join(unknown)} not in the table")
    points = np.clip(matrix[references].to_numpy(), 0.0, 1.0)
    n = len(matrix)
    full = ranking(matrix)
    others = [o for o in matrix.columns if o not in references]

    def same_order(rows: list[int], names: list[str]) -> bool:
        return list(ranking(matrix.iloc[rows])[names].sort_values().index) == list(full[names].sort_values().index)

    sizes = [k] if k is not None else range(1, n // 2 + 1)
    for size in sizes:
        if not 1 <= size <= n // 2:
            raise ValueError(f"k={size} must lie between 1 and half the {n} tasks (two disjoint sets are chosen)")
        first = min_discrepancy_subset(points, size, list(range(n)), restarts, seed)
        second = min_discrepancy_subset(points, size, [i for i in range(n) if i not in first], restarts, seed + 1)
        reproduces = same_order(first, references) and same_order(second, references)
        if reproduces or k is not None or size == n // 2:
            break
    tau = kendalltau(ranking(matrix.iloc[first])[others], full[others]).statistic if len(others) > 1 else np.nan
    return Subset(size, list(matrix.index[first]), list(matrix.index[second]), references, reproduces, float(tau))
