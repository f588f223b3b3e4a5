"""Refined schedules (Defazio, Cutkosky, Mehta and Mishchenko 2023, 'When, Why and How Much? Adaptive Learning Rate
Scheduling by Refinement'): from the per-step gradient norms g_t of an earlier run of the same task, smoothed by
a median filter over `smoothing` x T steps, the step size of step t is proportional to

    w_t · Σ_{s>t} w_s,   w_t = g_t^-2 (SGD: l2 norms)   or   w_t = g_t^-1 (Adam-type methods: l1 norms),

normalised to a peak of 1 (the authors' closed form; the last step gets 0). With a constant g it is linear decay to
zero. `schedule=refined schedule.from=<run dir>`; every run logs both norms of every step in metrics.jsonl."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from suite.layout import METRICS, SUMMARY
from suite.records import read_jsonl
from suite.schema import TrialStatus, summary_or_empty

NORMS = {"l2": ("grad_norms", 2.0), "l1": ("grad_norms_l1", 1.0)}  # metrics key, and p in w_t = g_t^-p
SGD_LIKE = ("sgd",)  # `norm: auto` takes the paper's SGD form for these, the Adam form for every other optimizer


def norm_of(schedule: dict, optimizer: str) -> str:
    return schedule["norm"] if schedule["norm"] != "auto" else ("l2" if optimizer in SGD_LIKE else "l1")


def refine(norms: np.ndarray, power: float, smoothing: float) -> np.ndarray:
    """The refined multipliers of every step from a run's gradient norms (same length), peak 1."""
    width = max(1, 2 * (int(smoothing * len(norms)) // 2) + 1)  # odd, as a median filter's window
    from scipy.ndimage import median_filter  # (imported when used: the sweep driver imports this module)

    smooth = median_filter(np.asarray(norms, float), size=width, mode="nearest")
    w = smooth**-power
    after = np.concatenate([np.cumsum(w[::-1])[::-1][1:], [0.0]])  # Σ_{s>t} w_s
    schedule = w * after
    return schedule / schedule.max() if schedule.max() > 0 else schedule


def source_norms(schedule: dict, cfg: dict, steps: int) -> np.ndarray:
    """The source run's per-step gradient norms (the form this trial's optimizer takes). ValueError when the source
    is not a finished run of the same workload and budget with a norm logged for every step."""
    source = Path(str(schedule["from"])).expanduser()
    summary = summary_or_empty(source / SUMMARY)
    if not summary or not (source / METRICS).is_file():
        raise ValueError(f"schedule.from={source} is not a run directory (no {SUMMARY} and {METRICS})")
    if summary["status"] != TrialStatus.COMPLETED:
        raise ValueError(f"schedule.from={source} is a {summary.get('status')} run; refine from a completed one")
    if summary.get("workload") != cfg["workload"]["name"] or summary["budget"]["steps"] != steps:
        raise ValueError(
            f"schedule.from={source} trained {summary.get('workload')} for {summary['budget']['steps']} steps; this "
            f"trial trains {cfg['workload']['name']} for {steps}: refine from a run of the same task"
        )
    key, _ = NORMS[norm_of(schedule, cfg["optimizer"]["name"])]
    norms = [g for row in read_jsonl(source / METRICS) for g in row.get(key, [])]
    if len(norms) != steps or not np.all(np.isfinite(norms)) or min(norms) <= 0:
        raise ValueError(f"schedule.from={source} has {len(norms)} positive finite {key} for its {steps} steps")
    return np.asarray(norms, float)


def weights(cfg: dict, steps: int, warmup: int) -> tuple[float, ...]:
    """The multipliers after warmup (peak 1) of a refined schedule, from its source run: the refinement of the whole
    run, from step `warmup` on (the warmup stays linear, as in every schedule here)."""
    schedule = cfg["schedule"]
    _, power = NORMS[norm_of(schedule, cfg["optimizer"]["name"])]
    after = refine(source_norms(schedule, cfg, steps), power, schedule["smoothing"])[warmup:]
    return tuple(map(float, after / after.max())) if after.max() > 0 else tuple(map(float, after))


def schedule_arguments(cfg: dict, steps: int, warmup: int) -> dict:
    """What lr_multiplier needs beyond the schedule's config: a refined schedule's weights."""
    return {"weights": weights(cfg, steps, warmup)} if cfg["schedule"]["name"] == "refined" else {}
