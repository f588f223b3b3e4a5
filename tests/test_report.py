"""The leaderboard report and its statistics, on synthetic records with known answers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import friedmanchisquare

from analysis.__main__ import main as analysis_main
from analysis.stats import average_ranks, cliques, friedman, friedman_test, nemenyi_cd, rank_rows
from analysis.synthetic import LR_PENALTY, Optimizer, Scale, write_sweep
from analysis.tuning import calibrated_default, trials_frame, tuned_vs_default

OPTIMIZERS = [
    Optimizer("adamw", speedup=1.0, best_lr=1e-3, default_lr=1e-3),
    Optimizer("muon", speedup=1.5, best_lr=2e-2, default_lr=2e-3),
    Optimizer("lion", speedup=0.8, best_lr=1e-4, default_lr=3e-4),
]
SCALES = [Scale("lm_s", 1_000_000, 0.0), Scale("lm_m", 10_000_000, 0.3), Scale("lm_l", 100_000_000, 0.6)]
BUDGETS = [1e8, 2e8, 4e8]
LRS = [1e-4, 1e-3, 2e-2]


def test_friedman_and_nemenyi_reproduce_demsar_worked_example():
    # Demšar (JMLR 2006), section 3.2.2: four C4.5 variants on 14 data sets with mean ranks 3.143, 2.000, 2.893,
    # 1.964 give chi2_F = 9.28 and F_F = 3.69; section 3.2.3: Nemenyi CD = 2.569 * sqrt(4 * 5 / (6 * 14)) = 1.25.
    test = friedman(np.array([3.143, 2.000, 2.893, 1.964]), 14)
    assert test.chi2 == pytest.approx(9.28, abs=0.01)
    assert test.f == pytest.approx(3.69, abs=0.01)
    assert test.p_f < 0.05 < test.p_chi2 * 2  # F_F(3, 39) = 3.69 exceeds its 5% critical value 2.85
    assert nemenyi_cd(4, 14) == pytest.approx(1.25, abs=0.005)
    # Demšar's table 5(a): q_0.05 for k = 2..10 (the CD with N chosen so that sqrt(k(k+1)/6N) = 1)
    for k, q in {2: 1.960, 3: 2.343, 5: 2.728, 10: 3.164}.items():
        assert nemenyi_cd(k, k * (k + 1) / 6) == pytest.approx(q, abs=0.001)


def test_friedman_from_ranks_equals_scipy_on_a_table_without_ties():
    scores = pd.DataFrame(np.random.default_rng(0).normal(size=(12, 5)), columns=list("abcde"))
    ranks = average_ranks(rank_rows(scores))
    assert ranks.sum() == pytest.approx(15.0)  # 1 + ... + 5 per task
    expected = friedmanchisquare(*[scores[c] for c in scores.columns])
    test = friedman_test(rank_rows(scores))
    assert test.chi2 == pytest.approx(expected.statistic) and test.p_chi2 == pytest.approx(expected.pvalue)


def test_cliques_join_only_ranks_closer_than_the_critical_difference():
    ranks = pd.Series({"a": 1.0, "b": 1.6, "c": 2.4, "d": 4.0})
    assert cliques(ranks, 1.0) == [["a", "b"], ["b", "c"]]
    assert cliques(ranks, 0.5) == []
    assert cliques(ranks, 5.0) == [["a", "b", "c", "d"]]


def sweep_table(tmp_path, seeds=2):
    write_sweep(tmp_path / "results", OPTIMIZERS, SCALES[:2], BUDGETS[:2], LRS, seeds=seeds, rows=20)
    assert analysis_main(["collect", str(tmp_path / "results"), "--out", str(tmp_path / "t.parquet")]) == 0
    return pd.read_parquet(tmp_path / "t.parquet")


def test_tuned_versus_default_and_calibrated_default(tmp_path):
    trials = trials_frame(sweep_table(tmp_path))
    table = tuned_vs_default(trials).set_index(["task", "optimizer"])
    assert len(table) == 2 * 2 * 3  # scales x budgets x optimizers
    muon = table.xs("muon", level="optimizer")
    # the default lr (2e-3) is one decade below the best (2e-2): tuning gains exactly LR_PENALTY * 1^2, measured on
    # seed 1 (the selection was made on seed 0)
    assert np.allclose(muon.gap, LR_PENALTY, atol=1e-9)
    assert (muon.configs_tried == 4).all() and (muon.seeds == 1).all()
    assert all(json.loads(h)["lr"] == 2e-2 for h in muon.tuned_hparams)
    assert np.allclose(table.xs("adamw", level="optimizer").gap, 0.0)  # its default is its best
    calibrated = calibrated_default(trials).set_index("optimizer")
    assert json.loads(calibrated.loc["lion", "calibrated_hparams"])["lr"] == 1e-4
    assert calibrated.tasks.tolist() == [4, 4, 4] and np.allclose(calibrated.gap, 0.0)


def test_calibrated_default_is_scored_on_the_workload_it_was_not_chosen_on():
    # x's lr1 is best on workload a, lr2 on b; y sets each task's worst result (normalised range a: 1..3, b: 2..4)
    cells = [("x", "a", "lr1", 1.0), ("x", "a", "lr2", 1.2), ("x", "b", "lr1", 3.0), ("x", "b", "lr2", 2.0)]
    cells += [("y", "a", "", 3.0), ("y", "b", "", 4.0)]
    rows = [{"optimizer": o, "workload": w, "hparams": h, "final_metric": v} for o, w, h, v in cells]
    result = calibrated_default(trials_frame(pd.DataFrame(rows))).set_index("optimizer").loc["x"]
    assert result.calibrated_hparams == "lr2"  # mean normalised (0.1 + 0) / 2, against lr1's (0 + 0.5) / 2
    assert result.in_sample == pytest.approx(0.05)
    # held out a: chosen on b (lr2), scores 0.1 on a; held out b: chosen on a (lr1), scores 0.5 on b
    assert result.held_out == pytest.approx(0.3)
    assert result.tuned_per_task == pytest.approx(0.0) and result.gap == pytest.approx(0.3)


def test_report_from_run_directories(tmp_path):
    table = sweep_table(tmp_path)
    # one trial of lm_s ran on other hardware: the provenance section must say so
    moved = next(p for p in (tmp_path / "results" / "lm_s").rglob("summary.json"))
    summary = json.loads(moved.read_text())
    summary["provenance"]["device"] = "NVIDIA H100"
    moved.write_text(json.dumps(summary))
    out = tmp_path / "report"
    assert analysis_main(["report", str(tmp_path / "results"), "--out", str(out)]) == 0

    page = (out / "index.html").read_text()
    pngs = sorted(p.stem for p in (out / "figures").glob("*.png"))
    assert page.count("data:image/png;base64,") == len(pngs) >= 6  # self-contained: every figure embedded
    assert 'src="figures/' not in page
    assert {"performance_profile", "critical_difference", "lr_sensitivity"} <= set(pngs)
    for stem in pngs:  # the numbers behind every figure
        assert (out / "tables" / f"{stem}.csv").is_file()

    board = pd.read_csv(out / "tables" / "leaderboard.csv").set_index("optimizer")
    assert board.trials.to_dict() == table.groupby("optimizer").size().to_dict()
    assert board.mean_rank.to_dict() == {"muon": 1.0, "adamw": 2.0, "lion": 3.0}
    assert board.profile_score.idxmax() == "muon"
    md = (out / "leaderboard.md").read_text()
    assert "## Leaderboard" in md and "| muon |" in md and "![critical_difference]" in md
    # two budgets per scale are too few for the data-equivalent fit: the section says so instead of guessing
    assert "Speedup versus scale\n\nNot available" in md

    warnings = pd.read_csv(out / "tables" / "provenance_warnings.csv")
    assert len(warnings) == 1 and warnings.mixed[0] == "hardware" and warnings.task[0].startswith("lm_s @ ")
    assert "NVIDIA H100 (1 trials)" in warnings["values"].iloc[0]


@pytest.mark.slow
def test_report_speedup_curves_across_scales(tmp_path):
    write_sweep(tmp_path / "r", OPTIMIZERS[:2], SCALES, BUDGETS, [1e-3, 2e-2], seeds=3, rows=10, noise=0.002)
    out = tmp_path / "report"
    assert analysis_main(["report", str(tmp_path / "r"), "--out", str(out)]) == 0
    speedups = pd.read_csv(out / "tables" / "speedup_vs_scale.csv")
    assert speedups.workload.tolist() == ["lm_s", "lm_m", "lm_l"]  # ordered by model size, not by name
    assert np.allclose(speedups.speedup, 1.5, atol=0.1)
    assert ((speedups.low <= 1.5) & (1.5 <= speedups.high)).all() and (speedups.seeds == 2).all()  # seeds 1, 2
    assert "1.5 [" in pd.read_csv(out / "tables" / "leaderboard.csv").set_index("optimizer").loc["muon", "speedup lm_l"]


def test_report_from_an_external_csv_and_bad_input(tmp_path, capsys):
    csv = tmp_path / "published.csv"
    pd.DataFrame(
        {
            "optimizer": ["a", "b", "a", "b", "a", "b"],
            "workload": ["w1", "w1", "w2", "w2", "w3", "w3"],
            "final_metric": [3.0, 3.1, 2.0, 2.5, 1.0, 0.9],
        }
    ).to_csv(csv, index=False)
    out = tmp_path / "report"
    assert analysis_main(["report", str(csv), "--out", str(out)]) == 0
    md = (out / "leaderboard.md").read_text()
    assert "Eval metric over training\n\nNot available" in md
    assert pd.read_csv(out / "tables" / "leaderboard.csv").set_index("optimizer").mean_rank.to_dict() == {
        "a": pytest.approx(4 / 3),
        "b": pytest.approx(5 / 3),
    }
    (tmp_path / "empty").mkdir()
    assert analysis_main(["report", str(tmp_path / "empty"), "--out", str(tmp_path / "r2")]) == 2
    assert "no trials" in capsys.readouterr().err
