"""The leaderboard report: every table and figure of a comparison, written as DIR/index.html (self-contained, images
embedded), DIR/leaderboard.md, DIR/figures/<name>.png and DIR/tables/<name>.csv (the numbers behind each figure
under the same name)."""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import figures
from analysis.collect import read_curves
from analysis.profile import benchmark_score, performance_ratios, profile
from analysis.speedup import MIN_BUDGETS, speedup_table
from analysis.stats import average_ranks, cliques, friedman, nemenyi_cd
from analysis.tables import write_csv
from analysis.tuning import COMPARED, best_configs, calibrated_default, config_results, trials_frame, tuned_vs_default

PROVENANCE = {
    "provenance.data_fingerprint": "data fingerprints",
    "provenance.device": "hardware",
    "provenance.torch_version": "torch versions",
    "provenance.git_commit": "code versions",
}


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
        return f"{value:.4g}"
    return str(value)


def markdown_table(df: pd.DataFrame) -> str:
    cells = [[fmt(v).replace("|", "\\|") for v in row] for row in df.itertuples(index=False)]
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


class Report:
    """Builds the sections from a trials table (and its curves, when collected from run directories)."""

    def __init__(self, trials: pd.DataFrame, curves: Path | None, out: Path, baseline: str = "adamw"):
        self.raw = trials
        self.trials = trials_frame(trials)
        self.curves_path = curves
        self.out = out
        self.baseline = baseline
        self.configs = config_results(self.trials)
        self.best = best_configs(self.configs)
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

    def best_trials(self) -> pd.DataFrame:
        """The trials (all seeds) of each task's and optimizer's tuned configuration."""
        keys = self.best[["task", "optimizer", "hparams"]]
        compared = self.trials[self.trials.status.isin(COMPARED)]
        return compared.merge(keys, on=["task", "optimizer", "hparams"])

    def score_matrix(self) -> pd.DataFrame:
        """Task x optimizer tuned scores on the tasks every optimizer ran (complete blocks for ranks)."""
        return self.best.pivot(index="task", columns="optimizer", values="score").dropna()

    # --- sections ------------------------------------------------------------------------------------------------
    def build(self) -> list[Section]:
        speedups = self.speedups()
        ratios = performance_ratios(
            self.best[["task", "optimizer", "time_to_target"]].rename(columns={"task": "workload"})
        )
        reached = np.isfinite(ratios.to_numpy()).any()
        self.sections = [
            self.leaderboard(ratios if reached else None, speedups),
            self.tuning_section(),
            self.speedup_section(speedups),
            self.curves_section(),
            self.profile_section(ratios if reached else None),
            self.ranks_section(),
            self.lr_section(),
            self.provenance_section(),
        ]
        return self.sections

    def leaderboard(self, ratios: pd.DataFrame | None, speedups: pd.DataFrame | None) -> Section:
        status = self.trials.groupby("optimizer").status
        board = pd.DataFrame(
            {
                "trials": status.size(),
                "failed": status.apply(lambda s: int((s == "failed").sum())),
                "diverged": status.apply(lambda s: int((s == "diverged").sum())),
                "tasks": self.best.groupby("optimizer").task.nunique(),
            }
        )
        board["profile_score"] = benchmark_score(ratios) if ratios is not None else np.nan
        matrix = self.score_matrix()
        board["mean_rank"] = average_ranks(matrix) if len(matrix) and matrix.shape[1] > 1 else np.nan
        if speedups is not None:
            for workload, group in speedups.groupby("workload", sort=False):
                cells = group.set_index("optimizer").apply(
                    lambda r: (
                        f"{r.speedup:.3g} [{r.ci_low:.3g}, {r.ci_high:.3g}]"
                        if np.isfinite(r.ci_low)
                        else fmt(r.speedup)
                    ),
                    axis=1,
                )
                board[f"speedup {workload}"] = cells
        board = board.sort_values(["profile_score", "mean_rank"], ascending=[False, True]).reset_index()
        text = [
            f"{len(self.trials)} trials on {self.trials.task.nunique()} task(s). Each optimizer is compared at its "
            "tuned configuration per task: the one with the best median held-out metric over seeds at the end of "
            "training. Profile score: area under the performance profile for τ in [1, 4], divided by 3 (AlgoPerf). "
            f"Mean rank over the {len(matrix)} task(s) every optimizer ran (1 = best). "
            f"Speedup: median over budgets of the data-equivalent speedup over {self.baseline} at that scale, "
            "with the median bootstrap 95% interval."
        ]
        if ratios is None:
            text.append("No tuned configuration reached a target, or no task has one: no profile scores.")
        return Section("Leaderboard", text, [("leaderboard", self.table("leaderboard", board))])

    def tuning_section(self) -> Section:
        tvd = self.table("tuned_vs_default", tuned_vs_default(self.configs))
        calibrated = self.table("calibrated_default", calibrated_default(self.configs))
        text = [
            "Default: the authors' defaults (median over seeds). Tuned: the best configuration found (median over "
            "its seeds). Gap: how much tuning improved the metric (positive = tuning helped); configs_tried is the "
            "tuning budget.",
            "Calibrated default: per optimizer, the one configuration tried on every task with the best mean "
            "normalised result (0 = best result on the task, 1 = worst), against tuning on each task separately.",
        ]
        if calibrated.empty:
            text.append("No configuration was tried on two or more tasks, so no calibrated default exists yet.")
        return Section("Tuned versus default", text, [("tuned_vs_default", tvd), ("calibrated_default", calibrated)])

    def speedups(self) -> pd.DataFrame | None:
        """Median data-equivalent speedup per optimizer and scale, where the baseline has enough budgets."""
        best = self.best_trials()
        best = best[best.lower_is_better.astype(bool)]
        base = best[best.optimizer == self.baseline]
        budgets = base.groupby("workload").budget_tokens.nunique()
        scales = budgets[budgets >= MIN_BUDGETS].index
        points = best[best.workload.isin(scales)]
        if points.empty or points.optimizer.nunique() < 2:
            return None
        table = speedup_table(points, baseline=self.baseline)
        self.table("speedup_points", table)
        summary = table.groupby(["workload", "optimizer"], as_index=False).agg(
            speedup=("speedup", "median"),
            ci_low=("ci_low", "median"),
            ci_high=("ci_high", "median"),
            budgets=("budget_tokens", "nunique"),
            beyond_fit=("status", lambda s: int((s != "ok").sum())),
        )
        order = self.scale_order()
        summary["order"] = summary.workload.map(order)
        return summary.sort_values(["order", "optimizer"]).reset_index(drop=True)

    def scale_order(self) -> dict:
        size = "params_non_embedding" if "params_non_embedding" in self.trials else "workload"
        ranked = self.trials.groupby("workload")[size].first().sort_values()
        return {name: i for i, name in enumerate(ranked.index)}

    def speedup_section(self, speedups: pd.DataFrame | None) -> Section:
        section = Section("Speedup versus scale")
        if speedups is None:
            section.text.append(
                f"Not available: no scale where the baseline {self.baseline} has at least {MIN_BUDGETS} budgets "
                "and another optimizer ran (the fit of loss against data needs them)."
            )
            return section
        section.text.append(
            f"Data-equivalent speedup ('Fantastic Pretraining Optimizers'): the data {self.baseline} needs to reach "
            "each optimizer's final loss, from a fit L(D) = α·D^(−B) + β of its tuned losses, divided by the data "
            "used. Per-budget values are in speedup_points.csv."
        )
        section.figures.append(self.figure("speedup_vs_scale", figures.speedup_plot(speedups), speedups))
        return section

    def curves_section(self) -> Section:
        section = Section("Eval metric over training")
        best = self.best_trials()
        if self.curves_path is None or not self.curves_path.is_dir() or "run_dir" not in best:
            section.text.append("Not available: curves come from run directories (collect), not from a CSV.")
            return section
        curves = read_curves(self.curves_path, set(best.run_dir), columns=is_curve_column)
        section.text.append(
            "Tuned configuration per optimizer: median over seeds, the band spans the seeds' minimum to maximum; "
            "against tokens and against timed training seconds (evaluation excluded)."
        )
        metric_names = self.raw.groupby("workload")["metric_name"].first() if "metric_name" in self.raw else {}
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
            section.figures.append(self.figure(f"curves_{slug(task)}", figures.curve_plot(numbers, metric), numbers))
        return section

    def profile_section(self, ratios: pd.DataFrame | None) -> Section:
        section = Section("Performance profile")
        if ratios is None:
            section.text.append("Not available: no task has a target, or no tuned configuration reached one.")
            return section
        section.text.append(
            "ρ(τ): the fraction of tasks on which an optimizer's tuned time to target (timed seconds, median over "
            "seeds) is within τ of the fastest; a missed target or a ratio above 4 never counts."
        )
        self.table("performance_ratios", ratios.reset_index())
        curve = profile(ratios)
        section.figures.append(self.figure("performance_profile", figures.profile_plot(curve), curve))
        return section

    def ranks_section(self) -> Section:
        section = Section("Ranks and significance")
        matrix = self.score_matrix()
        k, n = matrix.shape[1], len(matrix)
        if k < 2 or n < 2:
            section.text.append(
                f"Not available: the Friedman test needs at least 2 optimizers on at least 2 common tasks "
                f"(have {k} on {n})."
            )
            return section
        ranks = average_ranks(matrix)
        test = friedman(ranks.to_numpy(), n)
        cd = nemenyi_cd(k, n)
        groups = cliques(ranks, cd)
        section.text.append(
            f"Friedman test over {n} tasks and {k} optimizers: χ² = {test.chi2:.3f} (p = {test.p_chi2:.3g}); "
            f"Iman–Davenport F = {test.f:.3f} (p = {test.p_f:.3g}). Nemenyi critical difference at α = 0.05: "
            f"{cd:.3f}. Optimizers joined by a bar are not significantly different."
        )
        numbers = ranks.rename_axis("optimizer").reset_index()
        numbers["critical_difference"] = cd
        numbers["group"] = [";".join(str(i) for i, g in enumerate(groups) if name in g) for name in numbers.optimizer]
        fig = figures.critical_difference_plot(ranks, cd, groups)
        section.figures.append(self.figure("critical_difference", fig, numbers))
        return section

    def lr_section(self) -> Section:
        section = Section("Learning-rate sensitivity")
        points = self.configs.dropna(subset=["lr"])
        points = points[np.isfinite(points.final_metric) & (pd.to_numeric(points.lr, errors="coerce") > 0)]
        if points.empty:
            section.text.append("Not available: no trial records a learning rate.")
            return section
        section.text.append(
            "Final held-out metric (median over seeds) of every configuration tried, against its learning rate; "
            "a flat curve means the optimizer is forgiving, a narrow valley means it needs tuning."
        )
        numbers = points[["task", "optimizer", "lr", "final_metric", "seeds", "hparams"]].sort_values(
            ["task", "optimizer", "lr"]
        )
        numbers = numbers.astype({"lr": float})
        section.figures.append(self.figure("lr_sensitivity", figures.lr_sensitivity_plot(numbers), numbers))
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
            body.append(shown.to_html(index=False, escape=True, border=0, classes="t"))
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
        "img{max-width:100%}figcaption{color:#666;font-size:12px}"
    )
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Optimizer leaderboard</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>"
    )
    index, board = out / "index.html", out / "leaderboard.md"
    index.write_text(page)
    board.write_text("\n".join(md))
    return index, board


def report(trials: pd.DataFrame, curves: Path | None, out: Path, source: str, baseline: str = "adamw"):
    """Build every section and write the report; returns the sections and the two files."""
    out.mkdir(parents=True, exist_ok=True)
    sections = Report(trials, curves, out, baseline).build()
    return sections, write(sections, out, source)
