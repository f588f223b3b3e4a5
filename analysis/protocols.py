"""Tuning protocols compared at the compute they spent (`python -m analysis protocols RESULTS_DIR`, and a section of
the report on a results directory holding studies of more than one protocol): per workload, optimizer and protocol,
over its search seeds (`tuning.seed`), the training steps the search spent and the best configuration's final
metric, each with a t interval over the searches; and Population Based Training's winning paths. Read from the
studies' study.json files only."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from analysis.stats import t_interval
from suite.schema import SEARCH_SEED, StudyStatus, studies


def label(study: dict) -> str:
    """The protocol as compared: `random`, `random+curve`, `random+halving`, `grid`, ..."""
    rule = study["settings"].get("early_stop", "none")
    return study["protocol"] + ("" if rule == "none" else f"+{rule}")


def study_table(root: Path) -> pd.DataFrame:
    """One row per finished study under `root`: its protocol, search seed, steps spent, and the best
    configuration's final metric (median over its scoring seeds, in the metric's own sign) with the metric's
    direction; studies without a best (every configuration failed) have NaN there."""
    rows = []
    for path, study in studies([root]):
        if study["status"] != StudyStatus.COMPLETED:
            continue
        best, budget = study["best"] or {}, study["budget"]
        rows.append(
            {
                "workload": study["workload"],
                "optimizer": study["optimizer"],
                "protocol": label(study),
                "search_seed": study["settings"].get("seed", SEARCH_SEED),
                "steps": budget.get("search_steps"),
                "steps_full": budget.get("search_steps_full"),
                "best": best.get("median"),
                "metric": best.get("metric"),
                "in_sample": best.get("in_sample"),
                "lineage": json.dumps(best.get("lineage")) if best.get("lineage") else None,  # PBT's winning path
                "study": str(path.parent),
            }
        )
    return pd.DataFrame(rows)


def comparison(studies: pd.DataFrame) -> pd.DataFrame:
    """Per workload, optimizer and protocol: searches, mean steps spent and mean best metric with t intervals
    over the searches, and the share of full-length compute saved."""
    rows = []
    for (workload, optimizer, protocol), group in studies.groupby(["workload", "optimizer", "protocol"]):
        steps, best = group.steps.astype(float), group.best.astype(float)
        steps_low, steps_high = t_interval(steps)
        best_low, best_high = t_interval(best)
        rows.append(
            {
                "workload": workload,
                "optimizer": optimizer,
                "protocol": protocol,
                "searches": len(group),
                "steps": steps.mean(),
                "steps_low": steps_low,
                "steps_high": steps_high,
                "saved": 1 - steps.sum() / group.steps_full.astype(float).sum(),
                "metric": group.metric.iloc[0],
                "best": best.mean(),
                "best_low": best_low,
                "best_high": best_high,
            }
        )
    return pd.DataFrame(rows)


def winning_paths(studies: pd.DataFrame) -> pd.DataFrame:
    """The PBT studies' winning members, event by event: the generation and step where it took (or, at the
    start, drew) its hyperparameters, the member it copied, and the values."""
    rows = []
    for study in studies[studies.lineage.notna()].itertuples() if "lineage" in studies else []:
        for event in json.loads(study.lineage):
            rows.append(
                {
                    "workload": study.workload,
                    "optimizer": study.optimizer,
                    "generation": event["generation"],
                    "step": event["step"],
                    "copied": event.get("copied"),
                    "hyperparameters": ", ".join(f"{k} {v:.4g}" for k, v in sorted(event["config"].items())),
                }
            )
    return pd.DataFrame(rows)
