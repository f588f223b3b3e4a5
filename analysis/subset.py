"""Representative subsets of tasks (carps, Benjamins et al. 2025): embed each task by the normalised tuned results of
reference optimizers, pick k tasks whose embedded points have the lowest star discrepancy, and validate on the
optimizers held out of the embedding: does the subset rank them as the full set does, and better than random
subsets of the same size?"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import kendalltau
from scipy.stats.qmc import discrepancy

from analysis.tuning import trials_frame, tuned_results

RANDOM_SUBSETS = 200  # random subsets of the same size the chosen one is compared with


def task_matrix(df: pd.DataFrame) -> pd.DataFrame:
    """Task x optimizer table of each optimizer's tuned result (score: lower is better, diverged = +inf); every
    optimizer needs a result on every task."""
    tuned = tuned_results(trials_frame(df))
    # a task as a sweep's subset file names it: `workload`, or `workload@tokens` where it has several budgets
    at_budget = tuned.task != tuned.workload
    tuned["task"] = tuned.workload.where(~at_budget, tuned.workload + "@" + tuned.budget_tokens.map("{:.0f}".format))
    table = tuned.pivot(index="task", columns="optimizer", values="score")
    if table.isna().any().any():
        cells = [(o, t) for t, row in table.iterrows() for o in row.index[row.isna()]]
        optimizers = sorted({o for o, _ in cells})
        workloads = sorted({t.partition("@")[0] for _, t in cells})
        budgets = sorted({t.partition("@")[2] for _, t in cells} - {""}, key=float)
        command = f"python -m suite.sweep optimizer={','.join(optimizers)} workload={','.join(workloads)}"
        command += f" workload.tokens={','.join(budgets)}" if budgets else ""
        raise ValueError(
            f"every optimizer needs a result on every task (missing: {', '.join(f'{o} on {t}' for o, t in cells[:5])}"
            f"{', ...' if len(cells) > 5 else ''}); to run them: `{command}`"
        )
    return table


def normalise(table: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Per task, 0 = the best and 1 = the worst finite result among the optimizers `by`; a diverged result (+inf)
    is the worst of all (the task's maximum normalised value, at least 1)."""
    finite = table.where(np.isfinite(table))
    low, high = finite[by].min(axis=1), finite[by].max(axis=1)
    scaled = finite.sub(low, axis=0).div((high - low).replace(0, 1).fillna(1), axis=0)
    worst = np.maximum(scaled.max(axis=1).fillna(1.0), 1.0)
    return scaled.apply(lambda column: column.fillna(worst))


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


def held_out_tau(matrix: pd.DataFrame, rows: list[int], others: list[str]) -> float:
    """Kendall's tau between the held-out optimizers' ranking on the rows and on every task."""
    if len(others) < 2:
        return np.nan
    return float(kendalltau(ranking(matrix.iloc[rows])[others], ranking(matrix)[others]).statistic)


@dataclass(frozen=True)
class Subset:
    k: int
    tasks: list[str]
    second: list[str]
    references: list[str]
    reproduces: bool  # both sets rank the reference optimizers as the full set does
    validation_tau: float  # Kendall's tau of the held-out optimizers' ranking, subset vs full set
    random_share: float  # share of random k-subsets whose tau reaches validation_tau (small: better than random)

    def verdict(self) -> str:
        if np.isnan(self.validation_tau):
            return "no validation: fewer than 2 optimizers are held out of the embedding"
        if self.random_share <= 0.05:
            return f"better than random: only {self.random_share:.0%} of random {self.k}-task subsets rank as well"
        return (
            f"not better than random: {self.random_share:.0%} of random {self.k}-task subsets rank the held-out "
            "optimizers at least as well"
        )


def select(
    df: pd.DataFrame, k: int | None, references: list[str] | None = None, restarts: int = 10, seed: int = 0
) -> Subset:
    """A subset of k tasks (k=None: the smallest k whose two disjoint sets both reproduce the full ranking)."""
    scores = task_matrix(df)
    references = references or choose_references(normalise(scores, list(scores.columns)))
    unknown = [r for r in references if r not in scores.columns]
    if unknown:
        raise ValueError(f"reference optimizer(s) {', '.join(unknown)} not in the table")
    matrix = normalise(scores, references)  # the held-out optimizers play no part in the embedding
    points = np.clip(matrix[references].to_numpy(), 0.0, 1.0)
    varying = points.std(axis=0) > 0  # a reference that scores alike on every task embeds nothing
    points = points[:, varying] if varying.any() else points
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
    tau = held_out_tau(matrix, first, others)
    rng = np.random.default_rng(seed)
    random_taus = [
        held_out_tau(matrix, list(rng.choice(n, size, replace=False)), others) for _ in range(RANDOM_SUBSETS)
    ]
    share = float(np.mean(np.array(random_taus) >= tau - 1e-12)) if np.isfinite(tau) else np.nan
    return Subset(size, list(matrix.index[first]), list(matrix.index[second]), references, reproduces, tau, share)
