"""AlgoPerf performance profiles and benchmark score (Dahl et al. 2023; Kasimbeg et al. 2025), by AlgoPerf's rule
as its scoring code computes it (mlcommons/algorithmic-efficiency, `scoring/performance_profile.py`:
`get_times_for_submission` and `get_index_that_reaches_target`, with the per-study median of the later rules):
per study, the time of the fastest trial that reached the target; per workload, the median over studies, a study
that missed counting as infinite; ratios to the fastest optimizer; the area under the profile for tau in [1, 4].

Here a study is a seed (its trials are the configurations run on that seed), or the table's `study` column."""

from __future__ import annotations

import numpy as np
import pandas as pd

from suite.schema import FINISHED

TAU_MAX = 4.0


def study_times(trials: pd.DataFrame) -> pd.DataFrame:
    """Per (task, optimizer, study): the fastest time to target among the study's finished trials (inf if none
    reached it). `trials` is `tuning.trials_frame`'s table (a diverged trial never reaches a target)."""
    study = trials["study"] if "study" in trials else trials["seed"]
    finished = trials[trials.status.isin(FINISHED)].assign(study=study)
    return finished.groupby(["task", "optimizer", "study"], as_index=False).time_to_target.min()


def median_times(times: pd.DataFrame) -> pd.DataFrame:
    """Task x optimizer median over studies of the study times (inf: missed; NaN: the optimizer never ran the task)."""
    return times.pivot_table(index="task", columns="optimizer", values="time_to_target", aggfunc=np.median)


def ratio_array(medians: np.ndarray) -> np.ndarray:
    """(..., task, optimizer) median times -> ratios to each task's fastest: inf where missed or where no optimizer
    reached the target, NaN where not run."""
    with np.errstate(all="ignore"):
        best = np.min(np.where(np.isfinite(medians), medians, np.inf), axis=-1, keepdims=True)
        return np.where(np.isfinite(medians), medians / best, np.where(np.isnan(medians), np.nan, np.inf))


def performance_ratios(medians: pd.DataFrame) -> pd.DataFrame:
    """Each time divided by the fastest optimizer's on its task; inf where missed or where no optimizer reached the
    target; NaN where not run."""
    return pd.DataFrame(ratio_array(medians.to_numpy(dtype=float)), index=medians.index, columns=medians.columns)


def profile(ratios: pd.DataFrame, taus: np.ndarray | None = None) -> pd.DataFrame:
    """rho(tau): the fraction of the tasks an optimizer ran that it reached within tau times the best time; ratios
    above TAU_MAX never count."""
    taus = np.linspace(1.0, TAU_MAX, 301) if taus is None else np.asarray(taus, dtype=float)
    rows = []
    for opt in ratios.columns:
        r = ratios[opt].dropna()
        r = r.where(r <= TAU_MAX, np.inf)
        rows += [{"optimizer": opt, "tau": tau, "rho": float((r <= tau).mean())} for tau in taus]
    return pd.DataFrame(rows)


def score_array(ratios: np.ndarray) -> np.ndarray:
    """Area under rho over tau in [1, TAU_MAX], divided by TAU_MAX - 1, over the tasks each optimizer ran, from
    (..., task, optimizer) ratios. The step function makes this exact: a task reached with ratio r <= TAU_MAX adds
    (TAU_MAX - r), a miss adds 0 (AlgoPerf's code samples the profile with the trapezoid rule, which differs from
    the exact area by under 1%)."""
    with np.errstate(all="ignore"):
        contributions = np.where(ratios <= TAU_MAX, TAU_MAX - ratios, np.where(np.isnan(ratios), np.nan, 0.0))
        return np.nanmean(contributions, axis=-2) / (TAU_MAX - 1)


def benchmark_score(ratios: pd.DataFrame) -> pd.Series:
    return pd.Series(score_array(ratios.to_numpy(dtype=float)), index=ratios.columns, name="score")


def scores(times: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per optimizer: the benchmark score, a bootstrap 95% interval (each task's and optimizer's studies
    resampled), the tasks run and reached, and the studies per task."""
    medians = median_times(times)
    ratios = performance_ratios(medians)
    rng = np.random.default_rng(seed)
    stacked = np.full((n_boot, *medians.shape), np.nan)
    for (task, optimizer), group in times.groupby(["task", "optimizer"]):
        v = group.time_to_target.to_numpy()
        draws = v[rng.integers(0, len(v), (n_boot, len(v)))]
        stacked[:, medians.index.get_loc(task), medians.columns.get_loc(optimizer)] = np.median(draws, axis=1)
    samples = score_array(ratio_array(stacked))
    table = pd.DataFrame(
        {
            "score": benchmark_score(ratios),
            "low": np.quantile(samples, 0.025, axis=0, method="inverted_cdf"),
            "high": np.quantile(samples, 0.975, axis=0, method="inverted_cdf"),
            "tasks_run": ratios.notna().sum(axis=0),
            "tasks_reached": np.isfinite(ratios).sum(axis=0),
            "studies": times.groupby("optimizer").study.nunique().reindex(medians.columns),
        }
    )
    return table.rename_axis("optimizer").sort_values("score", ascending=False)


def score_cap(ratios: pd.DataFrame) -> tuple[int, int]:
    """(tasks no optimizer reached, tasks): every score is at most 1 - unreached / tasks."""
    unreached = int((~np.isfinite(ratios).any(axis=1)).sum())
    return unreached, len(ratios)
