"""The scaling law with learning-rate annealing (Tissue et al. 2024, 'Scaling Law with Learning Rate Annealing'):

    L(s) = L0 + A * S1(s)^(-alpha) - C * S2(s)

S1(s) is the forward area, the sum of the learning rates of steps 1 .. s; S2(s) the annealing area in its momentum
form, the sum over steps of m_i = lam * m_(i-1) + (eta_(i-1) - eta_i) (lam = 0.999, the paper's default). Both
come from the trial's known schedule, as multipliers of the peak (the peak's scale is absorbed in A and C); the
warmup's rise is not annealing, so S2 counts from the peak. The law is fitted to the evaluated prefix of a loss
curve (bounded least squares from seeded starting points) and predicts the loss at any later step of the same
schedule, with a delta-method interval from the fit's covariance (Student's t on the residual degrees of
freedom). Numpy and scipy only: the sweep driver imports it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PARAMETERS = ("L0", "A", "alpha", "C")
MIN_POINTS = len(PARAMETERS) + 1  # a fit needs at least one residual degree of freedom
DECAY = 0.999  # lambda of the momentum form of S2 (the paper's default)


def areas(multipliers: np.ndarray, decay: float = DECAY) -> tuple[np.ndarray, np.ndarray]:
    """(S1, S2) after each step, for the learning-rate multipliers of steps 0 .. n-1 (index i: after step i+1)."""
    eta = np.asarray(multipliers, dtype=float)
    s1 = np.cumsum(eta)
    peak = int(np.argmax(eta))
    drops = np.zeros_like(eta)
    drops[peak + 1 :] = eta[peak:-1] - eta[peak + 1 :]
    momentum = np.zeros_like(eta)
    for i in range(1, len(eta)):
        momentum[i] = decay * momentum[i - 1] + drops[i]
    return s1, np.cumsum(momentum)


def law(params: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
    l0, a, alpha, c = params
    return l0 + a * s1 ** (-alpha) - c * s2


def numeric_jacobian(f, x: np.ndarray) -> np.ndarray:
    """Central differences of a vector function, steps relative to each parameter's size."""
    columns = []
    for i in range(len(x)):
        h = 1e-6 * max(abs(x[i]), 1e-3)
        up, down = x.copy(), x.copy()
        up[i] += h
        down[i] -= h
        columns.append((f(up) - f(down)) / (2 * h))
    return np.column_stack(columns)


@dataclass(frozen=True)
class Fit:
    """The fitted law. It is fitted as (L0, A, alpha, share) with C = share * A * S1_end^(-alpha) / S2_end and share
    in [0, 1]: the annealing still to come can remove at most the reducible loss left at the end of the schedule
    (S1_end, S2_end), never reach below the irreducible L0 (the law alone allows any C, and a short prefix of a
    cosine schedule barely constrains it: unbounded, its extrapolation can fall far below zero)."""

    internal: np.ndarray  # L0, A, alpha, share
    covariance: np.ndarray | None  # of `internal`; None when the fit's Jacobian is singular (no interval)
    points: int
    end: tuple[float, float]  # S1_end, S2_end

    @property
    def params(self) -> np.ndarray:
        """L0, A, alpha, C."""
        return to_law(self.internal, self.end)

    def predict(self, s1: float, s2: float, level: float = 0.95) -> tuple[float, float]:
        """(predicted loss, half-width of its interval at `level`; inf when the fit has no covariance)."""

        def at(internal: np.ndarray) -> np.ndarray:
            return law(to_law(internal, self.end), np.array([s1]), np.array([s2]))

        value = float(at(self.internal)[0])
        if self.covariance is None:
            return value, math.inf
        gradient = numeric_jacobian(at, self.internal)[0]
        variance = float(gradient @ self.covariance @ gradient)
        from scipy.stats import t  # (imported when used: the sweep driver imports this module)

        half = t.ppf(0.5 + level / 2, self.points - len(PARAMETERS)) * math.sqrt(max(variance, 0.0))
        return value, half if math.isfinite(half) else math.inf


