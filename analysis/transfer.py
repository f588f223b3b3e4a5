"""Hyperparameters that transfer (`python -m analysis transfer PATHS`, and a section of the report on results holding
step_law or transfer studies): the optimum lr of each tuned task with its interval, the power laws fitted through
them (suite/transfer.py), and every prediction run (tuning=step_law, tuning=transfer) against what tuning found:
the predicted lr over the local optimum, and the metric lost by using the prediction instead of tuning."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis.stats import t_interval
from suite import schema, transfer
from suite.transfer import LR, SEARCHES, vertex

PREDICTIONS = ("step_law", "transfer")


def optima_table(tasks: list[dict]) -> pd.DataFrame:
    """One row per tuned task: its scale and optimum lr with the interval (the vertex's, or the best trial's)."""
    columns = ["workload", "optimizer", "N", "D", "lr", "low", "high", "method", "points", "along", "study"]
    return pd.DataFrame([{k: t[k] for k in columns} for t in tasks], columns=columns)


def laws_table(prediction: dict) -> pd.DataFrame:
    """Each fitted hyperparameter's coefficients with their 95% intervals."""
    rows = []
    for key, law in prediction["laws"].items():
        for term, (value, low, high) in law["exponents"].items():
            rows.append({"hyperparameter": key, "term": term, "coefficient": value, "low": low, "high": high})
    return pd.DataFrame(rows)


def scores(study: dict, config: dict, held_out: bool) -> list[float]:
    """The final metric (oriented: lower is better) of a configuration's trials, on the scoring seeds (>= 1) when
    `held_out` and the study ran them, else on every seed it ran."""
    mine = [t for t in study["trials"] if t["config"] == config and t["score"] is not None]
    kept = [t["score"] for t in mine if t["seed"] != 0] if held_out else []
    return kept or [t["score"] for t in mine]


def by_seed(study: dict, config: dict) -> dict[int, float]:
    """A configuration's oriented final metric (lower is better) per seed it finished."""
    return {t["seed"]: t["score"] for t in study["trials"] if t["config"] == config and t["score"] is not None}


def lost(prediction: dict[int, float], tuned: dict[int, float]) -> tuple[float, float, float, int]:
    """The metric lost by the prediction: its result minus the tuned best's, paired by seed over the scoring seeds
    both ran (seeds >= 1: the tuned study selected on seed 0), mean with Student's t 95% interval (as tuned versus
    default, analysis/tuning.py), and the number of seeds; NaN without a common scoring seed."""
    gaps = [prediction[s] - tuned[s] for s in sorted(prediction.keys() & tuned.keys()) if s != 0]
    if not gaps:
        return math.nan, math.nan, math.nan, 0
    low, high = t_interval(gaps) if len(gaps) > 1 else (math.nan, math.nan)
    return float(np.mean(gaps)), low, high, len(gaps)


def task_of(study: dict) -> tuple[str, str]:
    """(workload, budget): the budget as the study's workload.tokens override, or 'default'."""
    tokens = [o.partition("=")[2] for o in study["settings"].get("overrides", []) if o.startswith("workload.tokens=")]
    return study["workload"], tokens[0] if tokens else "default"


def tuned_optimum(study: dict) -> dict:
    """The tuned study's optimum lr (the vertex through its search, as the transfer fit takes it); NaN without lr."""
    try:
        return transfer.study_optimum(study["directory"])
    except ValueError:
        return {"lr": math.nan}


def in_range(study: dict) -> bool:
    """Whether the prediction lies where its law was fitted (the Step Law's grid of models; the tasks' N and D)."""
    if study["protocol"] == "step_law":
        return bool(study["step_law"]["in_fitted_range"])
    return not study["transfer"]["extrapolated"]


def predictions_table(paths: list) -> pd.DataFrame:
    """One row per finished step_law or transfer study among `paths` (study directories, or directories holding
    them): the predicted lr; the local optimum around it (transfer: the vertex of the final held-out loss through
    the prediction and its checks on seed 0) and their ratio; the tuned study of the same optimizer and task among
    them (random, grid or coordinate descent) with its best lr and its optimum (the vertex through its search, as
    the transfer fit takes it); and the metric lost by the prediction against that tuned best, paired by scoring
    seed (positive: worse)."""
    studies = [{**s, "directory": p.parent} for p, s in schema.studies(paths, finished=True)]
    tuned = {}
    for s in studies:
        if s["protocol"] in SEARCHES:
            tuned.setdefault((s["optimizer"], *task_of(s)), s)
    rows = []
    for s in studies:
        if s["protocol"] not in PREDICTIONS:
            continue
        start = s["settings"]["start"]
        predicted = scores(s, start, held_out=s["protocol"] != "step_law")  # (step_law selects on no seed)
        searched = schema.search_trials(s)
        local = (
            vertex([t["config"][LR] for t in searched], [transfer.final_loss(t) for t in searched])
            if len(searched) >= 3
            else None
        )
        other = tuned.get((s["optimizer"], *task_of(s)))
        gap = lost(by_seed(s, start), by_seed(other, other["best"]["config"])) if other else (math.nan,) * 3 + (0,)
        low, high = t_interval(predicted) if len(predicted) > 1 else (math.nan, math.nan)
        sign = 1.0 if s["best"]["median"] == s["best"]["median_score"] else -1.0  # back to the metric's own sign
        tuned_mean = float(np.mean(scores(other, other["best"]["config"], True))) if other else math.nan
        rows.append(
            {
                "workload": s["workload"],
                "budget": task_of(s)[1],
                "optimizer": s["optimizer"],
                "protocol": s["protocol"],
                "N": s[s["protocol"]]["N"],
                "D": s[s["protocol"]]["D"],
                "predicted_lr": start[LR],
                "local_optimum_lr": local["lr"] if local else math.nan,
                "ratio": start[LR] / local["lr"] if local else math.nan,
                "tuned_lr": other["best"]["config"].get(LR) if other else math.nan,
                "tuned_optimum_lr": tuned_optimum(other)["lr"] if other else math.nan,
                "metric": s["best"]["metric"],
                "predicted": sign * float(np.mean(predicted)),
                "predicted_low": sign * (low if sign > 0 else high),
                "predicted_high": sign * (high if sign > 0 else low),
                "seeds": len(predicted),
                "tuned": sign * tuned_mean,
                "lost": gap[0],  # oriented: positive is worse than tuning, whatever the metric's direction
                "lost_low": gap[1],
                "lost_high": gap[2],
                "lost_seeds": gap[3],
                "in_range": in_range(s),
                "study": s["settings"].get("name", ""),
            }
        )
    return pd.DataFrame(rows)


def fit(paths: list[str], optimizer: str) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The optima, the laws and the fit of one optimizer's tuned studies under `paths` (the prediction's N and D:
    the largest task's, so laws_table has something to show)."""
    tasks = transfer.load_tasks(paths, optimizer)
    largest = max(tasks, key=lambda t: (t["N"], t["D"]))
    prediction = transfer.predict(tasks, largest["N"], largest["D"])
    return optima_table(tasks), laws_table(prediction), prediction
