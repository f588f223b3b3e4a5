"""The leaderboard report: every table and figure of a comparison, written as DIR/index.html (self-contained, images
embedded), DIR/leaderboard.md, DIR/figures/<name>.png and DIR/tables/<name>.csv (the numbers behind each figure
under the same name). Every number comes with its seed count and, where it has one, a 95% interval; the policies
it follows (analysis/tuning.py) are stated at the top of the report."""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import figures
from analysis.collect import read_curves
from analysis.profile import median_times, performance_ratios, profile, score_cap, scores, study_times
from analysis.protocols import comparison, winning_paths
from analysis.speedup import MIN_BUDGETS, Speedups, speedup_label, speedups
from analysis.stats import (
    average_ranks,
    cliques,
    friedman_test,
    mean_rank_interval,
    nemenyi_cd,
    pooled_sd,
    seeds_needed,
    t_interval,
    workload_ranks,
)
from analysis.tables import write_csv
from analysis.transfer import predictions_table
from analysis.tuning import (
    calibrated_default,
    compared,
    config_results,
    trials_frame,
    tuned_results,
    tuned_trials,
    tuned_vs_default,
    tuning_cost,
)
from suite.schema import FINISHED, HELD, TrialStatus

PROVENANCE = {
    "provenance.data_fingerprint": "data fingerprints",
    "provenance.device": "hardware",
    "provenance.torch_version": "torch versions",
    "provenance.git_commit": "code versions",
}
CPU_WORKLOADS = ("quadratic", "cnn_digits", "lm_tiny")  # (the sweep's `workload=cpu`)
DETECTABLE = 0.005  # the difference the seed-count estimate is for: 0.5% of the metric
POLICIES = (
    "Policies. Selection and scoring never share seeds: each optimizer's tuned configuration per task is the best "
    "on its search seed (seed 0 in a sweep); tuned and default results are measured on the other seeds "
    "(`tuning.seeds` reruns both), and a result with no other seed is marked in-sample. Blocks are independent "
    "workloads: a workload's budgets are ranked together as one block, never counted as separate evidence. "
    "Diverged = the worst result (worst rank, infinite time to target); failed = missing, listed under Failed "
    "trials with its error; a task an optimizer never ran is 'not run', never a miss. Speedups are never "
    "extrapolated past 2× the baseline's largest budget or below half its smallest (shown as '> x', '< x'). "
    "Intervals are 95%: Student's t over seeds for results and gaps, bootstrap for ranks (workloads resampled), "
    "profile scores (studies resampled) and speedups (parametric); n is the number of seeds (or workloads) behind "
    "a number."
)


def is_curve_column(name: str) -> bool:
    return name in ("run_dir", "step", "tokens", "train_time_s") or name.startswith("eval/")


@dataclass
class Section:
    title: str
    text: list[str] = field(default_factory=list)  # paragraphs
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)  # (csv name, table shown)
    figures: list[str] = field(default_factory=list)  # figure names (figures/<name>.png, tables/<name>.csv)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()


def fmt(value) -> str:
    if isinstance(value, float | np.floating):
        if np.isnan(value):
            return "–"
        if np.isinf(value):
            return "∞" if value > 0 else "-∞"
        if abs(value) < 1e-9:  # floating-point residue of a difference of equal numbers
            return "0"
        return f"{value:.4g}"
    return str(value)


def decimals(low: float, high: float) -> int | None:
    """Decimal places that show an interval's half-width to two significant digits (None without an interval)."""
    half = (high - low) / 2
    if not np.isfinite(half) or half <= 0:
        return None
    return max(0, 1 - int(np.floor(np.log10(half))))


def rounded(value: float, places: int) -> str:
    if np.isinf(value):
        return fmt(value)
    return f"{round(float(value), places) + 0.0:.{places}f}"  # (+ 0.0: no "-0.00")


def with_interval(value: float, low: float, high: float, n: int | None = None) -> str:
    """'2.034 [2.021, 2.047] (n=3)', rounded to the interval's precision: no digits finer than the noise."""
    if not np.isfinite(value):
        shown = fmt(value)
    else:
        places = decimals(low, high)
        if places is None:
            shown = fmt(float(value))
        else:
            shown = f"{rounded(value, places)} [{rounded(low, places)}, {rounded(high, places)}]"
    return f"{shown} (n={n})" if n is not None else shown


def readable(hparams: str) -> str:
    """'{"lr": 0.001, "betas": [0.9, 0.95]}' -> 'lr=0.001, betas=(0.9, 0.95)'."""
    try:
        values = json.loads(hparams)
    except (json.JSONDecodeError, TypeError):
        return str(hparams)
    if not isinstance(values, dict):
        return str(hparams)
    show = lambda v: f"({', '.join(map(fmt, v))})" if isinstance(v, list) else fmt(v)  # noqa: E731
    return ", ".join(f"{k}={show(v)}" for k, v in values.items())


def markdown_table(df: pd.DataFrame) -> str:
    cells = [[fmt(v).replace("|", "\\|") for v in row] for row in df.itertuples(index=False)]
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


