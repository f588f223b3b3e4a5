"""Schedules against hand-computed values."""

from __future__ import annotations

import math

import pytest

from optimizers.schedules import lr_multiplier, validate

# 10 steps, warmup 0.2 -> 2 warmup steps (1/2, 2/2), then 8 decay steps indexed 0..7 (t = k/7).
BASE = {"warmup": 0.2, "min_lr_ratio": 0.1}


def multipliers(name, **extra):
    cfg = {"name": name, **BASE, **extra}
    validate(cfg)
    return [lr_multiplier(s, 10, cfg) for s in range(10)]


def test_constant():
    assert multipliers("constant") == [0.5, 1, 1, 1, 1, 1, 1, 1, 1, 1]


def test_cosine():
    m = multipliers("cosine")
    assert m[:3] == [0.5, 1.0, 1.0]
    assert m[-1] == pytest.approx(0.1)  # fully decayed on the last step
    assert m[5] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 3 / 7)))
    assert all(a >= b for a, b in zip(m[1:], m[2:], strict=False))


def test_linear():
    m = multipliers("linear")
    assert m[2:] == pytest.approx([1 - 0.9 * k / 7 for k in range(8)])


def test_wsd():
    m = multipliers("wsd", decay_fraction=0.5)
    # t = k/7; stable while t <= 0.5 (k = 0..3), then 1 - 0.9 (t - 0.5) / 0.5
    assert m[2:6] == [1.0, 1.0, 1.0, 1.0]
    assert m[6:] == pytest.approx([1 - 0.9 * (k / 7 - 0.5) / 0.5 for k in (4, 5, 6, 7)])
    assert m[-1] == pytest.approx(0.1)


def test_no_warmup_and_one_step():
    assert lr_multiplier(0, 1, {"name": "cosine", "warmup": 0.0, "min_lr_ratio": 0.1}) == pytest.approx(0.1)
    assert lr_multiplier(0, 5, {"name": "cosine", "warmup": 0.0, "min_lr_ratio": 0.1}) == 1.0


@pytest.mark.parametrize(
    "cfg, message",
    [
        ({"name": "cosine", "warmup": 1.0, "min_lr_ratio": 0.1}, "warmup"),
        ({"name": "cosine", "warmup": 0.1, "min_lr_ratio": 1.5}, "min_lr_ratio"),
        ({"name": "wsd", "warmup": 0.1, "min_lr_ratio": 0, "decay_fraction": 0}, "decay_fraction"),
        ({"name": "cosine", "warmup": 0.1, "min_lr_ratio": 0, "decay_fraction": 0.2}, "unknown key 'decay_fraction'"),
        ({"name": "step", "warmup": 0.1, "min_lr_ratio": 0}, "unknown schedule"),
    ],
)
def test_bad_schedules_are_refused(cfg, message):
    with pytest.raises(ValueError, match=message):
        validate(cfg)