def to_law(internal: np.ndarray, end: tuple[float, float]) -> np.ndarray:
    l0, a, alpha, share = internal
    s1_end, s2_end = end
    c = share * a * s1_end ** (-alpha) / s2_end if s2_end > 0 else 0.0
    return np.array([l0, a, alpha, c])


def fit(
    s1: np.ndarray,
    s2: np.ndarray,
    loss: np.ndarray,
    end: tuple[float, float] | None = None,
    seed: int = 0,
    restarts: int = 8,
) -> Fit | None:
    """The law's least-squares fit to losses observed at areas (s1, s2), for a schedule whose areas at its end are
    `end` (default: the last point's); None with fewer than MIN_POINTS points. Bounds: L0 in [0, max loss],
    A >= 0, alpha in [0.01, 3], share in [0, 1]; the best of `restarts` starts (the first at a data-driven guess,
    the others drawn from a generator seeded with `seed`)."""
    from scipy.optimize import least_squares  # (imported when used: the sweep driver imports this module)

    s1, s2, loss = (np.asarray(v, dtype=float) for v in (s1, s2, loss))
    keep = np.isfinite(loss) & (s1 > 0)
    s1, s2, loss = s1[keep], s2[keep], loss[keep]
    if len(loss) < MIN_POINTS:
        return None
    end = (float(s1[-1]), float(s2[-1])) if end is None else end
    top, low = float(loss.max()), float(loss.min())
    lower, upper = np.array([0.0, 0.0, 0.01, 0.0]), np.array([top, np.inf, 3.0, 1.0])
    rng = np.random.default_rng(seed)
    starts = [np.array([0.5 * low, max(top - low, 1e-6) * s1.min() ** 0.5, 0.5, 0.5])]
    for _ in range(restarts - 1):
        starts.append(
            np.array([rng.uniform(0, low), top * rng.uniform(0.1, 10), rng.uniform(0.05, 1.5), rng.uniform()])
        )

    def residuals(internal: np.ndarray) -> np.ndarray:
        return law(to_law(internal, end), s1, s2) - loss

    best = None
    for start in starts:
        start = np.clip(start, lower, upper)
        result = least_squares(residuals, start, bounds=(lower, upper), method="trf")
        if best is None or result.cost < best.cost:
            best = result
    r = residuals(best.x)
    j = numeric_jacobian(residuals, best.x)
    try:
        covariance = float(r @ r) / (len(loss) - len(PARAMETERS)) * np.linalg.inv(j.T @ j)
    except np.linalg.LinAlgError:
        covariance = None
    if covariance is not None and not np.all(np.isfinite(covariance)):
        covariance = None
    return Fit(best.x, covariance, len(loss), end)


@dataclass(frozen=True)
class Prediction:
    value: float  # the predicted final loss
    half_width: float  # of its 95% interval (inf: no interval)
    points: int  # evaluations fitted

    def as_record(self) -> dict:
        return {
            "predicted": float(self.value),
            "interval": [float(self.value - self.half_width), float(self.value + self.half_width)]
            if math.isfinite(self.half_width)
            else None,
            "points": self.points,
        }


def predict_final(multipliers: np.ndarray, steps: list[int], losses: list[float], seed: int = 0) -> Prediction | None:
    """The predicted loss after the last step of the schedule `multipliers` (one per step of the whole budget),
    from the losses observed after `steps` (1-based step counts of the prefix); None when the prefix has too few
    points for a fit."""
    s1, s2 = areas(multipliers)
    index = np.asarray(steps, dtype=int) - 1
    result = fit(s1[index], s2[index], np.asarray(losses, dtype=float), end=(s1[-1], s2[-1]), seed=seed)
    if result is None:
        return None
    value, half = result.predict(s1[-1], s2[-1])
    return Prediction(float(value), float(half), result.points)
