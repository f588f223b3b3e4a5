"""Ranks and their significance across tasks: the Friedman test and the Nemenyi critical difference, as in Demšar,
'Statistical Comparisons of Classifiers over Multiple Data Sets' (JMLR 2006)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import chi2, f, rankdata, studentized_range


def average_ranks(scores: pd.DataFrame) -> pd.Series:
    """Task x optimizer scores (lower is better, every cell filled) -> mean rank per optimizer (1 = best; ties
    share the average rank)."""
    ranks = np.apply_along_axis(rankdata, 1, scores.to_numpy(dtype=float))
    return pd.Series(ranks.mean(axis=0), index=scores.columns, name="mean_rank")


@dataclass(frozen=True)
class Friedman:
    chi2: float  # Friedman's statistic, chi-square with k - 1 degrees of freedom
    p_chi2: float
    f: float  # Iman and Davenport's less conservative F statistic, (k - 1, (k - 1)(N - 1)) degrees of freedom
    p_f: float


def friedman(mean_ranks: np.ndarray, n_tasks: int) -> Friedman:
    """Friedman's test from the mean ranks of k optimizers over N tasks (Demšar 2006, section 3.2.2)."""
    r = np.asarray(mean_ranks, dtype=float)
    k, n = len(r), n_tasks
    stat = 12 * n / (k * (k + 1)) * (np.sum(r**2) - k * (k + 1) ** 2 / 4)
    df1, df2 = k - 1, (k - 1) * (n - 1)
    f_stat = (n - 1) * stat / (n * (k - 1) - stat) if n * (k - 1) > stat else np.inf
    return Friedman(float(stat), float(chi2.sf(stat, df1)), float(f_stat), float(f.sf(f_stat, df1, df2)))


def nemenyi_cd(k: int, n_tasks: int, alpha: float = 0.05) -> float:
    """Critical difference of mean ranks: q_alpha * sqrt(k (k + 1) / (6 N)), where q_alpha is the studentized range
    quantile for k groups and infinite degrees of freedom, divided by sqrt(2)."""
    q = studentized_range.ppf(1 - alpha, k, np.inf) / np.sqrt(2)
    return float(q * np.sqrt(k * (k + 1) / (6 * n_tasks)))


def cliques(mean_ranks: pd.Series, cd: float) -> list[list[str]]:
    """Maximal runs of optimizers (sorted by mean rank) whose ranks differ by less than `cd`: the groups a
    critical-difference diagram joins with a bar. Runs of one are left out."""
    ordered = mean_ranks.sort_values()
    names, values = list(ordered.index), ordered.to_numpy()
    runs = []
    for i in range(len(values)):
        j = i
        while j + 1 < len(values) and values[j + 1] - values[i] < cd:
            j += 1
        if j > i and not (runs and runs[-1][1] >= j):
            runs.append((i, j))
    return [names[i : j + 1] for i, j in runs]
