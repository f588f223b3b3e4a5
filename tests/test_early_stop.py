"""Early stopping in rungs (`tuning.early_stop=curve|halving`) and the scaling law with learning-rate annealing it
predicts with: known answers for the law and the rules, a trial paused at a rung and continued bitwise, a sweep in
rungs end to end, and `python -m analysis predict`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.__main__ import main as analysis_main
from optimizers import schedules
from suite import curve_law, early_stop
from suite.curves import Curve, multipliers, pause_step
from suite.early_stop import decide
from suite.rungs import EARLY_STOP
from tests.conftest import FAST, cli, only_run_dir, read_metrics, read_summary, without_time
from tests.test_sweep import sweep

COSINE = {"name": "cosine", "warmup": 0.05, "min_lr_ratio": 0.1}
STEPS = 400


def law_curve(params, steps, noise=0.0, seed=0, schedule=COSINE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Losses after `steps` generated from the law (L0, A, alpha, C) under a schedule of STEPS steps."""
    m = multipliers(STEPS, schedule)
    s1, s2 = curve_law.areas(m)
    steps = np.asarray(steps)
    clean = curve_law.law(np.asarray(params, dtype=float), s1[steps - 1], s2[steps - 1])
    return m, steps, clean + np.random.default_rng(seed).normal(0, noise, len(steps))


def test_areas_follow_the_definitions():
    m = np.array([0.5, 1.0, 1.0, 0.6, 0.2])  # warmup, peak, two drops
    s1, s2 = curve_law.areas(m, decay=0.5)
    assert np.allclose(s1, np.cumsum(m))
    momentum = [0, 0, 0, 0.4, 0.5 * 0.4 + 0.4]  # the rise of the warmup is not annealing
    assert np.allclose(s2, np.cumsum(momentum))


