"""Learning-rate schedules as small pure functions: a multiplier of the peak lr for each step."""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Mapping


def constant(t: float, min_lr_ratio: float) -> float:
    return 1.0


def cosine(t: float, min_lr_ratio: float) -> float:
    return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))


def linear(t: float, min_lr_ratio: float) -> float:
    return 1 - (1 - min_lr_ratio) * t


def wsd(t: float, min_lr_ratio: float, decay_fraction: float) -> float:
    """Warmup-stable-decay: hold the peak, then decay linearly to the minimum over the last `decay_fraction`."""
    stable_until = 1 - decay_fraction
    return 1.0 if t <= stable_until else 1 - (1 - min_lr_ratio) * (t - stable_until) / decay_fraction


def rex(t: float, min_lr_ratio: float) -> float:
    """REX, reflected exponential (Chen et al. 2022, "REX: Revisiting Budgeted Training with an Improved
    Schedule"): (1 - t) / (1/2 + (1 - t)/2), scaled into [min_lr_ratio, 1]."""
    return min_lr_ratio + (1 - min_lr_ratio) * (1 - t) / (0.5 + 0.5 * (1 - t))


def power(
    t: float,
    min_lr_ratio: float,
    a: float,
    b: float,
    decay_fraction: float,
    *,
    tokens: int,
    decay_tokens: int,
    peak_lr: float,
) -> float:
    """Power scheduler (Shen et al. 2024): lr = min(peak_lr, a * tokens^b), as a multiplier of the peak; over
    the last `decay_fraction` an exponential decay from the lr reached at `decay_tokens` down to min_lr_ratio."""
    held = min(1.0, a * max(tokens, 1) ** b / peak_lr)
    start = 1 - decay_fraction
    if t <= start:
        return held
    at_start = min(1.0, a * max(decay_tokens, 1) ** b / peak_lr)
    return at_start * min_lr_ratio ** ((t - start) / decay_fraction)


def refined(t: float, min_lr_ratio: float, *, weights: tuple[float, ...]) -> float:
    """Refined (Defazio et al. 2023, suite/refined.py): the multipliers the harness refined from an earlier run's
    gradient norms, one per step after warmup (peak 1, the last 0), scaled into [min_lr_ratio, 1]."""
    at = t * (len(weights) - 1)
    i = min(int(at), len(weights) - 2) if len(weights) > 1 else 0
    value = weights[i] if len(weights) == 1 else weights[i] + (at - i) * (weights[i + 1] - weights[i])
    return min_lr_ratio + (1 - min_lr_ratio) * value


SCHEDULES: dict[str, Callable[..., float]] = {
    "constant": constant,
    "cosine": cosine,
    "linear": linear,
    "wsd": wsd,
    "rex": rex,
    "power": power,
    "refined": refined,
}

COMMON_KEYS = ("name", "warmup", "min_lr_ratio")
HARNESS_KEYS = ("tokens", "decay_tokens", "peak_lr", "weights")  # supplied by the harness, never by the config
SOURCE_KEYS = {"refined": ("from", "smoothing", "norm")}  # config keys the harness builds `weights` from
NORM_CHOICES = ("auto", "l1", "l2")


@functools.cache
def schedule_params(name: str) -> tuple[str, ...]:
    """The parameters of a schedule function after (t, min_lr_ratio); looked up once per name, not per step."""
    return tuple(inspect.signature(SCHEDULES[name]).parameters)[2:]


def config_keys(name: str) -> set[str]:
    return (
        set(COMMON_KEYS) | set(SOURCE_KEYS.get(name, ())) | {p for p in schedule_params(name) if p not in HARNESS_KEYS}
    )


def validate(cfg: Mapping) -> None:
    if cfg["name"] not in SCHEDULES:
        raise ValueError(f"unknown schedule {cfg['name']!r}; valid: {', '.join(sorted(SCHEDULES))}")
    allowed = config_keys(cfg["name"])
    for key in cfg:
        if key not in allowed:
            raise ValueError(f"schedule {cfg['name']}: unknown key {key!r}; valid: {', '.join(sorted(allowed))}")
    if not 0 <= cfg["warmup"] < 1:
        raise ValueError(f"schedule.warmup is a fraction of the steps in [0, 1), got {cfg['warmup']}")
    if not 0 <= cfg["min_lr_ratio"] <= 1:
        raise ValueError(f"schedule.min_lr_ratio must lie in [0, 1], got {cfg['min_lr_ratio']}")
    if "decay_fraction" in cfg and not 0 < cfg["decay_fraction"] <= 1:
        raise ValueError(f"schedule.decay_fraction must lie in (0, 1], got {cfg['decay_fraction']}")
    if cfg["name"] == "refined":
        if not isinstance(cfg.get("from"), str) or not cfg["from"]:
            raise ValueError("schedule refined needs schedule.from=<run dir>: the earlier run of this task to refine")
        if isinstance(cfg["smoothing"], bool) or not isinstance(cfg["smoothing"], int | float):
            raise ValueError(f"schedule.smoothing is a fraction of the steps in [0, 1), got {cfg['smoothing']!r}")
        if not 0 <= cfg["smoothing"] < 1 or cfg["norm"] not in NORM_CHOICES:
            raise ValueError(
                f"schedule refined needs smoothing in [0, 1) and norm one of {', '.join(NORM_CHOICES)}, "
                f"got {cfg['smoothing']!r} and {cfg['norm']!r}"
            )
    if cfg["name"] == "power" and not (cfg["a"] > 0 and cfg["b"] < 0 and cfg["min_lr_ratio"] > 0):
        raise ValueError("schedule power needs a > 0, b < 0 and min_lr_ratio > 0 (its decay is exponential)")


def warmup_steps(total_steps: int, cfg: Mapping) -> int:
    return math.floor(cfg["warmup"] * total_steps)


def lr_multiplier(
    step: int,
    total_steps: int,
    cfg: Mapping,
    tokens_per_step: int = 1,
    peak_lr: float = 1.0,
    weights: tuple[float, ...] | None = None,
) -> float:
    """Multiplier for the update at `step` (0-based): linear warmup over the first `warmup` fraction of the
    steps, then the named schedule over the rest, reaching its final value on the last step. `tokens_per_step`
    and `peak_lr` matter only to schedules defined in tokens and absolute lr (power), `weights` only to refined
    (suite/refined.py builds them)."""
    warmup = warmup_steps(total_steps, cfg)
    fn = SCHEDULES[cfg["name"]]
    params = {k: v for k, v in cfg.items() if k not in COMMON_KEYS and k not in SOURCE_KEYS.get(cfg["name"], ())}
    if "weights" in schedule_params(cfg["name"]):
        if weights is None:
            raise ValueError("schedule refined needs its weights (suite/refined.py builds them from schedule.from)")
        params["weights"] = weights
    in_tokens = "tokens" in schedule_params(cfg["name"])
    if in_tokens:
        decay_start = warmup + math.floor((1 - cfg["decay_fraction"]) * (total_steps - warmup - 1))
        params.update(tokens=(step + 1) * tokens_per_step, decay_tokens=(decay_start + 1) * tokens_per_step)
        params.update(peak_lr=peak_lr)
    warm = (step + 1) / warmup if step < warmup else 1.0
    decay_steps = total_steps - warmup - 1
    t = 1.0 if decay_steps <= 0 else min(1.0, max(0, step - warmup) / decay_steps)
    if step < warmup:
        return warm * (fn(0.0, cfg["min_lr_ratio"], **params) if in_tokens else 1.0)
    return fn(t, cfg["min_lr_ratio"], **params)
