"""A run's learning curve as its records hold it: the held-out loss at each evaluation, up to a rung or whole,
with its whole schedule's learning-rate multipliers (what suite/curve_law.py fits). Shared by the harness (early
stopping, PBT) and `analysis/` (python -m analysis predict); torch-free."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from optimizers import schedules
from suite import refined
from suite.layout import CONFIG, METRICS, SUMMARY
from suite.records import read_jsonl
from suite.schema import summary_or_empty

LOSS = "eval/loss"  # the curve every rule reads: the held-out loss at each evaluation


def pause_step(fraction: float, steps: int, eval_every: int) -> int | None:
    """The step a trial pauses at for a rung at `fraction` of its `steps`: the last evaluation at or before it (so
    the prefix ends with a held-out loss), at least the first; None when that is not before the last step."""
    step = max(eval_every, math.floor(fraction * steps / eval_every) * eval_every)
    return step if step < steps else None


def passed(summary: dict, fraction: float, eval_every: int) -> bool:
    """Whether a paused run's record stands at or beyond where a trial pauses for `fraction` of its budget."""
    return summary["steps"] >= pause_step(fraction, summary["budget"]["steps"], eval_every)


def multipliers(
    steps: int, schedule: dict, tokens_per_step: int = 1, peak_lr: float = 1.0, weights: tuple | None = None
) -> np.ndarray:
    """The schedule's learning-rate multiplier of every step of the budget (`weights`: a refined schedule's)."""
    return np.array(
        [schedules.lr_multiplier(i, steps, schedule, tokens_per_step, peak_lr, weights) for i in range(steps)],
        dtype=float,
    )


@dataclass(frozen=True)
class Curve:
    """A trial's held-out losses after `steps` (the prefix up to the rung) and its whole schedule's multipliers."""

    steps: list[int]
    losses: list[float]
    schedule: np.ndarray


def prefix(rows: list[dict], until: int) -> tuple[list[int], list[float]]:
    """The evaluated (step, held-out loss) points of metrics rows up to step `until`."""
    points = [(r["step"], r[LOSS]) for r in rows if LOSS in r and r["step"] <= until]
    return [s for s, _ in points], [v for _, v in points]


def run_curve(directory: Path, fraction: float | None = None) -> Curve:
    """A run directory's held-out losses up to the rung at `fraction` of its budget (None: all of them) and its
    whole schedule, from its config.yaml, summary.json and metrics.jsonl."""
    return run_curves(directory, fraction)[1]


def run_curves(directory: Path, fraction: float | None) -> tuple[Curve, Curve]:
    """A run's whole curve and its prefix up to the rung at `fraction` (run_curve's), its files read once."""
    cfg = yaml.safe_load((directory / CONFIG).read_text())
    budget = summary_or_empty(directory / SUMMARY)["budget"]
    steps = budget["steps"]
    extra = refined.schedule_arguments(cfg, steps, schedules.warmup_steps(steps, cfg["schedule"]))
    schedule = multipliers(steps, cfg["schedule"], budget["tokens"] // steps, cfg["optimizer"].get("lr", 1.0), **extra)
    until = steps if fraction is None else pause_step(fraction, steps, cfg["eval_every"]) or steps
    rows = read_jsonl(directory / METRICS)
    return Curve(*prefix(rows, steps), schedule), Curve(*prefix(rows, until), schedule)
