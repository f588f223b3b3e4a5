"""The analysis package on synthetic tables with known answers, and on run records."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from analysis.__main__ import main as analysis_main
from analysis.collect import collect
from analysis.profile import benchmark_score, median_times, performance_ratios, profile, study_times
from analysis.speedup import speedups
from analysis.tuning import trials_frame
from tests.conftest import FAST, ROOT, cli

ALPHA, B, BETA = 2.0, 0.3, 3.0


def law(D):
    return ALPHA * (np.asarray(D, dtype=float) / 1e8) ** (-B) + BETA


def test_speedup_recovers_a_known_data_multiple():
    budgets = [1e8, 2e8, 4e8, 8e8]
    rows = [{"optimizer": "adamw", "workload": "130m", "budget_tokens": D, "final_metric": law(D)} for D in budgets]
    rows += [
        {"optimizer": "muon", "workload": "130m", "budget_tokens": D, "final_metric": law(1.5 * D)} for D in budgets
    ]
    rows += [{"optimizer": "magic", "workload": "130m", "budget_tokens": 1e8, "final_metric": BETA - 0.01}]
    table = speedups(pd.DataFrame(rows)).points
    muon = table[table.optimizer == "muon"]
    assert np.allclose(muon.speedup, 1.5, atol=1e-3)
    assert (muon.status == "ok").all()
    magic = table[table.optimizer == "magic"].iloc[0]  # below the baseline's asymptote: no data would reach it
    assert magic.status == "above" and magic.speedup == np.inf


def test_speedup_bootstrap_interval_with_seeds():
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(5):
        for D in (1e8, 2e8, 4e8, 8e8):
            rows.append(
                {
                    "optimizer": "adamw",
                    "workload": "s",
                    "budget_tokens": D,
                    "seed": seed,
                    "final_metric": law(D) + rng.normal(0, 0.002),
                }
            )
            rows.append(
                {
                    "optimizer": "soap",
                    "workload": "s",
                    "budget_tokens": D,
                    "seed": seed,
                    "final_metric": law(1.3 * D) + rng.normal(0, 0.002),
                }
            )
    table = speedups(pd.DataFrame(rows), n_boot=100).points
    assert ((table.low <= table.speedup) & (table.speedup <= table.high)).all()
    assert ((table.low < 1.3) & (1.3 < table.high)).mean() >= 0.75
    assert ((table.high - table.low) < 0.3).all()


def test_speedup_needs_three_baseline_budgets():
    rows = [{"optimizer": "adamw", "workload": "s", "budget_tokens": D, "final_metric": law(D)} for D in (1e8, 2e8)]
    with pytest.raises(ValueError, match="has 2 budget"):
        speedups(pd.DataFrame(rows))


def test_hand_computed_profile_and_score():
    df = pd.DataFrame(
        [
            {"optimizer": "a", "workload": "w1", "time_to_target": 10.0},
            {"optimizer": "a", "workload": "w2", "time_to_target": 20.0},
            {"optimizer": "b", "workload": "w1", "time_to_target": 20.0},
            {"optimizer": "b", "workload": "w2", "time_to_target": None},  # missed
            {"optimizer": "c", "workload": "w1", "time_to_target": 50.0},  # ratio 5 > 4: never counts
            {"optimizer": "c", "workload": "w2", "time_to_target": 30.0},  # ratio 1.5
        ]
    )
    ratios = performance_ratios(median_times(study_times(trials_frame(df, required=("optimizer", "workload")))))
    assert ratios.loc["w1"].tolist() == [1.0, 2.0, 5.0] and ratios.loc["w2", "b"] == np.inf
    curve = profile(ratios, taus=[1.0, 1.5, 2.0, 4.0]).set_index(["optimizer", "tau"]).rho
    assert curve["a"].tolist() == [1.0, 1.0, 1.0, 1.0]
    assert curve["b"].tolist() == [0.0, 0.0, 0.5, 0.5]
    assert curve["c"].tolist() == [0.0, 0.5, 0.5, 0.5]
    score = benchmark_score(ratios)
    # area under rho on [1, 4] / 3: a = 1; b = (0.5 * (4 - 2)) / 3; c = (0.5 * (4 - 1.5)) / 3
    assert score["a"] == pytest.approx(1.0)
    assert score["b"] == pytest.approx(1 / 3)
    assert score["c"] == pytest.approx(1.25 / 3)
    # the exact area matches a fine trapezoid rule over the curve
    fine = profile(ratios, taus=np.linspace(1, 4, 30001))
    for opt, group in fine.groupby("optimizer"):
        assert np.trapezoid(group.rho, group.tau) / 3 == pytest.approx(score[opt], abs=1e-3)


def write_run(root, workload, optimizer, trial, seed, final_loss, metrics_lines=None, summary=True):
    run = root / workload / optimizer / trial / f"seed{seed}"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"optimizer": {"name": optimizer, "lr": 1e-3}, "seed": seed}))
    lines = metrics_lines or [json.dumps({"step": s, "tokens": 10 * s, "train_loss": 5.0 - s}) for s in (1, 2)]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    if summary:
        (run / "summary.json").write_text(
            json.dumps(
                {
                    "status": "completed",
                    "workload": workload,
                    "optimizer": optimizer,
                    "seed": seed,
                    "final": {"loss": final_loss},
                    "time_to_target": {"steps": 2, "tokens": 20, "seconds": 1.5},
                    "provenance": {"packages": {"torch": "2.13.0"}},
                }
            )
        )
    return run


def test_collect_is_incremental_and_survives_damaged_runs(tmp_path):
    results = tmp_path / "results"
    write_run(results, "w", "adamw", "t1", 0, 3.5)
    write_run(
        results,
        "w",
        "muon",
        "t2",
        0,
        3.2,
        metrics_lines=[json.dumps({"step": 1, "train_loss": 4.0}), '{"step": 2, "train_lo'],
    )  # killed mid-line
    write_run(results, "w", "lion", "t3", 0, 3.9, summary=False)  # killed before its first summary
    out = tmp_path / "trials.parquet"
    trials, problems, reread = collect([results], out)
    assert reread == 3 and sorted(trials.optimizer) == ["adamw", "muon"]
    assert trials.set_index("optimizer").final_metric.to_dict() == {"adamw": 3.5, "muon": 3.2}
    assert trials.set_index("optimizer")["config.optimizer.lr"].tolist() == [1e-3, 1e-3]
    assert trials.set_index("optimizer")["provenance.packages.torch"].tolist() == ["2.13.0", "2.13.0"]
    reasons = dict(problems)
    assert "missing summary.json" in next(v for k, v in reasons.items() if "lion" in k)
    assert "truncated" in next(v for k, v in reasons.items() if "muon" in k)
    curves = pd.read_parquet(tmp_path / "trials.curves.parquet")
    assert len(curves[curves.run_dir.str.contains("muon")]) == 1

    _, _, reread = collect([results], out)
    assert reread == 1  # only the still-broken directory is looked at again
    write_run(results, "w", "sgd", "t4", 0, 4.1)
    trials, _, reread = collect([results], out)
    assert reread == 2 and sorted(trials.optimizer) == ["adamw", "muon", "sgd"]


def test_collect_reads_a_real_trial(tmp_path):
    results = tmp_path / "results"
    assert cli([*FAST, f"results_dir={results}"]).returncode == 0
    out = tmp_path / "t.parquet"
    assert analysis_main(["collect", str(results), "--out", str(out)]) == 0
    trials = pd.read_parquet(out)
    summary = json.loads(next(results.rglob("summary.json")).read_text())
    assert trials.final_metric.tolist() == [summary["final"]["loss"]]
    assert trials["config.workload.name"].tolist() == ["lm_tiny"]
    curves = pd.read_parquet(tmp_path / "t.curves.parquet")
    assert curves.step.tolist() == [1, 2, 3, 4] and curves["eval/loss"].notna().sum() == 2


def test_commands_write_csv_and_refuse_bad_tables(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"optimizer": ["a"], "tokens": [1]}).to_csv(bad, index=False)
    assert analysis_main(["speedup", "--table", str(bad)]) == 2
    assert "lacks column(s) workload, budget_tokens, final_metric" in capsys.readouterr().err
    assert analysis_main(["profile", "--table", str(tmp_path / "missing.csv")]) == 2
    good = tmp_path / "ttt.csv"
    pd.DataFrame({"optimizer": ["a", "b"], "workload": ["w", "w"], "time_to_target": [1.0, 2.0]}).to_csv(good)
    assert analysis_main(["profile", "--table", str(good), "--out", str(tmp_path / "p.csv")]) == 0
    assert pd.read_csv(tmp_path / "p.csv").set_index("optimizer").score.to_dict() == pytest.approx(
        {"a": 1.0, "b": 2 / 3}
    )


def test_analysis_never_imports_torch():
    code = "import sys, analysis.__main__; assert 'torch' not in sys.modules, 'torch imported'"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env={**os.environ})
    assert proc.returncode == 0, proc.stderr


def clustered_table(seed=0):
    """20 tasks in 4 clusters of the (r1, r2) embedding; the references 'best'/'worst' pin the per-task normalisation
    (and, constant, embed nothing) so the references' normalised values are exactly the embedded points."""
    rng = np.random.default_rng(seed)
    centres = [(0.25, 0.25), (0.25, 0.75), (0.75, 0.25), (0.75, 0.75)]  # a 2x2 grid: low discrepancy for k=4
    rows = []
    for c, (x, y) in enumerate(centres):
        for i in range(5):
            task = f"w{c}_{i}"
            values = {
                "best": 0.0,
                "worst": 1.0,
                "r1": x + rng.uniform(-0.03, 0.03),
                "r2": y + rng.uniform(-0.03, 0.03),
                "o1": 0.2,
                "o2": 0.5 + 0.1 * (c % 2),
                "o3": 0.8,
            }
            rows += [{"optimizer": o, "workload": task, "final_metric": 3 + v} for o, v in values.items()]
    return pd.DataFrame(rows)