def test_the_law_recovers_its_parameters_from_curves_generated_from_it():
    true = [2.0, 3.0, 0.5, 0.001]
    m, steps, losses = law_curve(true, np.arange(10, STEPS + 1, 10), noise=1e-4)
    s1, s2 = curve_law.areas(m)
    found = curve_law.fit(s1[steps - 1], s2[steps - 1], losses)
    assert np.allclose(found.params, true, rtol=0.05)
    # from half the curve, the final loss within its interval, and the interval narrow
    half = steps[steps <= STEPS // 2]
    predicted = curve_law.predict_final(m, list(half), list(losses[: len(half)]))
    actual = curve_law.law(np.array(true), s1[-1:], s2[-1:])[0]
    assert abs(predicted.value - actual) <= predicted.half_width < 0.05
    assert curve_law.predict_final(m, [10, 20, 30, 40], [3, 2.9, 2.8, 2.7]) is None  # four points fit nothing


def test_pause_steps_fall_on_evaluations_before_the_last_step():
    assert pause_step(0.25, 208, 8) == 48 and pause_step(0.5, 208, 8) == 104
    assert pause_step(0.01, 208, 8) == 8  # at least the first evaluation
    assert pause_step(0.99, 100, 50) == 50 and pause_step(0.5, 40, 40) is None  # 40 is the first and the end


def constructed_curves(rung: float) -> tuple[dict[str, Curve], dict[str, float]]:
    """Four trials whose order at the rung is not their final order: 'anneals' is in the worse half at the rung
    (a high learning rate: high loss while it is high) and best at the end, when its annealing pays."""
    s1, s2 = curve_law.areas(multipliers(STEPS, COSINE))
    shares = {"anneals": (3.0, 0.95), "steady": (2.5, 0.1), "middling": (2.6, 0.3), "slow": (2.9, 0.2)}
    steps = np.arange(8, int(rung * STEPS) + 1, 8)
    curves, finals = {}, {}
    for i, (name, (a, share)) in enumerate(shares.items()):
        c = share * a * s1[-1] ** -0.5 / s2[-1]
        m, _, losses = law_curve([2.0, a, 0.5, c], steps, noise=2e-4, seed=i)
        curves[name] = Curve(list(steps), list(losses), m)
        finals[name] = curve_law.law(np.array([2.0, a, 0.5, c]), s1[-1:], s2[-1:])[0]
    return curves, finals


def test_the_curve_rule_never_stops_the_eventual_best_and_halving_does():
    curves, finals = constructed_curves(0.5)
    best = min(finals, key=finals.get)
    at_rung = sorted(curves, key=lambda n: curves[n].losses[-1])
    assert best == "anneals" and at_rung.index("anneals") >= 2
    by_curve = decide("curve", curves, eta=2)
    assert not by_curve[best]["stop"]
    assert all(d["stop"] for n, d in by_curve.items() if n != best)  # and it stops the losers
    for name, d in by_curve.items():
        assert d["interval"][0] <= d["predicted"] <= d["interval"][1] and d["points"] == len(curves[name].steps)
    by_halving = decide("halving", curves, eta=2)
    assert by_halving[best]["stop"]  # the bias the curve rule avoids: current loss ignores the annealing to come
    assert sum(not d["stop"] for d in by_halving.values()) == 2


def test_a_trial_without_enough_evaluations_is_kept_and_halving_keeps_the_ceiling():
    m = multipliers(STEPS, COSINE)
    curves = {"short": Curve([8, 16], [3.0, 2.9], m), "long": Curve(list(range(8, 81, 8)), [2.0] * 10, m)}
    assert not decide("curve", curves, eta=2)["short"]["stop"]
    five = {str(i): Curve([8], [float(i)], m) for i in range(5)}
    kept = [n for n, d in decide("halving", five, eta=2).items() if not d["stop"]]
    assert kept == ["0", "1", "2"]


def test_early_stopping_of_another_protocol_is_refused():
    with pytest.raises(ValueError, match="works with tuning=random only"):
        early_stop.check({"protocol": "grid", "early_stop": "curve", "rungs": [0.5], "eta": 2})
    early_stop.check({"protocol": "random", "early_stop": "curve", "rungs": [0.5], "eta": 2})
    early_stop.check({"protocol": "grid"})  # (no early_stop key: off)


QUAD = ["workload=quadratic", "workload.steps=40", "eval_every=2", "log_every=2", "progress=false"]


@pytest.mark.slow
def test_a_paused_trial_continues_bitwise_as_if_never_paused(tmp_path):
    paused, whole = tmp_path / "paused", tmp_path / "whole"
    first = cli([*QUAD, f"results_dir={paused}", "pause_at=0.25"])
    assert first.returncode == 0, first.stderr
    run = only_run_dir(paused)
    summary = read_summary(run)
    assert summary["status"] == "paused" and summary["steps"] == 10 and (run / "checkpoint.pt").is_file()
    again = cli([*QUAD, f"results_dir={paused}", "pause_at=0.25"])
    assert "already paused" in again.stdout
    assert cli([*QUAD, f"results_dir={paused}"]).returncode == 0
    assert cli([*QUAD, f"results_dir={whole}"]).returncode == 0
    assert read_summary(run)["status"] == "completed" and not (run / "checkpoint.pt").exists()
    assert without_time(read_metrics(run)) == without_time(read_metrics(only_run_dir(whole)))


@pytest.mark.slow
def test_a_sweep_in_rungs_stops_trials_keeps_their_checkpoints_and_a_rerun_launches_nothing(tmp_path):
    args = [
        "optimizer=adamw",
        *QUAD[:-1],
        "tuning=random",
        "tuning.trials=4",
        "tuning.early_stop=halving",
        "cluster.slots=2",
        f"results_dir={tmp_path}",
    ]
    done = sweep(*args)
    assert done.returncode == 0, done.stdout + done.stderr
    study_dir = tmp_path / "quadratic" / "adamw" / "study-random"
    study = json.loads((study_dir / "study.json").read_text())
    statuses = sorted(t["status"] for t in study["trials"])
    assert statuses == ["completed", "stopped_early", "stopped_early", "stopped_early"], statuses
    decisions = json.loads((study_dir / EARLY_STOP).read_text())
    assert decisions["rule"] == "halving" and sorted(decisions["rungs"]) == ["0.25", "0.5"]
    assert [len(d) for _, d in sorted(decisions["rungs"].items())] == [4, 2]
    for trial in study["trials"]:
        record = read_summary(Path(trial["run_dir"]))
        if trial["status"] == "stopped_early":
            assert record["early_stop"]["rule"] == "halving" and record["steps"] in (10, 20)
            assert (Path(trial["run_dir"]) / "checkpoint.pt").is_file()
    assert study["budget"]["search_steps"] == 4 * 10 + 2 * 10 + 20 < study["budget"]["search_steps_full"] == 4 * 40
    again = sweep(*args)
    assert again.returncode == 0 and "round" not in again.stdout
    assert analysis_main(["report", str(tmp_path), "--out", str(tmp_path / "early")]) == 0
    early = (tmp_path / "early" / "leaderboard.md").read_text()
    assert "3 trial(s) were stopped early" in early and "None: every other trial completed" in early  # not failed
    # full random search over the same configurations continues the stopped trials from their checkpoints ...
    whole = sweep(*args[:-3], "tuning.early_stop=none", "tuning.name=full", *args[-2:])
    assert whole.returncode == 0, whole.stdout + whole.stderr
    full = json.loads((study_dir.parent / "study-full" / "study.json").read_text())
    assert sorted(t["status"] for t in full["trials"]) == ["completed"] * 4
    assert full["budget"]["search_steps"] == 4 * 40
    resumed = [read_summary(Path(t["run_dir"])).get("resumed_from_steps") for t in full["trials"]]
    assert sorted(r[-1] for r in resumed) == [10, 10, 20, 20]  # (the winner: resumed at each rung)
    # ... while the study in rungs still stands by its decisions, and the report compares the two protocols
    assert sweep(*args).returncode == 0
    assert json.loads((study_dir / "study.json").read_text())["budget"]["search_steps"] == 80
    assert analysis_main(["report", str(tmp_path), "--out", str(tmp_path / "report")]) == 0
    board = (tmp_path / "report" / "leaderboard.md").read_text()
    assert "Tuning protocols at equal compute" in board and "random+halving" in board


@pytest.mark.slow
def test_predict_reports_the_error_of_a_real_lm_tiny_prefix(tmp_path, capsys):
    budget = ["workload.tokens=32768"]  # 16 steps, an evaluation every 2: 6 in the first three quarters
    assert cli([*FAST, *budget, f"results_dir={tmp_path}"], timeout=600).returncode == 0
    out = tmp_path / "predict.csv"
    assert analysis_main(["predict", str(tmp_path), "--at", "0.75", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "median_abs_relative_error" in printed and out.with_suffix(".png").is_file()
    row = pd.read_csv(out).iloc[0]  # the prediction and the truth it is judged against
    print(f"lm_tiny, 16 steps, predicted from 12: {row['predicted']:.4f} vs {row['actual']:.4f}")
    assert math.isfinite(row["predicted"]) and row["points"] == 6
    assert analysis_main(["predict", str(tmp_path), "--at", "1.5"]) == 2


def test_multipliers_are_the_schedules_own():
    m = multipliers(50, COSINE)
    assert m[10] == schedules.lr_multiplier(10, 50, COSINE)