def sweep_command(optimizers, workloads, *extra: str) -> str:
    return " ".join(
        ["python -m suite.sweep", f"optimizer={','.join(sorted(optimizers))}", f"workload={','.join(workloads)}"]
        + list(extra)
    )


class Report:
    """Builds the sections from a trials table (and its curves, when collected from run directories)."""

    def __init__(
        self,
        trials: pd.DataFrame,
        curves: Path | None,
        out: Path,
        baseline: str = "adamw",
        time: str = "seconds",
        rank_by: dict[str, str] | None = None,
        studies: pd.DataFrame | None = None,
    ):
        self.raw = trials
        self.studies = studies if studies is not None else pd.DataFrame()
        self.trials = trials_frame(trials, time=time, rank_by=rank_by)
        self.time = time
        self.rank_by = rank_by or {}
        self.curves_path = curves
        self.out = out
        self.baseline = baseline
        self.tuned = tuned_results(self.trials)
        self.colours = figures.palette(self.trials.optimizer)
        self.sections: list[Section] = []

    # --- helpers -------------------------------------------------------------------------------------------------
    def table(self, name: str, df: pd.DataFrame) -> pd.DataFrame:
        write_csv(df, self.out / "tables" / f"{name}.csv")
        return df

    def figure(self, name: str, fig, numbers: pd.DataFrame) -> str:
        (self.out / "figures").mkdir(parents=True, exist_ok=True)
        figures.save(fig, self.out / "figures" / f"{name}.png")
        self.table(name, numbers)
        return name

    def complete(self) -> tuple[pd.DataFrame, list[str]]:
        """Task x optimizer tuned scores on the workloads whose every task every optimizer ran (complete blocks),
        and the workloads left out for a missing optimizer."""
        matrix = self.tuned.pivot(index="task", columns="optimizer", values="rank_score")
        workload = self.tuned.groupby("task").workload.first()
        gaps = matrix.isna().any(axis=1).groupby(workload).any()
        return matrix[~workload.reindex(matrix.index).isin(gaps[gaps].index)], sorted(gaps[gaps].index)

    def block_ranks(self) -> tuple[pd.DataFrame, list[str]]:
        matrix, left_out = self.complete()
        if matrix.empty or matrix.shape[1] < 2:
            return pd.DataFrame(), left_out
        return workload_ranks(matrix, self.tuned.groupby("task").workload.first()), left_out

    def noise(self) -> pd.DataFrame:
        """Per task: the pooled seed-to-seed standard deviation of the final metric (configurations run on two or
        more seeds, finite results), its seed count, and the seeds per arm needed to detect DETECTABLE of the
        metric at 80% power."""
        finished = compared(self.trials)
        finished = finished[np.isfinite(finished.score)]
        spread = pooled_sd(finished, "final_metric", ["task", "optimizer", "hparams"], "task")
        sd, dof = spread.sd, spread.dof
        level = finished.groupby("task").final_metric.median().abs()
        rows = [
            {
                "task": task,
                "seed_sd": sd.get(task, np.nan),
                "dof": int(dof.get(task, 0)),
                "difference": DETECTABLE * level[task],
                "seeds_needed": seeds_needed(sd.get(task, np.nan), DETECTABLE * level[task]),
            }
            for task in level.index
        ]
        return pd.DataFrame(rows, columns=["task", "seed_sd", "dof", "difference", "seeds_needed"])

    # --- sections ------------------------------------------------------------------------------------------------
    def build(self) -> list[Section]:
        speedup = self.speedups()
        times = study_times(self.trials)
        self.sections = [
            self.leaderboard(times, speedup),
            self.tuning_section(),
            self.tuning_cost_section(),
            *([self.protocols_section()] if self.compares_protocols() else []),
            *([self.pbt_section()] if not winning_paths(self.studies).empty else []),
            *([self.transfer_section()] if self.predictions().shape[0] else []),
            *([self.schedules_section()] if not self.schedules().empty else []),
            self.throughput_section(),
            self.speedup_section(speedup),
            self.curves_section(),
            self.profile_section(times),
            self.ranks_section(),
            self.lr_section(),
            self.failed_section(),
            self.provenance_section(),
        ]
        return self.sections

    def task_cells(self) -> pd.DataFrame:
        """Optimizer x task: the tuned result with its interval and seeds, 'diverged', or 'not run'; '≈ best' where
        its interval overlaps the best optimizer's on the task (within the noise)."""
        cells = {}
        names = self.raw.groupby("workload")["metric_name"].first() if "metric_name" in self.raw else {}
        for task, group in self.tuned.groupby("task"):
            best = group.loc[group.rank_score.idxmin()]
            for row in group.itertuples():
                if np.isinf(row.score):
                    text = f"diverged ({row.diverged} of {row.seeds} seeds)"
                else:
                    text = with_interval(row.final_metric, row.low, row.high, row.seeds)
                    if row.workload in self.rank_by:  # ranked by a loss: that first, the metric beside
                        shown = with_interval(row.rank_score, row.rank_low, row.rank_high, row.seeds)
                        text = f"{self.rank_by[row.workload]} {shown} · {names.get(row.workload, 'metric')} "
                        text += fmt(row.final_metric)
                    if row.in_sample:
                        text += " in-sample"
                    near = max(row.rank_low, best.rank_low) <= min(row.rank_high, best.rank_high)
                    text += " ≈ best" if row.optimizer != best.optimizer and near else ""
                cells.setdefault(row.optimizer, {})[task] = text
        order = (
            self.trials.groupby("task")[["workload", "budget_tokens"]]
            .first()
            .sort_values(["workload", "budget_tokens"])
        )
        table = pd.DataFrame(cells).T.reindex(index=sorted(self.trials.optimizer.unique()), columns=order.index)
        return table.fillna("not run")

    def leaderboard(self, times: pd.DataFrame, speedup) -> Section:
        status = self.trials.groupby("optimizer").status
        board = pd.DataFrame(
            {
                "trials": status.size(),
                "failed": status.apply(lambda s: int((s == TrialStatus.FAILED).sum())),
                "diverged": status.apply(lambda s: int((s == TrialStatus.DIVERGED).sum())),
                "tasks": self.tuned.groupby("optimizer").task.nunique(),
            }
        )
        ranks, left_out = self.block_ranks()
        text = [POLICIES]
        if len(ranks) and ranks.shape[1] > 1:
            board["mean_rank"] = average_ranks(ranks)
            board = board.join(mean_rank_interval(ranks))
            board["workloads"] = len(ranks)
        else:
            board["mean_rank"] = board["rank_low"] = board["rank_high"] = np.nan
            board["workloads"] = 0
        profile_scores = scores(times) if np.isfinite(times.time_to_target).any() else None
        if profile_scores is not None:
            board["profile_score"] = profile_scores.score
            board["profile_low"], board["profile_high"] = profile_scores.low, profile_scores.high
            board["profile_studies"] = profile_scores.studies
        board = board.sort_values(["mean_rank", "optimizer"] if "optimizer" in board else ["mean_rank"])
        board = board.rename_axis("optimizer").reset_index().sort_values(["mean_rank", "optimizer"])
        cells = self.task_cells()
        numbers = board.merge(cells.rename(columns=lambda t: f"task: {t}"), left_on="optimizer", right_index=True)
        if speedup is not None:
            for workload, group in speedup.summary.groupby("workload", sort=False):
                labels = {
                    r.optimizer: speedup_label(r.speedup, r.low, r.high, r.cap, r.floor) for r in group.itertuples()
                }
                numbers[f"speedup {workload}"] = numbers.optimizer.map(labels).fillna("–")
        self.table("leaderboard", numbers)
        shown = pd.DataFrame({"optimizer": numbers.optimizer})
        shown["mean rank [95%]"] = [
            with_interval(r.mean_rank, r.rank_low, r.rank_high, r.workloads) if np.isfinite(r.mean_rank) else "–"
            for r in numbers.itertuples()
        ]
        if profile_scores is not None:
            shown["profile score [95%]"] = [
                with_interval(r.profile_score, r.profile_low, r.profile_high, int(r.profile_studies))
                if np.isfinite(r.profile_score)
                else "–"
                for r in numbers.itertuples()
            ]
        for column in numbers.columns:
            if column.startswith(("task: ", "speedup ")):
                shown[column.removeprefix("task: ")] = numbers[column]
        shown["trials (failed, diverged)"] = [f"{r.trials} ({r.failed}, {r.diverged})" for r in numbers.itertuples()]
        n_workloads = int(numbers.workloads.max()) if len(numbers) else 0
        text.append(
            f"{len(self.trials)} trials on {self.trials.task.nunique()} task(s) of {self.trials.workload.nunique()} "
            f"workload(s). Ordered by the primary measure, the mean rank of the tuned results over the {n_workloads} "
            "independent workload(s) that every optimizer ran (1 = best; interval: workloads resampled). Each task "
            "cell is the tuned configuration's mean final held-out metric over its scoring seeds, with its "
            "Student's t interval and n; '≈ best' marks a result within the seed noise of the task's best (the "
            "intervals overlap): that comparison is not resolved."
        )
        if left_out:
            text.append(f"Left out of the ranks (an optimizer did not run every task): {', '.join(left_out)}.")
        for workload, name in self.rank_by.items():
            text.append(
                f"{workload} is ranked by its held-out {name} (shown first, its metric beside): its configurations "
                "are selected by its own metric, as the sweep selected them, but that metric is too coarse to rank "
                "by (cnn_digits: one of 359 held-out images is 0.28% accuracy)."
            )
        if profile_scores is not None:
            text.append(
                "Profile score: AlgoPerf's benchmark score (area under the performance profile for τ in [1, 4], / 3) "
                f"over the tasks each optimizer ran, time to target in {self.time}, with a bootstrap interval over "
                "studies (seeds)."
            )
        noise = self.table("seeds_needed", self.noise())
        known = noise.dropna(subset=["seeds_needed"])
        if len(known):
            listed = "; ".join(
                f"{r.task}: seed sd {fmt(r.seed_sd)}, {int(r.seeds_needed)} seeds" for r in known.itertuples()
            )
            text.append(
                f"Seeds needed per optimizer to detect a difference of {DETECTABLE:.1%} of the metric at 80% power "
                f"(two-sided, α = 0.05), from the observed seed-to-seed spread: {listed} (tables/seeds_needed.csv)."
            )
        else:
            text.append("Seeds needed: unknown, no configuration ran on two or more seeds (run with tuning.seeds=3).")
        return Section("Leaderboard", text, [("leaderboard", shown)])

    def tuning_section(self) -> Section:
        tvd = tuned_vs_default(self.trials)
        self.table("tuned_vs_default", tvd)
        shown = pd.DataFrame(
            {
                "task": tvd.task,
                "optimizer": tvd.optimizer,
                "default": tvd.default,
                "tuned": tvd.tuned,
                "gap [95% t]": [
                    with_interval(r.gap, r.low, r.high, r.seeds) if np.isfinite(r.gap) else "–"
                    for r in tvd.itertuples()
                ],
                "configs tried": tvd.configs_tried,
                "note": tvd.note,
                "tuned hyperparameters": tvd.tuned_hparams.map(readable),
            }
        )
        calibrated = self.table("calibrated_default", calibrated_default(self.trials))
        shown_calibrated = calibrated.assign(calibrated_hparams=calibrated.calibrated_hparams.map(readable))
        text = [
            "Tuned: the configuration selected on the search seed; default: the authors' defaults; both scored on "
            "the same other seeds (means). Gap: the mean over those seeds of default − tuned in the metric's "
            "units, oriented so that positive = tuning helped; it can be negative (the selection seed misled). "
            "configs tried is the tuning budget.",
            "Calibrated default (Kasimbeg et al.): per optimizer, the one configuration for every task with the best "
            "mean normalised result (0 = the best result of any optimizer on the task, 1 = the worst). in_sample "
            "chooses and scores it on the same tasks (optimistic); held_out chooses it on all workloads but one and "
            "scores it on that one, rotating (the honest cost of one setting); tuned_per_task is the best per task.",
        ]
        if calibrated.empty:
            command = sweep_command(self.trials.optimizer.unique(), self.other_workloads(2), "tuning=random")
            text.append(
                "No calibrated default yet: it needs an optimizer's same configurations on tasks of two or more "
                f"workloads (e.g. `{command}`)."
            )
        return Section(
            "Tuned versus default", text, [("tuned_vs_default", shown), ("calibrated_default", shown_calibrated)]
        )

    def other_workloads(self, n: int) -> list[str]:
        have = sorted(self.trials.workload.unique())
        return have + [w for w in CPU_WORKLOADS if w not in have][: max(0, n - len(have))]

    def tuning_cost_section(self) -> Section:
        section = Section("Tuning cost")
        cost = tuning_cost(self.trials)
        cost = cost[cost.groupby(["task", "optimizer"]).k.transform("max") > 1]
        if cost.empty:
            section.text.append("Not available: no optimizer searched more than one configuration on a task.")
            return section
        section.text.append(
            "Expected best final metric after k trials of the search (Dodge et al. 2019, computed exactly for draws "
            "without replacement from the configurations searched), against k and against the training seconds "
            "those k trials cost: which optimizer is good at a small tuning budget, which only at a large one. "
            "Meaningful for random search, whose trials are exchangeable; a diverged trial counts as the task's "
            "worst finite result."
        )
        section.figures.append(self.figure("tuning_cost", figures.tuning_cost_plot(cost, self.colours), cost))
        return section

    def compares_protocols(self) -> bool:
        """Whether the studies read (a results directory's study.json files) hold more than one protocol."""
        return not self.studies.empty and self.studies.protocol.nunique() > 1

    def protocols_section(self) -> Section:
        section = Section("Tuning protocols at equal compute")
        numbers = comparison(self.studies)
        section.text.append(
            "Each protocol's searches (one per search seed, tuning.seed) per workload and optimizer: the training "
            "steps the search spent (a trial stopped early counts the steps it ran; `saved` against running every "
            "configuration to the end) and the best configuration's final metric (median over its scoring seeds), "
            "each the mean over the searches with a t interval over them. Read from the studies' study.json files."
        )
        shown = numbers.assign(
            steps=[with_interval(r.steps, r.steps_low, r.steps_high, r.searches) for r in numbers.itertuples()],
            saved=numbers.saved.map(lambda v: f"{v:.0%}"),
            best=[with_interval(r.best, r.best_low, r.best_high, r.searches) for r in numbers.itertuples()],
        )[["workload", "optimizer", "protocol", "searches", "steps", "saved", "metric", "best"]]
        section.tables.append(("protocols", shown))
        fig = figures.protocols_plot(numbers)
        section.figures.append(self.figure("protocols", fig, numbers))
        return section

    def pbt_section(self) -> Section:
        section = Section("Population Based Training: the winning paths")
        section.text.append(
            "The member of each PBT study with the best final metric, and the hyperparameters it trained with: drawn "
            "at the start (generation 0), then at each step where its line copied a top-quarter member's weights, "
            "optimizer state and position and perturbed the copy's values (`copied`: that member's index). Its "
            "final metric is the selection's own (in-sample): a member's history is not rerun on other seeds."
        )
        section.tables.append(("pbt_paths", self.table("pbt_paths", winning_paths(self.studies))))
        return section

    def predictions(self) -> pd.DataFrame:
        """The step_law and transfer studies read, each against tuning at its task (analysis/transfer.py)."""
        return predictions_table(list(self.studies.study)) if "study" in self.studies else pd.DataFrame()

    def transfer_section(self) -> Section:
        section = Section("Hyperparameters predicted, not searched")
        numbers = self.predictions()
        section.text.append(
            "Each configuration predicted without a search at its task: by the Step Law (Li et al. 2025, AdamW on "
            "language models: lr and batch size from N and D) or by a power law fitted through the optima of tuned "
            "studies at other scales (tuning=transfer). `ratio`: the predicted lr over the local optimum, the "
            "vertex of a quadratic in log lr through the prediction and its checks (×½, ×2, ...; selection seed). "
            "`lost`: the prediction's final metric minus the tuned study's best at the same task, paired by seed "
            "over the scoring seeds both ran, mean with a t 95% interval (positive: the prediction is worse; "
            "oriented so for every metric). `in range`: the task lies inside what the law was fitted on (the Step "
            "Law's 60M-1B parameters and up to 100B tokens; the tuned tasks' N and D)."
        )
        shown = numbers.assign(
            predicted=[
                with_interval(r.predicted, r.predicted_low, r.predicted_high, r.seeds) for r in numbers.itertuples()
            ],
            lost=[with_interval(r.lost, r.lost_low, r.lost_high, r.lost_seeds) for r in numbers.itertuples()],
        )[
            [
                "workload",
                "budget",
                "optimizer",
                "protocol",
                "predicted_lr",
                "local_optimum_lr",
                "ratio",
                "tuned_lr",
                "metric",
                "predicted",
                "tuned",
                "lost",
                "in_range",
            ]
        ]
        section.tables.append(("predictions", self.table("predictions", shown)))
        return section

    def schedules(self) -> pd.DataFrame:
        """Per task, optimizer and configuration run under more than one schedule: each schedule's final metric,
        mean over its seeds with a t interval (diverged runs counted apart)."""
        column = "config.schedule.name"
        if column not in self.trials:
            return pd.DataFrame()
        trials = self.trials.assign(schedule=self.trials[column].astype(str))
        rows = []
        for (task, optimizer, hparams), group in trials.groupby(["task", "optimizer", "hparams"]):
            if group.schedule.nunique() < 2:
                continue
            for schedule, runs in group.groupby("schedule"):
                finite = runs.final_metric[np.isfinite(runs.score)]
                low, high = t_interval(finite) if len(finite) > 1 else (np.nan, np.nan)
                rows.append(
                    {
                        "task": task,
                        "optimizer": optimizer,
                        "hparams": readable(hparams),
                        "schedule": schedule,
                        "seeds": len(runs),
                        "diverged": int((~np.isfinite(runs.score)).sum()),
                        "final": finite.mean() if len(finite) else np.nan,
                        "low": low,
                        "high": high,
                    }
                )
        return pd.DataFrame(rows)

    def schedules_section(self) -> Section:
        section = Section("Schedules at equal budget")
        numbers = self.schedules()
        section.text.append(
            "Configurations run under more than one learning-rate schedule at the same task, budget and "
            "hyperparameters: each schedule's final metric, the mean over its seeds with a t interval (diverged "
            "runs counted apart). `refined` is Defazio et al. 2023's, refined from an earlier run's gradient norms."
        )
        shown = numbers.assign(final=[with_interval(r.final, r.low, r.high, r.seeds) for r in numbers.itertuples()])[
            ["task", "optimizer", "hparams", "schedule", "diverged", "final"]
        ]
        section.tables.append(("schedules", self.table("schedules", shown)))
        return section

    def throughput_section(self) -> Section:
        section = Section("Throughput")
        raw = self.raw.reindex(
            columns=[*self.raw.columns.union(["status", "tokens_per_s", "mfu", "provenance.device"])]
        )
        rate = pd.to_numeric(raw.tokens_per_s, errors="coerce")
        done = raw[(raw.status == TrialStatus.COMPLETED) & (rate > 0)].assign(tokens_per_s=rate)
        if done.empty:
            section.text.append("Not available: no completed trial recorded its throughput.")
            return section
        numbers = (
            done.assign(
                mfu=pd.to_numeric(done.mfu, errors="coerce"),
                device=done["provenance.device"].astype(object).fillna("?"),
            )
            .groupby(["workload", "optimizer", "device"], as_index=False)
            .agg(trials=("tokens_per_s", "size"), tokens_per_s=("tokens_per_s", "median"), mfu=("mfu", "median"))
        )
        self.table("throughput", numbers)
        shown = numbers.assign(
            tokens_per_s=numbers.tokens_per_s.map(lambda v: f"{v:,.0f}"),
            mfu=numbers.mfu.map(lambda v: f"{v:.1%}" if np.isfinite(v) else "–"),
        )
        section.text.append(
            "Median timed throughput of the completed trials per workload, optimizer and device: tokens per second "
            "(examples per second on the image and quadratic workloads) over the timed steps, and MFU, the "
            "counted training FLOPs per second over the device's dense bf16 peak ('–' where no peak is known, as "
            "on CPUs). Wall-clock comparisons hold only between trials that ran alone on identical machines; a "
            "sweep running several trials side by side slows each."
        )
        section.tables.append(("throughput", shown))
        return section

    def speedups(self):
        """Data-equivalent speedups per (workload, budget) and per scale, where the baseline has enough budgets."""
        best = tuned_trials(self.trials)
        best = best[best.lower_is_better.astype(bool)].assign(final_metric=lambda d: d.score)  # diverged: +inf
        base = best[best.optimizer == self.baseline]
        budgets = base.groupby("workload").budget_tokens.nunique()
        scales = budgets[budgets >= MIN_BUDGETS].index
        points = best[best.workload.isin(scales)]
        if points.empty or points.optimizer.nunique() < 2:
            return None
        result = speedups(points, baseline=self.baseline)
        self.table("speedup_points", result.points)
        order = self.scale_order()
        result.summary["order"] = result.summary.workload.map(order)
        return Speedups(result.points, result.summary.sort_values(["order", "optimizer"]))

    def scale_order(self) -> dict:
        size = "params_non_embedding" if "params_non_embedding" in self.trials else "workload"
        ranked = self.trials.groupby("workload")[size].first().sort_values()
        return {name: i for i, name in enumerate(ranked.index)}

    def speedup_section(self, speedup) -> Section:
        section = Section("Speedup versus scale")
        if speedup is None:
            workload = self.trials.workload.iloc[0]
            budget = self.trials[self.trials.workload == workload].budget_tokens.dropna()
            b = int(budget.iloc[0]) if len(budget) else None
            tokens = f"workload.tokens={b // 2},{b},{2 * b}" if b else "workload.tokens=a,b,c"
            command = sweep_command(
                {self.baseline, *self.trials.optimizer.unique()}, [workload], tokens, "tuning.seeds=3"
            )
            section.text.append(
                f"Not available: no workload where the baseline {self.baseline} has at least {MIN_BUDGETS} budgets "
                f"and another optimizer ran (the fit of loss against data needs them). To get one: `{command}`."
            )
            return section
        section.text.append(
            f"Data-equivalent speedup ('Fantastic Pretraining Optimizers'): the data {self.baseline} needs to reach "
            "each optimizer's final loss, from a fit L(D) = α·D^(−B) + β of its tuned losses (mean over seeds), "
            "divided by the data used; per scale, the median over budgets. Interval: parametric bootstrap of every "
            "point's seed mean (baseline refitted each time), the summary's from the bootstrap of the summary "
            f"itself. A fit with α ≤ 0 or B outside (0, 2] is 'no fit'; a speedup that needs more than 2× the "
            "baseline's largest budget is shown as '> x'. Per-budget values: speedup_points.csv."
        )
        summary = speedup.summary
        section.figures.append(self.figure("speedup_vs_scale", figures.speedup_plot(summary, self.colours), summary))
        return section

    def curves_section(self) -> Section:
        section = Section("Eval metric over training")
        best = tuned_trials(self.trials)
        if self.curves_path is None or not self.curves_path.is_dir() or "run_dir" not in best:
            section.text.append("Not available: curves come from run directories (collect), not from a CSV.")
            return section
        curves = read_curves(self.curves_path, set(best.run_dir), columns=is_curve_column)
        section.text.append(
            "Tuned configuration per optimizer: median over seeds, the band spans the seeds' minimum to maximum; "
            "against tokens and against timed training seconds (evaluation excluded). Dashed: the workload's "
            "target; dotted: its known optimum (where one is known). The vertical axis shows the part where the "
            "optimizers differ (the first, worst evaluations may lie beyond it); the numbers are all in the CSV."
        )
        metric_names = self.raw.groupby("workload")["metric_name"].first() if "metric_name" in self.raw else {}
        sparse = []
        for task, runs in best.groupby("task"):
            metric = metric_names.get(runs.workload.iloc[0], "loss")
            column = f"eval/{metric}"
            rows = curves[curves.run_dir.isin(set(runs.run_dir))]
            if column not in rows or rows[column].isna().all():
                continue
            rows = rows.dropna(subset=[column]).merge(runs[["run_dir", "optimizer"]], on="run_dir")
            numbers = (
                rows.groupby(["optimizer", "step"], as_index=False)
                .agg(
                    tokens=("tokens", "median"),
                    seconds=("train_time_s", "median"),
                    median=(column, "median"),
                    low=(column, "min"),
                    high=(column, "max"),
                    seeds=(column, "size"),
                )
                .sort_values(["optimizer", "step"])
            )
            if numbers.groupby("optimizer").size().min() < 5:
                sparse.append(task)
            lines = {
                "target": pd.to_numeric(runs.get("target"), errors="coerce").median() if "target" in runs else np.nan,
                "optimum": pd.to_numeric(runs.get("optimal_loss"), errors="coerce").median()
                if "optimal_loss" in runs and metric == "loss"
                else np.nan,
            }
            lower = bool(runs.lower_is_better.iloc[0]) if "lower_is_better" in runs else True
            fig = figures.curve_plot(numbers, metric, self.colours, lines, lower)
            section.figures.append(self.figure(f"curves_{slug(task)}", fig, numbers))
        if sparse:
            section.text.append(
                f"Fewer than 5 evaluations per curve on {', '.join(sparse)}: set a smaller eval_every to see the shape."
            )
        return section

    def profile_section(self, times: pd.DataFrame) -> Section:
        section = Section("Performance profile")
        if not np.isfinite(times.time_to_target).any():
            section.text.append(
                "Not available: no task has a target, or no trial reached one. Targets are set per workload "
                "(docs/workloads.md: Targets); a run records its time to target when its workload has one."
            )
            return section
        ratios = performance_ratios(median_times(times))
        section.text.append(
            "AlgoPerf's rule: per study (a seed: the trials run on it), the time of the fastest trial that reached "
            "the target; per task, the median over studies, a study that missed counting as infinite; ρ(τ) is the "
            "fraction of the tasks an optimizer ran whose ratio to the fastest optimizer is within τ (a miss or a "
            "ratio above 4 never counts); "
            + (
                "times are timed training seconds (valid when the trials ran on a quiet machine)."
                if self.time == "seconds"
                else "times are counted in tokens (valid under any load; wall-clock costs per step come from the "
                "quiet step-time bench, docs/performance.md)."
            )
        )
        unreached, tasks = score_cap(ratios)
        if unreached:
            section.text.append(
                f"No optimizer reached the target on {unreached} of {tasks} task(s): every score is at most "
                f"{1 - unreached / tasks:.2f}, not 1."
            )
        self.table("performance_ratios", ratios.reset_index())
        curve = profile(ratios)
        section.figures.append(self.figure("performance_profile", figures.profile_plot(curve, self.colours), curve))
        return section

    def ranks_section(self) -> Section:
        section = Section("Ranks and significance")
        ranks, left_out = self.block_ranks()
        k, n = ranks.shape[1] if len(ranks) else 0, len(ranks)
        if k < 2 or n < 2:
            command = sweep_command(self.trials.optimizer.unique(), self.other_workloads(2), "tuning=random")
            section.text.append(
                f"Not available: the Friedman test needs at least 2 optimizers on at least 2 independent workloads "
                f"that every optimizer ran (have {k} on {n}; a workload's budgets are one block). To get them: "
                f"`{command}`."
            )
            return section
        mean_ranks = average_ranks(ranks)
        test = friedman_test(ranks)
        cd = nemenyi_cd(k, n)
        groups = cliques(mean_ranks, cd)
        agreement = np.isinf(test.f)
        section.text.append(
            f"Friedman test over N = {n} independent workloads and k = {k} optimizers, tie-corrected: "
            f"χ² = {test.chi2:.3f} (p = {test.p_chi2:.3g}); "
            + (
                "every workload ranks the optimizers identically, so the Iman–Davenport F is unbounded. "
                if agreement
                else f"Iman–Davenport F = {test.f:.3f} (p = {test.p_f:.3g}). "
            )
            + f"Nemenyi critical difference at α = 0.05: {cd:.3f}. Optimizers joined by a bar are not "
            "significantly different."
            + (f" Left out (an optimizer did not run every task): {', '.join(left_out)}." if left_out else "")
        )
        numbers = mean_ranks.rename_axis("optimizer").reset_index()
        numbers["critical_difference"] = cd
        numbers["workloads"] = n
        numbers["group"] = [";".join(str(i) for i, g in enumerate(groups) if name in g) for name in numbers.optimizer]
        fig = figures.critical_difference_plot(mean_ranks, cd, groups, n)
        section.figures.append(self.figure("critical_difference", fig, numbers))
        return section

    def lr_section(self) -> Section:
        section = Section("Learning-rate sensitivity")
        points = config_results(self.trials).dropna(subset=["lr"])
        points = points[pd.to_numeric(points.lr, errors="coerce") > 0]
        if points.empty:
            section.text.append("Not available: no trial records a learning rate.")
            return section
        section.text.append(
            "Final held-out metric on the search seed of every configuration tried, against its learning rate; a "
            "flat curve means the optimizer is forgiving, a narrow valley means it needs tuning. A diverged "
            "configuration is drawn as × at the top of its panel."
        )
        numbers = points[["task", "optimizer", "lr", "final_metric", "score", "hparams"]].sort_values(
            ["task", "optimizer", "lr"]
        )
        numbers = numbers.astype({"lr": float}).assign(diverged=~np.isfinite(numbers.score))
        numbers["hparams"] = numbers.hparams.map(readable)
        fig = figures.lr_sensitivity_plot(numbers.drop(columns="score"), self.colours)
        section.figures.append(self.figure("lr_sensitivity", fig, numbers.drop(columns="score")))
        return section

    def failed_section(self) -> Section:
        section = Section("Failed trials")
        unfinished = self.trials[~self.trials.status.isin(FINISHED)]
        held = unfinished.status.isin(HELD)
        failed = unfinished[~held]
        if held.any():
            section.text.append(
                f"{int(held.sum())} trial(s) were stopped early or paused at a rung by a tuning protocol (statuses "
                f"{', '.join(HELD)}): partial runs by design, left out of every table and figure, not failures."
            )
        if failed.empty:
            section.text.append("None: every " + ("other " if held.any() else "") + "trial completed or diverged.")
            return section
        section.text.append(
            f"{len(failed)} trial(s) did not finish; they are missing from every table and figure above."
        )
        columns = [c for c in ("task", "optimizer", "seed", "status", "error", "run_dir") if c in failed]
        shown = failed[columns].assign(hparams=failed.hparams.map(readable))
        section.tables.append(("failed", self.table("failed", shown)))
        return section

    def provenance_section(self) -> Section:
        warnings = provenance_warnings(self.raw.assign(task=self.trials.task))
        section = Section("Provenance")
        if warnings.empty:
            section.text.append(
                "Every comparison (task) uses one data fingerprint, one code version, one hardware type and one "
                "version of each package."
            )
        else:
            section.text.append(
                f"Warning: {len(warnings)} mixed provenance value(s) within a comparison; the numbers may not be "
                "comparable."
            )
            section.tables.append(("provenance_warnings", self.table("provenance_warnings", warnings)))
        versions = [c for c in self.raw.columns if c.startswith("provenance.packages.")] + list(PROVENANCE)
        present = [c for c in versions if c in self.raw.columns]
        if present:
            used = pd.DataFrame(
                [
                    {"what": c.removeprefix("provenance.").removeprefix("packages."), "values": ", ".join(vals)}
                    for c in present
                    if (vals := sorted(map(str, self.raw[c].dropna().unique())))
                ]
            )
            section.tables.append(("provenance", self.table("provenance", used)))
        return section


