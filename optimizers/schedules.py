"""Learning-rate schedules as small pure functions: a multiplier of the peak lr for each step."""

from __future__ import annotations

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


SCHEDULES: dict[str, Callable[..., float]] = {"constant": constant, "cosine": cosine, "linear": linear, "wsd": wsd}


COMMON_KEYS = ("name", "warmup", "min_lr_ratio")


def validate(cfg: Mapping) -> None:
    if cfg["name"] not in SCHEDULES:
        raise ValueError(f"unknown schedule {cfg['name']!r}; valid: {', '.join(sorted(SCHEDULES))}")
    allowed = set(COMMON_KEYS) | set(list(inspect.signature(SCHEDULES[cfg["name"]]).parameters)[2:])
    for key in cfg:
        if key not in allowed:
            raise ValueError(f"schedule {cfg['name']}: unknown key {key!r}; valid: {', '.join(sorted(allowed))}")
    if not 0 <= cfg["warmup"] < 1:
        raise ValueError(f"schedule.warmup is a fraction of the steps in [0, 1), got {cfg['warmup']}")
    if not 0 <= cfg["min_lr_ratio"] <= 1:
        raise ValueError(f"schedule.min_lr_ratio must lie in [0, 1], got {cfg['min_lr_ratio']}")
    if "decay_fraction" in cfg and not 0 < cfg["decay_fraction"] <= 1:
        raise ValueError(f"schedule.decay_fraction must lie in (0, 1], got {cfg['decay_fraction']}")


def warmup_steps(total_steps: int, cfg: Mapping) -> int:
    return math.floor(cfg["warmup"] * total_steps)


def lr_multiplier(step: int, total_steps: int, cfg: Mapping) -> float:
    """Multiplier for the update at `step` (0-based): linear warmup over the first `warmup` fraction of the
    steps, then the named schedule over the rest, reaching its final value on the last step."""
    warmup = warmup_steps(total_steps, cfg)
    if step < warmup:
        return (step + 1) / warmup
    decay_steps = total_steps - warmup - 1
    t = 1.0 if decay_steps <= 0 else min(1.0, (step - warmup) / decay_steps)
    extra = {k: v for k, v in cfg.items() if k not in COMMON_KEYS}
    return SCHEDULES[cfg["name"]](t, cfg["min_lr_ratio"], **extra)
