"""Data-equivalent speedup ('Fantastic Pretraining Optimizers', Marin): how much data the baseline needs to reach
another optimizer's final loss, from a power-law fit of the baseline's final loss against data."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import OptimizeWarning, curve_fit

from analysis.stats import pooled_sd

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
    with warnings.catch_warnings(), np.errstate(over="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", OptimizeWarning)  # three budgets fit exactly: no covariance (unused here)
        params, _ = curve_fit(
            lambda x, a, b, c: a * x ** (-b) + c, D / d0, L, p0=(L[0] - L[-1], 0.5, L[-1]), maxfev=20000
        )
    return PowerLaw(alpha=float(params[0]), B=float(params[1]), beta=float(params[2]), d0=float(d0))


def check_columns(df: pd.DataFrame, required: tuple[str, ...]) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(f"table lacks column(s) {', '.join(missing)}; needs {', '.join(required)}")


POINT = ["workload", "optimizer", "budget_tokens"]
EXTRAPOLATION = 2.0  # a speedup needing more than this multiple of the largest baseline budget is shown as "> x"


def sensible(law: PowerLaw) -> bool:
    """A loss that falls with data and at most as fast as 1/D^2 (alpha > 0, 0 < B <= 2, finite)."""
    return all(np.isfinite([law.alpha, law.B, law.beta])) and law.alpha > 0 and 0 < law.B <= 2


class Points:
    """The (workload, optimizer, budget) means as arrays, so that a bootstrap draw refits without pandas."""

    def __init__(self, means: pd.DataFrame, baseline: str):
        self.means = means
        is_base = (means.optimizer == baseline).to_numpy()
        self.base = {w: g.index.to_numpy() for w, g in means[is_base].groupby("workload")}
        self.others = np.flatnonzero(~is_base)
        self.tokens = means.budget_tokens.to_numpy(dtype=float)
        workload = means.workload.to_numpy()
        largest = {w: self.tokens[i].max() for w, i in self.base.items()}
        smallest = {w: self.tokens[i].min() for w, i in self.base.items()}
        self.cap = np.array([EXTRAPOLATION * largest.get(workload[i], np.nan) for i in self.others])
        self.floor = np.array([smallest.get(workload[i], np.nan) / EXTRAPOLATION for i in self.others])
        self.by_workload = {w: np.flatnonzero(workload[self.others] == w) for w in self.base}

    def laws(self, losses: np.ndarray) -> dict:
        """Per workload: the baseline's fitted law (None where the fit fails or is rejected as not sensible)."""
        laws = {}
        for w, idx in self.base.items():
            try:
                law = fit_power_law(self.tokens[idx], losses[idx])
            except (RuntimeError, ValueError):  # curve_fit did not converge, or a diverged (infinite) mean
                law = None
            laws[w] = law if law is not None and sensible(law) else None
        return laws

    def speedups(self, losses: np.ndarray, laws: dict) -> np.ndarray:
        """Each other point's speedup: NaN without a fit, +inf where the baseline would need more than EXTRAPOLATION
        times its largest budget (or could never reach the loss), -inf where less than its smallest budget divided by
        EXTRAPOLATION (the fit says nothing that far out on either side)."""
        values = np.full(len(self.others), np.nan)
        for w, j in self.by_workload.items():
            law = laws[w]
            if law is None:
                continue
            loss = losses[self.others[j]]
            with np.errstate(all="ignore"):
                d_eff = np.where(loss > law.beta, law.d0 * ((loss - law.beta) / law.alpha) ** (-1.0 / law.B), np.inf)
            speedup = np.where(d_eff <= self.cap[j], d_eff / self.tokens[self.others[j]], np.inf)
            values[j] = np.where(d_eff >= self.floor[j], speedup, -np.inf)
        return values


@dataclass(frozen=True)
class Speedups:
    points: pd.DataFrame  # one row per (workload, optimizer, budget)
    summary: pd.DataFrame  # one row per (workload, optimizer): median over budgets, interval from its own bootstrap


def pooled_noise(df: pd.DataFrame) -> pd.DataFrame:
    """Per workload: the pooled seed-to-seed standard deviation of the final loss within its points and its degrees
    of freedom (sum of seeds - 1 over the points)."""
    return pooled_sd(df[np.isfinite(df.final_metric)], "final_metric", POINT, "workload")  # (diverged: no spread)


