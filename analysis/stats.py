"""Ranks and their significance across independent workloads: the Friedman test (with the tie correction) and the
Nemenyi critical difference, as in Demšar, 'Statistical Comparisons of Classifiers over Multiple Data Sets' (JMLR
2006); Student's t intervals over seeds; and the seeds needed to detect a difference."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import chi2, f, norm, rankdata, studentized_range, t


def t_interval(values, level: float = 0.95) -> tuple[float, float]:
    """Student's t interval of the mean of a few seeds' values ((nan, nan) for fewer than 2 or a non-finite value).
    With 2 to 5 seeds a percentile bootstrap is far too narrow (two seeds: it covers a zero mean about 60% of the
    time); t's is exact for normal seed noise."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2 or not np.isfinite(values).all():
        return np.nan, np.nan
    half = t.ppf(0.5 + level / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return float(values.mean() - half), float(values.mean() + half)


def pooled_sd(df: pd.DataFrame, value: str, groups: list[str], block: str) -> pd.DataFrame:
    """Per `block`: the pooled within-group standard deviation of `value` (the seed-to-seed spread: each group is one
    configuration's seeds) and its degrees of freedom, the sum over groups of (size - 1); NaN without any."""
    grouped = df.groupby(groups)[value]
    residual = df[value] - grouped.transform("mean")
    dof = (grouped.size() - 1).groupby(level=block).sum()
    ss = (residual**2).groupby(df[block]).sum()
    return pd.DataFrame({"sd": np.sqrt(ss / dof.where(dof > 0)), "dof": dof})


def mean_rank_interval(ranks: pd.DataFrame, draws: int = 1000) -> pd.DataFrame:
    """Per optimizer (column): the 2.5% and 97.5% quantiles of its mean rank over bootstrap resamples of the blocks
    (rows), draw i from numpy's generator seeded i."""
    means = pd.DataFrame(
        [ranks.iloc[np.random.default_rng(i).integers(0, len(ranks), len(ranks))].mean() for i in range(draws)]
    )
    return pd.DataFrame({"rank_low": means.quantile(0.025), "rank_high": means.quantile(0.975)})


def rank_rows(scores: pd.DataFrame) -> pd.DataFrame:
    """Each row's ranks (1 = lowest score; ties, as between diverged runs, share the average rank)."""
    return pd.DataFrame(
        np.apply_along_axis(rankdata, 1, scores.to_numpy(dtype=float)), index=scores.index, columns=scores.columns
    )


def workload_ranks(scores: pd.DataFrame, workloads: pd.Series) -> pd.DataFrame:
    """Task x optimizer scores (lower is better, complete rows) -> workload x optimizer ranks: a workload's tasks
    (its budgets) are ranked each, their ranks averaged, and the averages ranked again, so that each independent
    workload is one block (its budgets are not independent evidence)."""
    ranks = rank_rows(scores)
    return rank_rows(ranks.groupby(workloads.reindex(ranks.index).to_numpy()).mean())


def average_ranks(ranks: pd.DataFrame) -> pd.Series:
    """Block x optimizer ranks -> mean rank per optimizer (1 = best)."""
    return ranks.mean(axis=0).rename("mean_rank")


def tie_correction(ranks: pd.DataFrame) -> float:
    """1 - sum over blocks and tie groups of (t^3 - t) / (N k (k^2 - 1)): Friedman's statistic is divided by it."""
    n, k = ranks.shape
    ties = sum((c**3 - c).sum() for c in (np.unique(row, return_counts=True)[1] for row in ranks.to_numpy()))
    return 1.0 - ties / (n * k * (k * k - 1))


@dataclass(frozen=True)
class Friedman:
    chi2: float  # Friedman's statistic, chi-square with k - 1 degrees of freedom
    p_chi2: float
    f: float  # Iman and Davenport's less conservative F statistic, (k - 1, (k - 1)(N - 1)) degrees of freedom
    p_f: float


def friedman(mean_ranks: np.ndarray, n_tasks: int, correction: float = 1.0) -> Friedman:
    """Friedman's test from the mean ranks of k optimizers over N blocks (Demšar 2006, section 3.2.2), divided by
    the tie correction (`tie_correction`; 1 without ties). With perfect agreement F is infinite (p = 0)."""
    r = np.asarray(mean_ranks, dtype=float)
    k, n = len(r), n_tasks
    stat = 12 * n / (k * (k + 1)) * (np.sum(r**2) - k * (k + 1) ** 2 / 4) / correction if correction > 0 else 0.0
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


def friedman_test(ranks: pd.DataFrame) -> Friedman:
    """Friedman's test on a block x optimizer rank table, tie-corrected."""
    return friedman(average_ranks(ranks).to_numpy(), len(ranks), tie_correction(ranks))


def seeds_needed(sd: float, difference: float, power: float = 0.8, alpha: float = 0.05) -> float:
    """Seeds per arm for a two-sided two-sample comparison of means to detect `difference` with the given power,
    from the seed-to-seed standard deviation (normal approximation: 2 (z_{1-alpha/2} + z_power)^2 sd^2 / d^2)."""
    if not np.isfinite(sd) or difference <= 0:
        return np.nan
    return float(np.ceil(2 * (norm.ppf(1 - alpha / 2) + norm.ppf(power)) ** 2 * sd**2 / difference**2))
