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
        ({"name": "power", "warmup": 0.1, "min_lr_ratio": 0, "a": 4, "b": -0.5, "decay_fraction": 0.1}, "power needs"),
        (
            {"name": "power", "warmup": 0, "min_lr_ratio": 0.1, "a": 4, "b": -0.5, "decay_fraction": 0.1, "tokens": 3},
            "unknown key",
        ),
    ],
)
def test_bad_schedules_are_refused(cfg, message):
    with pytest.raises(ValueError, match=message):
        validate(cfg)


def test_rex():
    m = multipliers("rex")
    # t = k/7 after 2 warmup steps; rex(t) = (1 - t) / (1/2 + (1 - t)/2), scaled into [0.1, 1]
    assert m[2] == 1.0 and m[-1] == pytest.approx(0.1)
    t = 3 / 7
    assert m[5] == pytest.approx(0.1 + 0.9 * (1 - t) / (0.5 + 0.5 * (1 - t)))
    assert m[5] > multipliers("linear")[5]  # REX stays higher than linear decay mid-run


def test_power():
    cfg = {"name": "power", "warmup": 0.2, "min_lr_ratio": 0.01, "a": 4.0, "b": -0.5, "decay_fraction": 0.5}
    validate(cfg)
    # 10 steps of 100 tokens, peak lr 0.04: a * n^b = 4 / sqrt(n) reaches the peak at n = 10,000 tokens
    m = [lr_multiplier(s, 10, cfg, tokens_per_step=100, peak_lr=0.04) for s in range(10)]
    assert m[:2] == [0.5, 1.0]  # warmup; 4 / sqrt(200) > 0.04, so capped at the peak
    # decay starts at step 2 + floor(0.5 * 7) = 5 (t = 3/7 <= 0.5 still holds), its tokens are 600
    assert m[2:6] == [1.0, 1.0, 1.0, 1.0]
    peak = 1.0
    assert m[6] == pytest.approx(peak * 0.01 ** ((4 / 7 - 0.5) / 0.5))
    assert m[9] == pytest.approx(0.01)
    late = [lr_multiplier(s, 10, cfg, tokens_per_step=10_000, peak_lr=0.04) for s in range(10)]
    assert late[3] == pytest.approx(4 * (4 * 10_000) ** -0.5 / 0.04)  # below the cap: a * n^b / peak
