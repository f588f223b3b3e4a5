"""AlgoPerf-style performance profiles and benchmark score (Dahl et al. 2023; Kasimbeg et al. 2025)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.speedup import check_columns

REQUIRED = ("optimizer", "workload", "time_to_target")
TAU_MAX = 4.0


def performance_ratios(df: pd.DataFrame) -> pd.DataFrame:
    """Workload x optimizer table of time-to-target divided by the best optimizer's on that workload.

    A missed target (empty, NaN or inf) is an infinite ratio; so is every ratio on a workload no one reached."""
    check_columns(df, REQUIRED)
    times = pd.to_numeric(df["time_to_target"], errors="coerce").replace([np.inf, -np.inf], np.nan)
    table = df.assign(time_to_target=times).pivot_table(
        index="workload", columns="optimizer", values="time_to_target", aggfunc="median", dropna=False
    )
    best = table.min(axis=1)
    return (table.div(best, axis=0)).fillna(np.inf)


def profile(ratios: pd.DataFrame, taus: np.ndarray | None = None) -> pd.DataFrame:
    """rho(tau): the fraction of workloads an optimizer reaches within tau times the best time; ratios above
    TAU_MAX never count."""
    taus = np.linspace(1.0, TAU_MAX, 301) if taus is None else np.asarray(taus, dtype=float)
    r = ratios.where(ratios <= TAU_MAX, np.inf)
    rows = [{"optimizer": opt, "tau": tau, "rho": float((r[opt] <= tau).mean())} for opt in r.columns for tau in taus]
    return pd.DataFrame(rows)


def benchmark_score(ratios: pd.DataFrame) -> pd.Series:
    """Area under rho over tau in [1, TAU_MAX], divided by TAU_MAX - 1. The step function makes this exact: each
    workload reached with ratio r <= TAU_MAX adds (TAU_MAX - r), each miss adds 0 (AlgoPerf's code samples 100
    points with the trapezoid rule, which differs from the exact area by under 1%)."""
    contributions = (TAU_MAX - ratios).clip(lower=0).where(ratios <= TAU_MAX, 0.0)
    return (contributions.mean(axis=0) / (TAU_MAX - 1)).rename("score").sort_values(ascending=False)
