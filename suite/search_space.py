"""A search space's dimensions: a hyperparameter's range, on a log or linear scale, and where a value lies on it.
Shared by the sweep's planners (suite/protocols.py) and `analysis/` (ranges' edges); torch-free."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from optimizers.hparams import rule_for


@dataclass(frozen=True)
class Dim:
    key: str
    low: float
    high: float
    log: bool

    def value(self, u: float) -> float:
        """The point at fraction u of the range (on a log scale for log dimensions), to 6 significant digits."""
        if self.log:
            v = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        else:
            v = self.low + u * (self.high - self.low)
        return float(f"{v:.6g}")

    def position(self, v: float) -> float:
        """Where v lies on the range's scale: 0 at low, 1 at high (outside [0, 1] beyond the range)."""
        if self.log:
            return (math.log(v) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (v - self.low) / (self.high - self.low)

    def grid(self, points: int) -> list[float]:
        return [self.value(u) for u in np.linspace(0.0, 1.0, points)]

    def beyond(self, v: float, points: int) -> float | None:
        """One grid step past the range's edge when v is at or beyond it (a coordinate-descent best at the edge
        of its range: the optimum may lie outside), if the hyperparameter's rule allows the value; else None."""
        step, u = 1.0 / (points - 1), self.position(v)
        if 1e-9 < u < 1 - 1e-9:  # inside the range
            return None
        further = self.value(u - step if u < 0.5 else u + step)
        rule = rule_for(self.key.partition(".")[0])
        return further if rule is None or rule.holds(further) else None


def dims(search_space: dict) -> list[Dim]:
    """The search space (already validated by the optimizer's spec), in a fixed order."""
    return [Dim(k, float(d["low"]), float(d["high"]), d["scale"] == "log") for k, d in sorted(search_space.items())]