def speedups(df: pd.DataFrame, baseline: str = "adamw", n_boot: int = 400, seed: int = 0) -> Speedups:
    """Speedup of every optimizer at every (workload, budget) over `baseline`, from the mean loss over seeds.

    With several seeds per point, a parametric bootstrap resamples what varies: every point's mean (the baseline's
    and the optimizer's alike) is redrawn from a normal with the workload's pooled seed-to-seed spread, itself
    redrawn from its scaled chi-square (so that few seeds widen the interval as Student's t does), the baseline
    refitted each time; the per-scale summary (median over budgets) gets its interval from the same draws."""
    check_columns(df, REQUIRED)
    if baseline not in set(df.optimizer):
        present = ", ".join(sorted(set(df.optimizer)))
        raise ValueError(f"baseline {baseline!r} is not in the table; optimizers: {present}")
    grouped = df.groupby(POINT, sort=True).final_metric
    means = grouped.mean().reset_index()
    means["seeds"] = grouped.size().to_numpy()
    for workload, group in means[means.optimizer == baseline].groupby("workload"):
        if len(group) < MIN_BUDGETS:
            raise ValueError(
                f"workload {workload}: baseline {baseline!r} has {len(group)} budget(s); the fit needs at least "
                f"{MIN_BUDGETS} (add budgets with workload.tokens=a,b,c)"
            )
    arrays = Points(means, baseline)
    losses = means.final_metric.to_numpy(dtype=float)
    laws = arrays.laws(losses)
    point = arrays.speedups(losses, laws)
    noise = pooled_noise(df)
    draws = np.full((n_boot, len(arrays.others)), np.nan)
    if noise.sd.notna().any():
        rng = np.random.default_rng(seed)
        sd_of = means.workload.map(noise.sd).to_numpy(dtype=float)
        dof_of = means.workload.map(noise.dof).to_numpy(dtype=float)
        spread = 1 / np.sqrt(means.seeds.to_numpy(dtype=float))
        for b in range(n_boot):
            sd = sd_of * np.sqrt(dof_of / rng.chisquare(np.maximum(dof_of, 1)))
            drawn = losses + rng.standard_normal(len(losses)) * sd * spread
            draws[b] = arrays.speedups(drawn, arrays.laws(drawn))
    points = means.iloc[arrays.others][POINT + ["final_metric", "seeds"]].reset_index(drop=True)
    points["speedup"] = point
    points["low"], points["high"] = interval(draws)
    labels = np.select([np.isnan(point), np.isposinf(point), np.isneginf(point)], ["no fit", "above", "below"], "ok")
    points["status"] = labels
    points["cap"] = arrays.cap / points.budget_tokens.to_numpy()
    points["floor"] = arrays.floor / points.budget_tokens.to_numpy()
    for name in ("alpha", "B", "beta"):
        points[f"fit_{name}"] = points.workload.map(lambda w, n=name: getattr(laws[w], n) if laws.get(w) else np.nan)
    summary_rows = []
    for (workload, optimizer), rows in points.groupby(["workload", "optimizer"], sort=False):
        idx = rows.index.to_numpy()
        low, high = interval(np.median(draws[:, idx], axis=1, keepdims=True))
        summary_rows.append(
            {
                "workload": workload,
                "optimizer": optimizer,
                "speedup": float(np.median(point[idx])),
                "low": float(low[0]),
                "high": float(high[0]),
                "budgets": len(idx),
                "seeds": int(rows.seeds.min()),
                "cap": float(rows.cap.min()),
                "floor": float(rows.floor.max()),
            }
        )
    return Speedups(points, pd.DataFrame(summary_rows))


def interval(draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column, the percentile 95% interval of the bootstrap draws that have a fit (quantiles without
    interpolation, so draws beyond the extrapolation limit, +inf, are allowed); NaN where a tenth or more of the
    draws have no fit."""
    low, high = np.full(draws.shape[1], np.nan), np.full(draws.shape[1], np.nan)
    for j in range(draws.shape[1]):
        column = draws[:, j][~np.isnan(draws[:, j])]
        if len(column) >= max(2, 0.9 * len(draws)):
            low[j], high[j] = np.quantile(column, [0.025, 0.975], method="inverted_cdf")
    return low, high


def speedup_label(value: float, low: float, high: float, cap: float, floor: float) -> str:
    """'1.52 [1.41, 1.63]', '> 2.4' or '< 0.25' beyond the extrapolation limits, 'no fit' without a sensible
    baseline fit."""
    if np.isnan(value):
        return "no fit"
    if np.isinf(value):
        return f"> {cap:.3g}" if value > 0 else f"< {floor:.3g}"
    if np.isnan(low):
        return f"{value:.3g}"
    ends = [f"< {floor:.3g}" if np.isneginf(low) else f"{low:.3g}", f"> {cap:.3g}" if np.isinf(high) else f"{high:.3g}"]
    return f"{value:.3g} [{ends[0]}, {ends[1]}]"
