"""`python -m analysis predict RUN_DIR... --at 0.25`: how well the scaling law with learning-rate annealing
(suite/curve_law.py) predicts a finished run's final held-out loss from the first `at` of its curve: the same fit
and the same prefix (up to the last evaluation at or before the rung) that `tuning.early_stop=curve` decides on."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from suite.curve_law import predict_final
from suite.curves import run_curves
from suite.layout import SUMMARY, is_record_dir_name
from suite.schema import TrialStatus, summary_or_empty


def run_dirs(paths: list[Path]) -> list[Path]:
    """The run directories (holding summary.json) at or below each path, hidden directories left out."""
    found = []
    for path in paths:
        if not path.is_dir():
            raise ValueError(f"no such run or results directory: {path}")
        found += [
            s.parent
            for s in sorted(path.rglob(SUMMARY))
            if all(is_record_dir_name(part) for part in s.relative_to(path).parts[:-1])
        ]
    return found


def prediction(directory: Path, at: float) -> dict | str:
    """One run's row (predicted final loss with its interval, actual, relative error), or why it has none."""
    summary = summary_or_empty(directory / SUMMARY)
    if summary.get("status") != TrialStatus.COMPLETED:
        return f"status {summary.get('status')}, not completed"
    whole, part = run_curves(directory, at)
    if not whole.steps or whole.steps[-1] != summary["budget"]["steps"]:
        return "no held-out loss at the last step"
    found = predict_final(part.schedule, part.steps, part.losses)
    if found is None:
        return f"{len(part.steps)} evaluation(s) in the first {at:.0%}: too few to fit the law (lower eval_every)"
    actual = whole.losses[-1]
    finite = math.isfinite(found.half_width)
    low, high = (found.value - found.half_width, found.value + found.half_width) if finite else (np.nan, np.nan)
    return {
        "workload": summary["workload"],
        "optimizer": summary["optimizer"],
        "seed": summary["seed"],
        "points": found.points,
        "predicted": found.value,
        "low": low,
        "high": high,
        "actual": actual,
        "relative_error": (found.value - actual) / abs(actual),
        "covered": bool(finite and low <= actual <= high),
        "run_dir": str(directory),
    }


def predictions(paths: list[Path], at: float) -> tuple[pd.DataFrame, list[tuple[Path, str]]]:
    """Every run's row, and the runs left out with the reason."""
    if not 0 < at < 1:
        raise ValueError(f"--at is a fraction of the budget in (0, 1), got {at}")
    rows, skipped = [], []
    for directory in run_dirs(paths):
        row = prediction(directory, at)
        if isinstance(row, str):
            skipped.append((directory, row))
        else:
            rows.append(row)
    return pd.DataFrame(rows), skipped


def error_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per workload: runs, median absolute relative error, and how often the 95% interval held the actual loss."""
    return (
        table.assign(abs_error=table.relative_error.abs())
        .groupby("workload")
        .agg(runs=("actual", "size"), median_abs_relative_error=("abs_error", "median"), covered=("covered", "mean"))
        .reset_index()
    )
