"""Data-equivalent speedup ('Fantastic Pretraining Optimizers', Marin): how much data the baseline needs to reach
another optimizer's final loss, from a power-law fit of the baseline's final loss against data."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import OptimizeWarning, curve_fit

REQUIRED = ("optimizer", "workload", "budget_tokens", "final_metric")  # final_metric: a loss
MIN_BUDGETS = 3


@dataclass(frozen=True)
class PowerLaw:
    """L(D) = alpha * D^(-B) + beta, fitted with D in units of `d0` (the smallest budget) for conditioning."""

    alpha: float
    B: float
    beta: float
    d0: float

    def loss(self, tokens):
        return self.alpha * (np.asarray(tokens, dtype=float) / self.d0) ** (-self.B) + self.beta

    def tokens_for(self, loss: float) -> float:
        """D_eff = ((L - beta) / alpha)^(-1/B); NaN where L is at or below the asymptote beta."""
        if loss <= self.beta:
            return float("nan")
        return self.d0 * ((loss - self.beta) / self.alpha) ** (-1.0 / self.B)


def fit_power_law(tokens, losses) -> PowerLaw:
    """Least squares from Marin's starting point: alpha = L(first) - L(last), B = 0.5, beta = L(last)."""
    order = np.argsort(tokens)
    D = np.asarray(tokens, dtype=float)[order]
    L = np.asarray(losses, dtype=float)[order]
    d0 = D[0]
    with warnings.catch_warnings():  # three budgets fit exactly: no covariance, which this fit does not use
        warnings.simplefilter("ignore", OptimizeWarning)
        params, _ = curve_fit(
            lambda x, a, b, c: a * x ** (-b) + c, D / d0, L, p0=(L[0] - L[-1], 0.5, L[-1]), maxfev=20000
        )
    return PowerLaw(alpha=float(params[0]), B=float(params[1]), beta=float(params[2]), d0=float(d0))


def check_columns(df: pd.DataFrame, required: tuple[str, ...]) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(f"table lacks column(s) {', '.join(missing)}; needs {', '.join(required)}")


POINT = ["workload", "optimizer", "budget_tokens"]


def _speedups(means: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Point estimates from the mean final loss of each (workload, optimizer, budget)."""
    rows = []
    for workload, group in means.groupby("workload"):
        base = group[group.optimizer == baseline]
        if len(base) < MIN_BUDGETS:
            raise ValueError(
                f"workload {workload}: baseline {baseline!r} has {len(base)} budget(s); "
                f"the fit needs at least {MIN_BUDGETS}"
            )
        law = fit_power_law(base.budget_tokens, base.final_metric)
        for row in group[group.optimizer != baseline].itertuples():
            d_eff = law.tokens_for(row.final_metric)
            rows.append(
                {
                    "workload": workload,
                    "optimizer": row.optimizer,
                    "budget_tokens": row.budget_tokens,
                    "final_metric": row.final_metric,
                    "effective_tokens": d_eff,
                    "speedup": d_eff / row.budget_tokens,
                    "status": "ok" if np.isfinite(d_eff) else "beyond fit",
                    "fit_alpha": law.alpha,
                    "fit_B": law.B,
                    "fit_beta": law.beta,
                }
            )
    return pd.DataFrame(rows)


def speedup_table(df: pd.DataFrame, baseline: str = "adamw", n_boot: int = 200, seed: int = 0) -> pd.DataFrame:
    """Speedup of every optimizer at every (workload, budget) over `baseline`; with several seeds per point, a
    bootstrap 95% interval (seeds resampled within each point, baseline refitted each time)."""
    check_columns(df, REQUIRED)
    if baseline not in set(df.optimizer):
        present = ", ".join(sorted(set(df.optimizer)))
        raise ValueError(f"baseline {baseline!r} is not in the table; optimizers: {present}")
    points = df.groupby(POINT, sort=True)["final_metric"]
    means = points.mean().reset_index()
    table = _speedups(means, baseline)
    table["ci_low"] = table["ci_high"] = np.nan
    if "seed" not in df.columns or points.size().max() < 2:
        return table
    rng = np.random.default_rng(seed)
    values = [group.to_numpy() for _, group in points]  # in the order of `means`
    samples = []
    for _ in range(n_boot):
        resampled = [v[rng.integers(0, len(v), len(v))].mean() for v in values]
        try:
            samples.append(_speedups(means.assign(final_metric=resampled), baseline)["speedup"].to_numpy())
        except RuntimeError:  # a resample the fit cannot converge on
            continue
    stacked = np.vstack(samples)
    table["ci_low"] = np.nanpercentile(stacked, 2.5, axis=0)
    table["ci_high"] = np.nanpercentile(stacked, 97.5, axis=0)
    return table