def test_subset_picks_one_task_per_cluster(tmp_path):
    from analysis.subset import select

    chosen = select(clustered_table(), k=4, references=["best", "worst", "r1", "r2"], restarts=5)
    assert sorted(t.split("_")[0] for t in chosen.tasks) == ["w0", "w1", "w2", "w3"]
    assert sorted(t.split("_")[0] for t in chosen.second) == ["w0", "w1", "w2", "w3"]
    assert not set(chosen.tasks) & set(chosen.second)
    assert chosen.validation_tau == pytest.approx(1.0)


def test_subset_command_writes_a_config_entry(tmp_path):
    table = tmp_path / "t.csv"
    clustered_table().to_csv(table, index=False)
    conf = tmp_path / "conf" / "subset"
    code = analysis_main(
        [
            "subset",
            "--table",
            str(table),
            "--k",
            "auto",
            "--reference",
            "best,worst,r1,r2",
            "--name",
            "small",
            "--conf-dir",
            str(conf),
            "--out",
            str(tmp_path / "s.csv"),
            "--restarts",
            "3",
        ]
    )
    assert code == 0
    entry = yaml.safe_load((conf / "small.yaml").read_text())
    assert entry["name"] == "small" and entry["reproduces_ranking"] is True
    assert 1 <= len(entry["tasks"]) <= 10 and len(entry["tasks"]) == len(entry["second_set"])
