"""Hyperparameters that transfer: the Step Law's values (tuning=step_law), the power-law fit across scales and its
prediction (tuning=transfer, python -m analysis transfer), and refined schedules (schedule=refined) with the
per-step gradient norms every run logs."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from analysis.__main__ import main as analysis_main
from optimizers.schedules import lr_multiplier
from suite import step_law, transfer
from suite.layout import trial_id
from suite.refined import refine
from suite.sweep import compose_config
from tests.conftest import cli, only_run_dir, read_metrics, read_summary, summary_record
from tests.test_sweep import sweep

QUAD = ["workload.steps=30", "eval_every=10", "log_every=5"]
LR_ONLY = ["~optimizer.search_space", "+optimizer.search_space={lr:{low:0.01,high:1.0,scale:log}}"]


# --- the Step Law -----------------------------------------------------------------------------------------------
def test_step_law_on_lm_125m_is_the_papers_formula():
    cfg = compose_config(["workload=lm_125m"])
    law = step_law.plan(cfg["workload"])
    d_model, hidden, layers = 768, 2048, 12  # SwiGLU width 8/3 x 768 rounded up to 64
    n = layers * (4 * d_model**2 + 3 * d_model * hidden + 2 * d_model) + d_model
    d = 20 * n  # chinchilla 1.0
    assert (law["N"], law["D"]) == (n, d) == (84_953_856, 1_699_077_120)
    assert law["lr_exact"] == pytest.approx(1.79 * n**-0.713 * d**0.307, rel=1e-12)
    assert law["lr"] == float(f"{law['lr_exact']:.6g}")
    assert law["batch_tokens_exact"] == pytest.approx(0.58 * d**0.571, rel=1e-12)
    assert law["batch_size"] == round(0.58 * d**0.571 / 1024) == 106  # whole sequences (micro-batch: auto)
    assert law["in_fitted_range"]
    tiny = step_law.plan(compose_config(["workload=lm_tiny"])["workload"])  # 7.4 sequences, micro-batch 16
    assert (tiny["batch_size"], tiny["micro_batch_size"], tiny["in_fitted_range"]) == (7, 7, False)
    twenty = step_law.plan(compose_config(["workload=lm_20m"])["workload"])  # 48.6 sequences, micro-batch 32
    assert (twenty["batch_size"], twenty["micro_batch_size"]) == (64, 32)


@pytest.mark.slow
def test_a_step_law_study_runs_the_laws_configuration_on_every_seed(tmp_path):
    args = ["workload=lm_tiny", "workload.tokens=32768", "workload.eval_tokens=1024", "eval_every=64"]
    done = sweep(*args, "tuning=step_law", "tuning.seeds=2", f"results_dir={tmp_path}", "cluster.slots=2")
    assert done.returncode == 0, done.stderr[-2000:]
    study = json.loads((tmp_path / "lm_tiny/adamw/study-step_law-32768tokens/study.json").read_text())
    law = study["step_law"]
    d = 32768
    assert law["lr_exact"] == pytest.approx(1.79 * law["N"] ** -0.713 * d**0.307) and law["D"] == d
    assert law["batch_size"] == round(0.58 * d**0.571 / 128) == 2
    assert study["protocol"] == "step_law" and study["best"]["config"] == {**study["settings"]["start"]}
    assert sorted(t["seed"] for t in study["trials"]) == [0, 1]
    run = Path(study["trials"][0]["run_dir"])
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert (config["workload"]["batch_size"], config["optimizer"]["lr"]) == (2, law["lr"])
    assert read_summary(run)["budget"]["steps"] == d // (2 * 128)


# --- the fit across scales --------------------------------------------------------------------------------------
def planted_study(root: Path, workload: str, n: int, d: int, optimum: float, noise: float, rng) -> Path:
    """A finished grid study on disk whose score is quadratic in log lr around `optimum` (plus noise)."""
    directory = root / workload / "adamw" / "study-grid"
    trials = []
    for i, lr in enumerate(np.geomspace(optimum / 8, optimum * 8, 7)):
        run = root / workload / "adamw" / f"t{i}" / "seed0"
        run.mkdir(parents=True)
        (run / "summary.json").write_text(
            json.dumps(summary_record(params_non_embedding=n, budget={"tokens": d}, final=None))
        )
        score = 1.0 + (math.log(lr) - math.log(optimum)) ** 2 + noise * rng.standard_normal()
        trial = {"trial": f"t{i}", "config": {"lr": float(lr)}, "seed": 0, "status": "completed", "score": score}
        trials.append({**trial, "run_dir": str(run)})
    best = min(trials, key=lambda t: t["score"])
    space = {"lr": {"low": 1e-5, "high": 1.0, "scale": "log"}}
    study = {
        "optimizer": "adamw",
        "workload": workload,
        "protocol": "grid",
        "status": "completed",
        "settings": {"search_space": space},
        "budget": {},
        "trials": trials,
        "best": {"trial": best["trial"], "config": best["config"]},
    }
    directory.mkdir(parents=True)
    (directory / "study.json").write_text(json.dumps(study))
    return directory


def test_the_fit_recovers_a_planted_power_law(tmp_path):
    """Optimum lr = 0.5 N^-0.3 D^0.1 at five scales: exact vertices recover it to rounding; with noisy scores the
    intervals of the exponents hold the truth."""
    scales = [(100, 1e4), (400, 1e4), (1600, 4e4), (6400, 4e4), (400, 1.6e5)]
    truth = {n_d: 0.5 * n_d[0] ** -0.3 * n_d[1] ** 0.1 for n_d in scales}
    rng = np.random.default_rng(0)
    for noise, root in ((0.0, tmp_path / "exact"), (0.02, tmp_path / "noisy")):
        for i, (n, d) in enumerate(scales):
            planted_study(root, f"w{i}", n, int(d), truth[(n, d)], noise, rng)
        tasks = transfer.load_tasks([str(root)], "adamw")
        assert {t["method"] for t in tasks} == {"vertex"} and {t["along"] for t in tasks} == {"lr line"}
        prediction = transfer.predict(tasks, 25600, int(1.6e5))
        exponents = prediction["laws"]["lr"]["exponents"]
        expected = 0.5 * 25600**-0.3 * 1.6e5**0.1
        if noise == 0:
            assert exponents["log N"][0] == pytest.approx(-0.3, abs=1e-6)
            assert exponents["log D"][0] == pytest.approx(0.1, abs=1e-6)
            assert prediction["config"]["lr"] == pytest.approx(expected, rel=1e-5)
        else:
            assert exponents["log N"][1] < -0.3 < exponents["log N"][2]
            assert exponents["log D"][1] < 0.1 < exponents["log D"][2]
            low, high = prediction["intervals"]["lr"]
            assert low < expected < high
    assert prediction["extrapolated"]  # N = 25,600 lies beyond the tasks'


def test_the_vertex_is_the_parabolas_and_falls_back_to_the_best_point():
    lrs = [0.01, 0.02, 0.04, 0.08, 0.16]
    found = transfer.vertex(lrs, [(math.log(x) - math.log(0.03)) ** 2 for x in lrs])
    assert found["lr"] == pytest.approx(0.03) and found["method"] == "vertex"
    edge = transfer.vertex(lrs, [1.0, 2.0, 3.0, 4.0, 5.0])  # best at the edge: no vertex inside
    assert (edge["lr"], edge["method"]) == (0.01, "best")
    # lm_tiny at 106,496 tokens (an lr grid's final losses): far from a parabola over five points, so the parabola
    # through the best and its neighbours
    grid = [0.001, 0.00215443, 0.00464159, 0.01, 0.0215443, 0.0464159, 0.1]
    kinked = transfer.vertex(grid, [2.6764, 2.5996, 2.8154, 2.9256, 3.0098, 3.0961, 3.1261])
    assert kinked["method"] == "vertex3" and 0.001 < kinked["lr"] < 0.00464159


@pytest.mark.slow
def test_a_transfer_study_predicts_the_next_scale_and_checks_around_it(tmp_path):
    results = tmp_path / "results"
    for workload in ("quadratic", "quadratic_400"):
        grid = sweep(f"workload={workload}", *QUAD, *LR_ONLY, "tuning=grid", "tuning.grid_points=3",
                     f"results_dir={results}", "cluster.slots=2")  # fmt: skip
        assert grid.returncode == 0, grid.stderr[-2000:]
    sources = f"tuning.from=[{results / 'quadratic'},{results / 'quadratic_400'}]"
    args = ["workload=quadratic_1600", *QUAD, *LR_ONLY, "tuning=transfer", sources, f"results_dir={results}"]
    done = sweep(*args, "cluster.slots=2")
    assert done.returncode == 0, done.stderr[-2000:]
    study = json.loads((results / "quadratic_1600/adamw/study-transfer/study.json").read_text())
    predicted = study["transfer"]["config"]["lr"]
    assert study["settings"]["start"] == {"lr": predicted}
    assert sorted(t["config"]["lr"] for t in study["trials"]) == sorted(
        [predicted, float(f"{predicted / 2:.6g}"), float(f"{predicted * 2:.6g}")]
    )
    assert [t["N"] for t in study["transfer"]["tasks"]] == [100, 400] and study["transfer"]["N"] == 1600
    runs = sorted(results.rglob("summary.json"))
    assert sweep(*args, "cluster.slots=2").returncode == 0
    assert sorted(results.rglob("summary.json")) == runs  # finished: a rerun runs nothing
    out = tmp_path / "fit" / "transfer.csv"
    assert analysis_main(["transfer", str(results), "--out", str(out)]) == 0
    rows = [r for r in (out.with_name("transfer_predictions.csv")).read_text().splitlines()[1:]]
    assert len(rows) == 1 and rows[0].startswith("quadratic_1600,")
    assert out.with_suffix(".png").stat().st_size > 0


# --- refined schedules ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("power", [1.0, 2.0])
def test_the_refinement_of_a_constant_gradient_norm_is_linear_decay(power):
    assert refine(np.full(50, 3.0), power, smoothing=0.1) == pytest.approx(np.linspace(1, 0, 50))
    rising = refine(np.linspace(1.0, 2.0, 50), power, smoothing=0.0)  # growing norms: the steps fall faster
    assert rising[0] == 1.0 and np.all(np.diff(rising) < 0) and rising[25] < 0.5


@pytest.mark.slow
def test_gradient_norms_are_logged_and_a_refined_run_follows_them(tmp_path):
    quick = ["workload=quadratic", "optimizer=sgd", "optimizer.lr=0.01", *QUAD, "progress=false"]
    source = cli([*quick, f"results_dir={tmp_path / 'a'}"])
    assert source.returncode == 0, source.stderr
    run = only_run_dir(tmp_path / "a")
    rows = read_metrics(run)
    norms = [g for r in rows for g in r["grad_norms"]]
    assert len(norms) == len([g for r in rows for g in r["grad_norms_l1"]]) == read_summary(run)["budget"]["steps"]
    assert all(a > 0 for a in norms)
    refined = [*quick, "schedule=refined", f"schedule.from={run}", "schedule.smoothing=0"]
    done = cli([*refined, f"results_dir={tmp_path / 'b'}"])
    assert done.returncode == 0, done.stderr
    steps = len(norms)
    after = refine(np.array(norms), 2.0, 0.0)[1:]  # SGD: the l2 form; warmup 5% of 30 steps = 1 step
    schedule = {"name": "refined", "warmup": 0.05, "min_lr_ratio": 0.0}
    expected = [0.01 * lr_multiplier(r["step"] - 1, steps, schedule, weights=tuple(after / after.max())) for r in rows]
    got = read_metrics(only_run_dir(tmp_path / "b"))
    assert [r["lr"] for r in got] == pytest.approx(expected)
    refined_run = only_run_dir(tmp_path / "b")
    config = yaml.safe_load((refined_run / "config.yaml").read_text())
    moved = {**config, "schedule": {**config["schedule"], "from": "/elsewhere/" + "/".join(run.parts[-4:])}}
    assert trial_id(moved) == trial_id(config)  # the source is named by its run's identity, wherever it lies
    # the report puts the two schedules of one configuration side by side
    shutil.copytree(refined_run.parent, run.parents[1] / refined_run.parent.name)
    assert analysis_main(["report", str(tmp_path / "a"), "--out", str(tmp_path / "rep")]) == 0
    table = (tmp_path / "rep" / "tables" / "schedules.csv").read_text()
    assert ",cosine," in table and ",refined," in table