def provenance_warnings(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per task and provenance field (data fingerprint, hardware, torch, code, each package) that takes
    more than one value among the task's trials."""
    fields = {c: w for c, w in PROVENANCE.items() if c in trials.columns}
    packages = [c for c in trials.columns if c.startswith("provenance.packages.")]
    fields.update({c: f"{c.removeprefix('provenance.packages.')} versions" for c in packages})
    rows = []
    for task, group in trials.groupby("task"):
        for column, what in fields.items():
            counts = group[column].dropna().astype(str).value_counts()
            if len(counts) > 1:
                listed = ", ".join(f"{value} ({n} trials)" for value, n in counts.items())
                rows.append({"task": task, "mixed": what, "values": listed})
    return pd.DataFrame(rows, columns=["task", "mixed", "values"])


def write(sections: list[Section], out: Path, source: str) -> tuple[Path, Path]:
    """index.html with the figures embedded, and leaderboard.md linking them."""
    md = [f"# Optimizer leaderboard\n\nFrom `{source}`. Tables: `tables/`, figures: `figures/`.\n"]
    body = [f"<h1>Optimizer leaderboard</h1><p>From <code>{html.escape(source)}</code>.</p>"]
    for section in sections:
        md.append(f"## {section.title}\n")
        body.append(f"<h2>{html.escape(section.title)}</h2>")
        for paragraph in section.text:
            md.append(paragraph + "\n")
            body.append(f"<p>{html.escape(paragraph)}</p>")
        for name, table in section.tables:
            md.append(markdown_table(table) + f"\n\n(`tables/{name}.csv`)\n")
            shown = table.map(fmt) if len(table) else table
            body.append(f'<div class="wide">{shown.to_html(index=False, escape=True, border=0, classes="t")}</div>')
        for name in section.figures:
            md.append(f"![{name}](figures/{name}.png)\n\n(numbers: `tables/{name}.csv`)\n")
            data = base64.b64encode((out / "figures" / f"{name}.png").read_bytes()).decode()
            body.append(
                f'<figure><img alt="{name}" src="data:image/png;base64,{data}"><figcaption>{name} '
                f"(numbers: tables/{name}.csv)</figcaption></figure>"
            )
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "table.t{border-collapse:collapse;font-size:13px;margin:1em 0}"
        "table.t td,table.t th{border-bottom:1px solid #ddd;padding:3px 8px;text-align:right}"
        "img{max-width:100%}figcaption{color:#666;font-size:12px}.wide{overflow-x:auto}"
    )
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Optimizer leaderboard</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>"
    )
    index, board = out / "index.html", out / "leaderboard.md"
    index.write_text(page)
    board.write_text("\n".join(md))
    return index, board


def report(
    trials: pd.DataFrame,
    curves: Path | None,
    out: Path,
    source: str,
    baseline: str = "adamw",
    time: str = "seconds",
    rank_by: dict[str, str] | None = None,
    studies: pd.DataFrame | None = None,
):
    """Build every section and write the report; returns the sections and the two files. The report is built in a
    staging directory and moved into `out` only when complete: a failure leaves the previous report as it was."""
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".report-", dir=out))
    try:
        sections = Report(trials, curves, staging, baseline, time, rank_by, studies).build()
        write(sections, staging, source)
        for name in ("figures", "tables"):
            if (out / name).exists():
                shutil.rmtree(out / name)
            if (staging / name).exists():
                os.replace(staging / name, out / name)
        for name in ("index.html", "leaderboard.md"):
            os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return sections, (out / "index.html", out / "leaderboard.md")
