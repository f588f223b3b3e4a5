"""Every statistic the report draws, on synthetic records whose true answer is known (issue: conclusions a
statistician would sign): selection and scoring on different seeds, workloads as blocks, AlgoPerf's profile rule,
held-out subset validation, speedup intervals that cover, one policy for diverged and failed runs."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from scipy.stats import friedmanchisquare

from analysis import figures
from analysis.profile import median_times, performance_ratios, score_cap, scores, study_times
from analysis.report import Report, fmt, readable, with_interval
from analysis.speedup import speedup_label, speedups
from analysis.stats import friedman_test, nemenyi_cd, rank_rows, seeds_needed, workload_ranks
from analysis.subset import normalise, select, task_matrix
from analysis.tuning import expected_best, trials_frame, tuned_results, tuned_vs_default


def rows_of(cells, **common):
    return pd.DataFrame([{**common, **cell} for cell in cells])


# --- 1. tuned versus default: selected on one seed, scored on others ------------------------------------------
def test_tuned_versus_default_is_unbiased_when_every_configuration_is_the_same():
    """8 identical configurations, pure noise (sd 0.02): in-sample the gap was +0.030 on average and positive 88% of
    the time; selected on seed 0 and scored on seeds 1 and 2 it is centred on 0 and as often negative."""
    rng = np.random.default_rng(0)
    cells = []
    for w in range(200):
        for c in range(8):
            seeds = (0, 1, 2) if c == 0 else (0,)
            cells += [
                {
                    "workload": f"w{w}",
                    "hparams": f"c{c}",
                    "default": c == 0,
                    "seed": s,
                    "final_metric": 1.0 + 0.02 * rng.standard_normal(),
                }
                for s in seeds
            ]
    trials = trials_frame(rows_of(cells, optimizer="x"))
    # the sweep reruns the tuned configuration on seeds 1, 2 as well
    tuned = tuned_results(trials)
    extra = [
        {
            "workload": r.workload,
            "hparams": r.hparams,
            "default": r.hparams == "c0",
            "seed": s,
            "final_metric": 1.0 + 0.02 * rng.standard_normal(),
        }
        for r in tuned.itertuples()
        if r.hparams != "c0"
        for s in (1, 2)
    ]
    trials = trials_frame(pd.concat([rows_of(cells, optimizer="x"), rows_of(extra, optimizer="x")]))
    table = tuned_vs_default(trials)
    assert (table.seeds == 2).all()
    assert abs(table.gap.mean()) < 0.006  # the in-sample estimate was +0.030
    assert 0.35 < (table.gap > 0).mean() < 0.65  # it was 0.88
    within = table.note.eq("within the seed noise").mean()
    assert within > 0.9  # and the report says so (a t interval: 95% under the null)


def test_a_diverged_default_is_reported_as_rescued_not_left_blank():
    cells = [
        {"hparams": "tuned", "seed": 0, "final_metric": 1.0},
        {"hparams": "default", "seed": 0, "final_metric": 2.0, "default": True},
        {"hparams": "tuned", "seed": 1, "final_metric": 1.1},
        {"hparams": "default", "seed": 1, "final_metric": np.nan, "status": "diverged", "default": True},
    ]
    table = tuned_vs_default(trials_frame(rows_of(cells, optimizer="x", workload="w").fillna({"default": False})))
    assert table.note.iloc[0].startswith("default diverged on 1 of 1 seeds (tuning rescued it)")
    assert np.isnan(table.gap.iloc[0])
    single = tuned_vs_default(trials_frame(rows_of(cells[:2], optimizer="x", workload="w").fillna({"default": False})))
    assert single.note.iloc[0].startswith("not measured: no scoring seed")


def test_a_tie_on_the_search_seed_is_broken_as_the_sweep_breaks_it():
    """Two configurations tie on seed 0 (cnn_digits' accuracy moves in steps of one image); the sweep keeps the one
    whose values sort first as numbers (5.6e-07 before 4.2e-05) and scores it on seeds 1 and 2. The analysis must
    pick the same one, not the one whose text sorts first ('4.2e-05' < '5.6e-07'), which has no scoring seed."""
    small, large = json.dumps({"reps_rel": 5.56684e-07}), json.dumps({"reps_rel": 4.17454e-05})
    cells = [
        {"hparams": large, "seed": 0, "final_metric": 0.99},
        {"hparams": small, "seed": 0, "final_metric": 0.99},
        {"hparams": small, "seed": 1, "final_metric": 0.98},
        {"hparams": small, "seed": 2, "final_metric": 0.97},
    ]
    frame = trials_frame(rows_of(cells, optimizer="dog", workload="w", lower_is_better=False))
    tuned = tuned_results(frame).iloc[0]
    assert tuned.hparams == small and not tuned.in_sample and tuned.seeds == 2


# --- 3. Friedman / Nemenyi: independent workloads are the blocks ------------------------------------------------
def four_optimizers_two_workloads_four_budgets(agree=True):
    cells = []
    for w, b in itertools.product(("w1", "w2"), (1e6, 2e6, 4e6, 8e6)):
        for i, o in enumerate("abcd"):
            cells.append(
                {
                    "workload": w,
                    "budget_tokens": b,
                    "optimizer": o,
                    "final_metric": float(i if agree else (i * 7 + b) % 4),
                }
            )
    return trials_frame(pd.DataFrame(cells))


def test_friedman_counts_workloads_not_budgets_as_blocks(tmp_path):
    """Demšar: 4 optimizers ranked alike on 2 workloads x 4 budgets. Pooled as 8 blocks: p = 2.5e-5, CD 1.66; the 2
    independent workloads give chi2 = 6, p = 0.112 and CD = 2.569 * sqrt(20 / 12) = 3.317."""
    trials = four_optimizers_two_workloads_four_budgets()
    scores_ = trials.pivot_table(index="task", columns="optimizer", values="score")
    ranks = workload_ranks(scores_, trials.groupby("task").workload.first())
    assert ranks.shape == (2, 4)
    test = friedman_test(ranks)
    assert test.chi2 == pytest.approx(6.0) and test.p_chi2 == pytest.approx(0.1116, abs=1e-3)
    assert nemenyi_cd(4, len(ranks)) == pytest.approx(3.317, abs=1e-3)
    section = Report(trials, None, tmp_path).ranks_section()
    assert "N = 2 independent workloads" in section.text[0]
    assert "identically" in section.text[0] and "inf" not in section.text[0]  # perfect agreement: a sentence


def test_friedman_tie_correction_equals_scipy():
    rng = np.random.default_rng(3)
    table = pd.DataFrame(rng.integers(0, 3, size=(10, 5)).astype(float), columns=list("abcde"))  # many ties
    table.iloc[:, 4] = np.inf  # a diverged optimizer: worst everywhere
    table.iloc[::3, 3] = np.inf  # another, tied with it on some tasks
    expected = friedmanchisquare(*[table[c].to_numpy() for c in table.columns])
    test = friedman_test(rank_rows(table))
    assert test.chi2 == pytest.approx(expected.statistic) and test.p_chi2 == pytest.approx(expected.pvalue)


# --- 4. AlgoPerf's profile rule --------------------------------------------------------------------------------
def test_profile_takes_the_fastest_trial_per_study_and_the_median_over_studies_with_misses_infinite():
    inf = np.inf
    cells = [  # a reaches both targets on every seed; b is fast but misses w2 on 2 of 3 seeds
        *({"optimizer": "a", "workload": "w1", "seed": s, "time_to_target": 10.0} for s in range(3)),
        *({"optimizer": "a", "workload": "w2", "seed": s, "time_to_target": 20.0} for s in range(3)),
        *({"optimizer": "b", "workload": "w1", "seed": s, "time_to_target": 10.0} for s in range(3)),
        {"optimizer": "b", "workload": "w2", "seed": 0, "time_to_target": 10.0},
        {"optimizer": "b", "workload": "w2", "seed": 1, "time_to_target": inf},
        {"optimizer": "b", "workload": "w2", "seed": 2, "time_to_target": inf},
        # c: in its seed-0 study one configuration reached w1 at 30, another at 5: the study's time is 5
        {"optimizer": "c", "workload": "w1", "seed": 0, "hparams": "slow", "time_to_target": 30.0},
        {"optimizer": "c", "workload": "w1", "seed": 0, "hparams": "fast", "time_to_target": 5.0},
    ]
    times = study_times(trials_frame(pd.DataFrame(cells), required=("optimizer", "workload")))
    medians = median_times(times)
    assert medians.loc["w2", "b"] == inf and medians.loc["w1", "c"] == 5.0
    ratios = performance_ratios(medians)
    assert np.isnan(ratios.loc["w2", "c"])  # c never ran w2: not run, not a miss
    table = scores(times, n_boot=200)
    # a: w1 ratio 2 (c was fastest), w2 ratio 1 -> (2 + 3) / 2 / 3; b: w1 ratio 2, w2 missed -> 2 / 2 / 3 (the old
    # rule dropped b's misses and scored it 1.0 on w2); c: w1 ratio 1 over the one task it ran -> 1.0
    assert table.score.to_dict() == pytest.approx({"a": 5 / 6, "b": 1 / 3, "c": 1.0})
    assert table.loc["c", "tasks_run"] == 1 and table.loc["b", "tasks_reached"] == 1
    assert ((table.low <= table.score) & (table.score <= table.high)).all()
    assert table.loc["b", "high"] > table.loc["b", "score"]  # resampling b's studies can make it reach w2


def test_profile_says_when_no_optimizer_reached_a_target():
    cells = [
        {"optimizer": "a", "workload": "w1", "time_to_target": 1.0},
        {"optimizer": "a", "workload": "w2", "time_to_target": np.inf},
        {"optimizer": "b", "workload": "w2", "time_to_target": np.inf},
    ]
    times = study_times(trials_frame(pd.DataFrame(cells), required=("optimizer", "workload")))
    assert score_cap(performance_ratios(median_times(times))) == (1, 2)  # every score is at most 0.5


# --- 5. subsets: tuned results, held-out validation, compared with random subsets -------------------------------
def test_subset_uses_each_optimizers_tuned_result_and_diverged_is_worst():
    cells = []
    for w in ("t1", "t2"):
        cells += [
            {"workload": w, "optimizer": "x", "hparams": h, "final_metric": v}
            for h, v in (("good", 3.0), ("bad1", 5.0), ("bad2", 5.0))
        ]
        cells += [{"workload": w, "optimizer": "y", "final_metric": 3.3}]
        cells += [
            {"workload": w, "optimizer": "z", "seed": s, "final_metric": 2.0, "status": st}
            for s, st in ((0, "completed"), (1, "diverged"), (2, "diverged"))
        ]
    matrix = task_matrix(pd.DataFrame(cells))
    assert (matrix.x < matrix.y).all()  # x's tuned 3.0 beats y's 3.3 (pooled medians said otherwise)
    assert np.isinf(matrix.z).all()  # diverged on 2 of its 3 scoring seeds: the worst, never the best
    normalised = normalise(matrix, ["x", "y"])
    assert (normalised.z >= 1).all() and (normalised.x == 0).all()


def test_subset_names_the_missing_results_and_the_sweep_that_supplies_them():
    cells = [{"workload": "t1", "optimizer": o, "final_metric": 1.0} for o in ("x", "y")]
    cells += [{"workload": "t2", "optimizer": "x", "final_metric": 1.0}]
    with pytest.raises(ValueError, match="missing: y on t2.*`python -m suite.sweep optimizer=y workload=t2`"):
        task_matrix(pd.DataFrame(cells))


def test_subset_validation_holds_out_the_other_optimizers_and_compares_with_random_subsets():
    rng = np.random.default_rng(0)
    cells = []
    for t in range(12):  # every task ranks the held-out optimizers alike: any subset reproduces their ranking
        values = {"r1": rng.uniform(), "r2": rng.uniform(), "r3": rng.uniform(), "h1": 0.1, "h2": 0.5, "h3": 0.9}
        cells += [{"workload": f"t{t}", "optimizer": o, "final_metric": v} for o, v in values.items()]
    table = pd.DataFrame(cells)
    chosen = select(table, k=3, references=["r1", "r2", "r3"], restarts=2)
    assert chosen.validation_tau == pytest.approx(1.0) and chosen.random_share == pytest.approx(1.0)
    assert chosen.verdict().startswith("not better than random")
    # the held-out optimizers play no part in the embedding's normalisation
    moved = table.assign(final_metric=np.where(table.optimizer == "h3", 100.0, table.final_metric))
    assert normalise(task_matrix(moved), ["r1", "r2", "r3"])[["r1", "r2", "r3"]].equals(
        normalise(task_matrix(table), ["r1", "r2", "r3"])[["r1", "r2", "r3"]]
    )


# --- 6. speedups: intervals that cover, no nonsense fits, no far extrapolation ----------------------------------
def law(D):
    return 2.0 * (np.asarray(D, dtype=float) / 1e8) ** -0.3 + 3.0


@pytest.mark.slow
def test_speedup_intervals_cover_the_true_speedup_in_simulated_studies():
    """200 simulated studies (3 budgets, 3 seeds, noise 0.01, true speedup 1.5): the nominal 95% intervals, per
    budget and per scale, cover the truth at least 93% of the time (the seed bootstrap covered it 85%)."""
    points, summaries = [], []
    for i in range(200):
        rng = np.random.default_rng(1000 + i)
        cells = [
            {
                "workload": "w",
                "optimizer": o,
                "budget_tokens": D,
                "seed": s,
                "final_metric": law(m * D) + 0.01 * rng.standard_normal(),
            }
            for o, m in (("adamw", 1.0), ("muon", 1.5))
            for D in (1e8, 2e8, 4e8)
            for s in range(3)
        ]
        result = speedups(pd.DataFrame(cells), n_boot=200, seed=i)
        points += list((result.points.low <= 1.5) & (1.5 <= result.points.high))
        summaries += list((result.summary.low <= 1.5) & (1.5 <= result.summary.high))
    assert np.mean(points) >= 0.93 and np.mean(summaries) >= 0.93


def test_speedup_rejects_nonsense_fits_and_does_not_extrapolate_far():
    budgets = (1e8, 2e8, 4e8)
    rising = [{"workload": "w", "optimizer": "adamw", "budget_tokens": D, "final_metric": 3 + D / 1e9} for D in budgets]
    rising += [{"workload": "w", "optimizer": "o", "budget_tokens": 1e8, "final_metric": 3.1}]
    point = speedups(pd.DataFrame(rising)).points.iloc[0]
    assert (
        point.status == "no fit"
        and speedup_label(point.speedup, point.low, point.high, point.cap, point.floor) == "no fit"
    )
    far = [{"workload": "w", "optimizer": "adamw", "budget_tokens": D, "final_metric": law(D)} for D in budgets]
    far += [{"workload": "w", "optimizer": "o", "budget_tokens": 4e8, "final_metric": law(3 * 4e8)}]  # needs 3x
    point = speedups(pd.DataFrame(far)).points.iloc[0]
    assert (
        point.status == "above" and speedup_label(point.speedup, point.low, point.high, point.cap, point.floor) == "> 2"
    )


# --- 7, 8. one policy for diverged, failed and not-run; the leaderboard of a small study ------------------------
def small_study():
    cells = []
    for w, base in (("w1", 1.0), ("w2", 2.0)):
        for o, offset in (("a", 0.0), ("b", 0.1), ("c", 0.2)):
            if o == "c" and w == "w2":
                continue  # c never ran w2
            for s in range(3):
                cells.append({"workload": w, "optimizer": o, "seed": s, "final_metric": base + offset + 0.001 * s})
    cells.append({"workload": "w1", "optimizer": "b", "seed": 3, "hparams": "x", "status": "failed", "error": "OOM"})
    cells.append({"workload": "w2", "optimizer": "a", "seed": 0, "hparams": "hot", "status": "diverged", "lr": 1.0})
    return pd.DataFrame(cells)


def test_leaderboard_of_a_small_study_shows_per_task_results_and_never_counts_not_run_as_a_miss(tmp_path):
    report = Report(small_study(), None, tmp_path)
    section = report.leaderboard(study_times(report.trials), None)
    board = section.tables[0][1].set_index("optimizer")
    assert board.loc["c", "w2"] == "not run"
    # one configuration on w1: nothing was selected, every seed scores; on w2 a second ("hot") ran on seed 0, where
    # the selection was made, so seeds 1 and 2 score
    assert board.loc["a", "w1"].startswith("1.001") and "(n=3)" in board.loc["a", "w1"]
    assert board.loc["a", "w2"].startswith("2.0015") and "(n=2)" in board.loc["a", "w2"]
    assert list(board.index) == ["a", "b", "c"]  # by mean rank, the stated primary measure
    assert any("Left out of the ranks" in t and "w2" in t for t in section.text)
    failed = report.failed_section()
    assert failed.tables[0][1].error.tolist() == ["OOM"]


def test_diverged_configurations_are_drawn_in_the_learning_rate_plot(tmp_path):
    cells = small_study().assign(lr=lambda d: d.lr.fillna(1e-3) if "lr" in d else 1e-3)
    report = Report(cells, None, tmp_path)
    section = report.lr_section()
    numbers = pd.read_csv(tmp_path / "tables" / "lr_sensitivity.csv")
    assert numbers.diverged.sum() == 1 and section.figures == ["lr_sensitivity"]


def test_a_coarse_metric_is_ranked_by_held_out_loss_while_selection_stays_on_the_metric(tmp_path):
    cells = []  # on a digits-like task the two tie on accuracy; b's held-out loss is lower
    for o, loss in (("a", 0.05), ("b", 0.02)):
        for s in range(3):
            cells.append({"workload": "digits", "optimizer": o, "seed": s, "final_metric": 0.99, "final.loss": loss})
            cells.append(
                {
                    "workload": "digits",
                    "optimizer": o,
                    "seed": s,
                    "hparams": "worse",
                    "final_metric": 0.9,
                    "final.loss": 0.01,
                }
            )
    for o, value in (("a", 1.0), ("b", 2.0)):  # a second workload, ranked by its own metric (a loss)
        cells += [
            {"workload": "lm", "optimizer": o, "seed": s, "final_metric": value, "final.loss": value} for s in range(3)
        ]
    table = pd.DataFrame(cells).assign(lower_is_better=lambda d: d.workload == "lm")
    report = Report(table, None, tmp_path, rank_by={"digits": "loss"})
    tuned = report.tuned.set_index(["task", "optimizer"])
    assert (tuned.hparams == "").all()  # selected by accuracy: the low-loss "worse" configuration is not chosen
    assert tuned.loc[("digits", "b"), "rank_score"] == pytest.approx(0.02)
    ranks, _ = report.block_ranks()
    assert ranks.loc["digits"].to_dict() == {"a": 2.0, "b": 1.0} and ranks.loc["lm"].to_dict() == {"a": 1.0, "b": 2.0}
    cell = report.task_cells().loc["b", "digits"]
    assert cell.startswith("loss 0.02") and "accuracy" not in cell and "0.99" in cell  # (no metric_name column)


def test_sections_without_data_say_what_is_missing_and_the_command_that_supplies_it(tmp_path):
    report = Report(small_study()[lambda d: d.workload == "w1"], None, tmp_path)
    assert "workload.tokens=" in report.speedup_section(None).text[0]
    text = report.ranks_section().text[0]
    assert "python -m suite.sweep optimizer=a,b,c workload=w1,quadratic" in text


# --- 11. readability ---------------------------------------------------------------------------------------------
def test_numbers_are_rounded_to_their_noise_and_hyperparameters_read_as_text():
    assert fmt(-1.388e-17) == "0" and fmt(1.11e-16) == "0"
    assert with_interval(2.03456, 2.0212, 2.0478, 3) == "2.035 [2.021, 2.048] (n=3)"
    assert with_interval(-0.0001, -0.02, 0.02) == "0.000 [-0.020, 0.020]"
    assert readable('{"betas": [0.9, 0.95], "lr": 0.001}') == "betas=(0.9, 0.95), lr=0.001"


def test_no_figure_clips_a_label():
    styles = figures.palette([f"optimizer_with_a_long_name_{i}" for i in range(12)])
    names = list(styles)
    ranks = pd.Series(np.linspace(1, 12, 12), index=names)
    curve = pd.DataFrame([{"optimizer": o, "tau": t, "rho": min(1.0, t / 4)} for o in names for t in (1.0, 2.0, 4.0)])
    lr = pd.DataFrame(
        [
            {"task": f"task {t}", "optimizer": o, "lr": rate, "final_metric": 1 + rate, "diverged": rate > 0.5}
            for t in range(4)
            for o in names
            for rate in (1e-3, 1e-2, 1.0)
        ]
    )
    cost = pd.DataFrame(
        [
            {"task": "t", "optimizer": o, "k": k, "expected_best": 1 / k, "seconds": 10.0 * k}
            for o in names
            for k in (1, 2, 3)
        ]
    )
    curves = pd.DataFrame(
        [
            {"optimizer": o, "tokens": s * 100, "seconds": s, "median": 1 / s, "low": 0.9 / s, "high": 1.1 / s}
            for o in names
            for s in range(1, 6)
        ]
    )
    speed = pd.DataFrame(
        [
            {"workload": f"lm_{i}", "order": i, "optimizer": o, "speedup": 1.2, "low": 1.1, "high": 1.3}
            for i in range(3)
            for o in names
        ]
    )
    drawn = [
        figures.critical_difference_plot(ranks, 2.5, [names[:4], names[3:8]], 3),
        figures.profile_plot(curve, styles),
        figures.lr_sensitivity_plot(lr, styles),
        figures.tuning_cost_plot(cost, styles),
        figures.curve_plot(curves, "loss", styles, {"target": 0.5, "optimum": 0.2}),
        figures.speedup_plot(speed, styles),
    ]
    for fig in drawn:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        box = fig.bbox
        parts = [ax.get_tightbbox(renderer) for ax in fig.axes] + [g.get_window_extent(renderer) for g in fig.legends]
        for part in parts:  # every drawn label, tick label, title, text and legend lies inside the figure
            assert part.x0 >= box.x0 - 1 and part.x1 <= box.x1 + 1 and part.y0 >= box.y0 - 1 and part.y1 <= box.y1 + 1
    assert len({tuple(s["color"]) + (s["linestyle"], s["marker"]) for s in styles.values()}) == 12


# --- beyond the anchors: tuning-cost curves and seed counts -----------------------------------------------------
def test_expected_best_after_k_trials_is_exact_without_replacement():
    assert expected_best(np.array([4.0, 1.0, 3.0, 2.0]), 2) == pytest.approx(1 * 3 / 6 + 2 * 2 / 6 + 3 * 1 / 6)
    values = np.random.default_rng(0).normal(size=7)
    for k in range(1, 8):
        brute = np.mean([min(c) for c in itertools.combinations(values, k)])
        assert expected_best(values, k) == pytest.approx(brute)


def test_seeds_needed_for_a_difference_at_80_percent_power():
    # 2 (1.95996 + 0.84162)^2 = 15.7: 16 seeds per arm to detect one standard deviation
    assert seeds_needed(1.0, 1.0) == 16 and seeds_needed(1.0, 0.5) == 63
    assert np.isnan(seeds_needed(np.nan, 1.0))


# --- 9. collect and report on ordinary mixes; nothing half-written -------------------------------------------------
def write_record(root, name, slots, final=1.0):
    import json

    import yaml

    run = root / name / "seed0"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(
        yaml.safe_dump({"optimizer": {"name": "adamw", "lr": 1e-3}, "cluster": {"slots": slots}})
    )
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "tokens": 8, "train_loss": final}) + "\n")
    summary = {"status": "completed", "workload": "w", "optimizer": "adamw", "seed": 0, "final": {"loss": final}}
    (run / "summary.json").write_text(json.dumps(summary))


def test_collect_loads_config_values_of_mixed_types_and_a_failed_collect_leaves_nothing_behind(tmp_path, monkeypatch):
    from analysis import collect as collect_module

    results, out = tmp_path / "results", tmp_path / "t.parquet"
    write_record(results, "main", "auto")  # the README's main job
    trials, _, _ = collect_module.collect([results], out)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and results not in p.parents}
    write_record(results, "sweep", 2)  # then a cluster.slots=2 sweep: the same column, another type
    trials, _, _ = collect_module.collect([results], tmp_path / "mixed.parquet")
    assert sorted(pd.read_parquet(tmp_path / "mixed.parquet")["config.cluster.slots"]) == ["2", "auto"]

    def broken(*args):
        raise OSError("disk full")

    monkeypatch.setattr(collect_module, "write_trials", broken)
    with pytest.raises(OSError, match="disk full"):
        collect_module.collect([results], out)
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and results not in p.parents}
    after = {p: b for p, b in after.items() if not p.relative_to(tmp_path).parts[0].startswith("mixed")}
    assert after == before  # no new curve part, no temporary file, the previous outputs unchanged


def test_a_failed_report_leaves_the_previous_report_as_it_was(tmp_path, monkeypatch):
    from analysis import report as report_module

    out = tmp_path / "report"
    report_module.report(small_study(), None, out, "small")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def broken(self):
        raise ValueError("boom")

    monkeypatch.setattr(report_module.Report, "ranks_section", broken)
    with pytest.raises(ValueError, match="boom"):
        report_module.report(small_study(), None, out, "small")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert not [p for p in out.iterdir() if p.name.startswith(".report-")]


@pytest.mark.skipif(shutil.which("chromium") is None, reason="no headless chromium here (apt install chromium)")
def test_the_report_page_renders_in_a_headless_browser_without_overflowing(tmp_path):
    from analysis.report import report
    from analysis.synthetic import Optimizer, Scale, write_sweep

    optimizers = [Optimizer("adamw", 1.0, 1e-3, 1e-3), Optimizer("muon", 1.5, 2e-2, 2e-3)]
    write_sweep(tmp_path / "r", optimizers, [Scale("lm_s", 10**6, 0.0)], [1e8, 2e8, 4e8], [1e-3, 2e-2], 3, 20, 0.002)
    from analysis.collect import collect, companion_paths

    trials, _, _ = collect([tmp_path / "r"], tmp_path / "t.parquet")
    _, (page, _) = report(trials, companion_paths(tmp_path / "t.parquet")[0], tmp_path / "report", "r")
    shot = tmp_path / "page.png"
    command = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    command += [f"--screenshot={shot}", "--window-size=1200,6000", page.as_uri()]
    subprocess.run(command, capture_output=True, timeout=180, check=False)
    image = plt.imread(shot)
    assert image.shape[1] == 1200 and len(np.unique(image.reshape(-1, image.shape[2]), axis=0)) > 50  # drawn
    assert (image[:, -40:, :3] > 0.99).all()  # nothing spills past the page's column: no table or figure is cut


@pytest.mark.slow
def test_a_published_leaderboard_regenerates_to_the_same_tables_and_a_change_is_caught(tmp_path):
    from analysis.__main__ import main
    from analysis.publish import PROVENANCE, regenerated_differences
    from analysis.synthetic import Optimizer, Scale, write_sweep

    optimizers = [Optimizer("adamw", 1.0, 1e-3, 1e-3), Optimizer("muon", 1.5, 2e-2, 2e-3)]
    write_sweep(tmp_path / "r", optimizers, [Scale("lm_s", 10**6, 0.0)], [1e8, 2e8, 4e8], [1e-3, 2e-2], 3, 10, 0.002)
    out = tmp_path / "board"
    assert main(["publish", str(tmp_path / "r"), "--out", str(out), "--time", "tokens"]) == 0
    record = json.loads((out / PROVENANCE).read_text())
    # (adamw: 2 learning rates, muon: 3 with its default) x 3 budgets x 3 seeds
    assert record["compute"]["trials"] == (2 + 3) * 3 * 3 and record["regenerate"].endswith("--time tokens")
    assert (out / "leaderboard.md").is_file() and not list(out.rglob("summary.json"))  # no run directories
    assert regenerated_differences(out, main) == []
    table = out / "tables" / "leaderboard.csv"
    table.write_text(table.read_text().replace("muon", "nuon"))  # a published number the code no longer computes
    assert regenerated_differences(out, main)[0].startswith("leaderboard.csv")


# --- known answers for the small statistics every table leans on ---------------------------------------------------
def test_t_interval_is_students_on_known_values():
    from scipy.stats import t

    from analysis.stats import t_interval

    assert t_interval([1.0, 3.0]) == pytest.approx((2 - t.ppf(0.975, 1), 2 + t.ppf(0.975, 1)))  # sd √2, se 1
    assert t_interval([1.0, 2.0, 3.0]) == pytest.approx((2 - 4.302653 / 3**0.5, 2 + 4.302653 / 3**0.5))
    assert all(np.isnan(t_interval([1.0])))
    assert all(np.isnan(t_interval([1.0, np.inf])))


def test_the_metric_lost_by_a_prediction_is_paired_over_the_common_scoring_seeds():
    from analysis.transfer import lost

    mean, low, high, n = lost({0: 5.0, 1: 2.0, 2: 3.0}, {0: 1.0, 1: 1.5, 2: 2.0, 3: 9.0})
    assert (mean, n) == (0.75, 2)  # seeds 1 and 2 (0 selected, 3 not in both): gaps 0.5 and 1.0
    assert (low, high) == pytest.approx((0.75 - 12.7062047 * 0.25, 0.75 + 12.7062047 * 0.25))
    one = lost({1: 2.0}, {1: 1.0})
    assert one[0] == 1.0 and np.isnan(one[1]) and one[3] == 1
    assert lost({0: 1.0}, {0: 2.0})[3] == 0 and np.isnan(lost({0: 1.0}, {0: 2.0})[0])


def test_the_mean_rank_interval_resamples_workloads():
    from analysis.stats import mean_rank_interval

    one = mean_rank_interval(pd.DataFrame({"a": [1.0], "b": [2.0]}))
    assert one.to_dict("index") == {"a": {"rank_low": 1.0, "rank_high": 1.0}, "b": {"rank_low": 2.0, "rank_high": 2.0}}
    # two workloads ranking a and b oppositely: a draw's mean is 1, 1.5 or 2 (each end with probability 1/4)
    two = mean_rank_interval(pd.DataFrame({"a": [1.0, 2.0], "b": [2.0, 1.0]}))
    assert two.to_dict("index") == {"a": {"rank_low": 1.0, "rank_high": 2.0}, "b": {"rank_low": 1.0, "rank_high": 2.0}}


def test_the_pooled_seed_spread_pools_within_configurations():
    from analysis.stats import pooled_sd

    df = pd.DataFrame(
        {
            "task": ["t", "t", "t", "t", "u", "u"],
            "config": ["x", "x", "y", "y", "x", "y"],
            "value": [1.0, 3.0, 10.0, 14.0, 5.0, 7.0],  # t: residuals ±1 and ±2, 2 dof; u: one seed each
        }
    )
    spread = pooled_sd(df, "value", ["task", "config"], "task")
    assert spread.loc["t"].tolist() == pytest.approx([5**0.5, 2])
    assert np.isnan(spread.loc["u", "sd"]) and spread.loc["u", "dof"] == 0
