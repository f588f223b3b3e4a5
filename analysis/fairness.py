"""The fairness of a set of tuning studies (`python -m analysis fairness RESULTS_DIR`): per study, the dimensions
searched, the search configurations and trials spent, the seeds, the budget cap and what it cut, and every tuned
hyperparameter at its range's edge (a range whose edge is best may cut the optimum off: widen it and rerun).
Read from the studies' study.json files only."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from suite.schema import studies
from suite.search_space import dims

EDGE_FRACTION = 0.05  # random search: a tuned value in the range's bottom or top 5% (on its scale) is at the edge
GRID_PROTOCOLS = ("grid", "coordinate_descent")


def edges(study: dict) -> list[str]:
    """The tuned hyperparameters at an edge of their ranges, as `lr (high)`: for grid protocols the edge grid
    value itself (within half a grid step), for random search the bottom or top EDGE_FRACTION."""
    best, settings = study.get("best"), study["settings"]
    if not best:
        return []
    space = {d.key: d for d in dims(settings["search_space"])}
    grid = study["protocol"] in GRID_PROTOCOLS
    tolerance = 0.5 / (settings["grid_points"] - 1) if grid else EDGE_FRACTION
    found = []
    for key, value in sorted(best["config"].items()):
        u = space[key].position(value)
        if u <= tolerance:
            found.append(f"{key} (low)")
        elif u >= 1 - tolerance:
            found.append(f"{key} (high)")
    return found


def fairness_table(root: Path) -> pd.DataFrame:
    rows = []
    for path, study in studies([root]):
        budget = study["budget"]
        rows.append(
            {
                "workload": study["workload"],
                "optimizer": study["optimizer"],
                "protocol": study["protocol"],
                "dimensions": len(study["settings"]["search_space"]),
                "configurations": budget["configurations"],
                "trials": budget["trials"],
                "seeds": budget["seeds"],
                "max_trials": budget.get("max_trials"),
                "cut": len(budget.get("cut") or []),
                "at_edge": ", ".join(edges(study)),
                "status": study["status"],
                "study": str(path.parent),
            }
        )
    if not rows:
        raise ValueError(f"{root}: no study.json (run `python -m suite.sweep` first)")
    return pd.DataFrame(rows)


def verdict(table: pd.DataFrame) -> list[str]:
    """What the table says about equal budgets and ranges, in sentences."""
    lines = []
    for (workload, protocol), group in table.groupby(["workload", "protocol"]):
        counts = sorted(set(group["configurations"]))
        if len(counts) == 1:
            dims = sorted(set(group["dimensions"]))
            lines.append(
                f"{workload} [{protocol}]: every optimizer searched {counts[0]} configurations"
                + (
                    f" over {dims[0]} to {dims[-1]} dimensions (an optimizer with more hyperparameters pays for them)"
                    if len(dims) > 1
                    else ""
                )
            )
        else:
            spent = ", ".join(f"{o} {c}" for o, c in zip(group["optimizer"], group["configurations"], strict=True))
            lines.append(f"{workload} [{protocol}]: UNEQUAL search budgets ({spent}); set tuning.max_trials")
    at_edge = table[table["at_edge"] != ""]
    for row in at_edge.itertuples():
        lines.append(f"{row.workload}/{row.optimizer} [{row.protocol}]: tuned {row.at_edge} at its range's edge")
    return lines
