"""Early stopping in rungs, for random search (`tuning.early_stop`): at each rung (a fraction of the budget) every
trial still running has trained to the same step, and a rule says which to stop.

- `curve`: fit the scaling law with learning-rate annealing (suite/curve_law.py) to each trial's held-out loss so
  far, predict its final loss under its own schedule, and stop a trial whose prediction is worse than the best
  prediction by more than the interval of that difference (the two 95% half-widths combined in quadrature: the
  leader's prediction is uncertain too). A trial with too few evaluations for a fit is kept: nothing is stopped
  without evidence.
- `halving`: successive halving, keep the best ceil(n / eta) by their current held-out loss (ignores the schedule's
  annealing still to come, so it favours trials whose loss is low early: the baseline the curve rule must beat).

The decisions are pure functions of the curves (suite/curves.run_curve reads one from a run directory);
suite/study.py keeps the rungs' state and suite/trial.py pauses a trial at a rung."""

from __future__ import annotations

import math

from suite.curve_law import predict_final
from suite.curves import Curve

RULES = ("none", "curve", "halving")


def decide_curve(curves: dict[str, Curve], seed: int = 0) -> dict[str, dict]:
    """Per trial: its prediction (or none), the best prediction, and whether it stops."""
    found = {name: predict_final(c.schedule, c.steps, c.losses, seed=seed) for name, c in curves.items()}
    predicted = {name: p for name, p in found.items() if p is not None and math.isfinite(p.value)}
    leader = min(predicted.values(), key=lambda p: p.value, default=None)
    best = None if leader is None else leader.value
    decisions = {}
    for name, curve in curves.items():
        p = predicted.get(name)
        record = p.as_record() if p else {"predicted": None, "interval": None, "points": len(curve.steps)}
        gap = None if p is None or leader is None else p.value - leader.value
        stop = bool(gap is not None and gap > math.hypot(p.half_width, leader.half_width))
        current = float(curve.losses[-1]) if curve.losses else None
        decisions[name] = {**record, "current": current, "best": None if best is None else float(best), "stop": stop}
    return decisions


def decide_halving(curves: dict[str, Curve], eta: int) -> dict[str, dict]:
    """Keep the best ceil(n / eta) by the last held-out loss (ties by name; a trial with no loss ranks last)."""

    def current(name: str) -> float:
        losses = curves[name].losses
        return losses[-1] if losses and math.isfinite(losses[-1]) else math.inf

    order = sorted(curves, key=lambda name: (current(name), name))
    kept = set(order[: math.ceil(len(order) / eta)])
    return {name: {"current": current(name), "kept": len(kept), "stop": name not in kept} for name in curves}


def decide(rule: str, curves: dict[str, Curve], eta: int, seed: int = 0) -> dict[str, dict]:
    if rule == "curve":
        return decide_curve(curves, seed)
    if rule == "halving":
        return decide_halving(curves, eta)
    raise ValueError(f"tuning.early_stop must be one of {', '.join(RULES)}, got {rule!r}")


def check(tuning: dict) -> None:
    """Early stopping's relation to the protocol (each setting's value is declared in suite/settings.py)."""
    rule = tuning.get("early_stop", "none")
    if rule != "none" and tuning["protocol"] != "random":
        raise ValueError(f"tuning.early_stop={rule} works with tuning=random only, not {tuning['protocol']}")
