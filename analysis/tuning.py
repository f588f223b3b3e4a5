"""From trials to tuned results: the best configuration per task and optimizer (selected on the held-out metric at
the end of training, median over seeds), tuned versus the authors' defaults (DeepOBS; Schmidt et al., 'Descending
through a Crowded Valley'), and the workload-agnostic calibrated default (Kasimbeg et al., 'How far away are truly
hyperparameter-free learning algorithms?')."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.speedup import check_columns
from suite.layout import FINISHED

REQUIRED = ("optimizer", "workload", "final_metric")
OPTIONAL = {
    "seed": 0,
    "status": "completed",
    "lower_is_better": True,
    "hparams": "",
    "default": False,
    "lr": np.nan,
    "budget_tokens": np.nan,
    "time_to_target": np.nan,
}
COMPARED = FINISHED  # a diverged trial is a result (the worst); failed or unfinished ones are not


def trials_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The collected table or an external CSV in the columns the report reads (README: Analysis columns). Only
    `optimizer`, `workload` and `final_metric` are required. Adds `task` (the
    workload, or 'workload @ budget' where a workload was run at several budgets) and `score` (the final metric
    oriented so that lower is better; a diverged or missing result scores +inf)."""
    df = df.copy()
    check_columns(df, REQUIRED)
    for column, value in OPTIONAL.items():
        if column not in df.columns:
            df[column] = value
    df["final_metric"] = pd.to_numeric(df["final_metric"], errors="coerce")
    df["time_to_target"] = pd.to_numeric(df["time_to_target"], errors="coerce").fillna(np.inf)
    df["default"] = df["default"].fillna(False).astype(bool)
    df["hparams"] = df["hparams"].fillna("").astype(str)
    lower = df["lower_is_better"].fillna(True).astype(bool)
    score = df["final_metric"].where(lower, -df["final_metric"])
    df["score"] = score.where(np.isfinite(score), np.inf)
    budgets = df.groupby("workload")["budget_tokens"].transform("nunique")
    df["task"] = (
        df["workload"]
        .astype(str)
        .where(budgets <= 1, df["workload"].astype(str) + " @ " + df["budget_tokens"].map("{:.3g}".format) + " tokens")
    )
    return df


def config_results(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, optimizer, hparams): median score, final metric and time to target over its seeds."""
    compared = trials[trials.status.isin(COMPARED)]
    return (
        compared.groupby(["task", "optimizer", "hparams"], as_index=False, sort=True)
        .agg(
            score=("score", "median"),
            final_metric=("final_metric", "median"),
            time_to_target=("time_to_target", "median"),
            seeds=("seed", "nunique"),
            default=("default", "max"),
            lr=("lr", "first"),
            workload=("workload", "first"),
            budget_tokens=("budget_tokens", "first"),
        )
        .astype({"default": bool})
    )


def best_configs(configs: pd.DataFrame) -> pd.DataFrame:
    """Per (task, optimizer) the configuration with the lowest median score, and how many were tried."""
    tried = configs.groupby(["task", "optimizer"]).size().rename("configs_tried")
    best = configs.sort_values(["task", "optimizer", "score", "hparams"]).groupby(["task", "optimizer"]).head(1)
    return best.join(tried, on=["task", "optimizer"]).reset_index(drop=True)


def tuned_vs_default(configs: pd.DataFrame) -> pd.DataFrame:
    """Per task and optimizer: the default configuration's result, the tuned one's (median over seeds), the gap
    in the metric's own units (positive: tuning helped), and the tuning budget."""
    best = best_configs(configs)
    defaults = configs[configs.default].set_index(["task", "optimizer"])
    table = best.join(defaults[["final_metric", "score", "seeds"]], on=["task", "optimizer"], rsuffix="_default")
    gap = (table.score_default - table.score).where(np.isfinite(table.score_default) & np.isfinite(table.score))
    return pd.DataFrame(
        {
            "task": table.task,
            "optimizer": table.optimizer,
            "default": table.final_metric_default,
            "tuned": table.final_metric,
            "gap": gap,
            "configs_tried": table.configs_tried,
            "tuned_seeds": table.seeds,
            "tuned_hparams": table.hparams,
        }
    ).reset_index(drop=True)


def normalised_scores(configs: pd.DataFrame) -> pd.Series:
    """Each configuration's score mapped per task to [0, 1]: 0 the best finite result of any optimizer on that task,
    1 the worst (a diverged result is 1)."""
    finite = configs.score.where(np.isfinite(configs.score))
    low = finite.groupby(configs.task).transform("min")
    high = finite.groupby(configs.task).transform("max")
    span = (high - low).where(high > low, 1.0)
    return ((configs.score - low) / span).clip(upper=1.0).fillna(1.0)


def calibrated_default(configs: pd.DataFrame) -> pd.DataFrame:
    """Per optimizer, the single configuration (tried on every task the optimizer ran) with the best mean
    normalised score, beside the mean normalised score of tuning per task; the gap is the price of one setting."""
    configs = configs.assign(normalised=normalised_scores(configs))
    rows = []
    for optimizer, group in configs.groupby("optimizer"):
        n_tasks = group.task.nunique()
        if n_tasks < 2:
            continue
        per_config = group.groupby("hparams").agg(tasks=("task", "nunique"), mean=("normalised", "mean"))
        everywhere = per_config[per_config.tasks == n_tasks]
        if everywhere.empty:
            continue
        chosen = everywhere["mean"].idxmin()
        tuned = group.groupby("task").normalised.min().mean()
        rows.append(
            {
                "optimizer": optimizer,
                "calibrated_hparams": chosen,
                "tasks": n_tasks,
                "calibrated": everywhere.loc[chosen, "mean"],
                "tuned_per_task": tuned,
                "gap": everywhere.loc[chosen, "mean"] - tuned,
            }
        )
    columns = ["optimizer", "calibrated_hparams", "tasks", "calibrated", "tuned_per_task", "gap"]
    return pd.DataFrame(rows, columns=columns)
