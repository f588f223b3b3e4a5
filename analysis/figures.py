"""The report's figures, drawn with matplotlib in seaborn's theme from the same tables that are saved as CSV beside
them. One style per optimizer (colour, line style and marker) across every figure of a report, so that overlapping
curves stay distinguishable; constrained layout keeps labels and legends inside the figure."""

from __future__ import annotations

import itertools
import math

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

sns.set_theme(style="whitegrid", context="notebook")

LINESTYLES = ["-", "--", "-.", ":"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def palette(names) -> dict[str, dict]:
    """Optimizer -> {color, linestyle, marker}: colours from seaborn's palette (husl beyond ten), with line styles
    and markers cycling at different periods so that no two optimizers look alike."""
    names = sorted(set(names))
    colours = sns.color_palette(n_colors=len(names)) if len(names) <= 10 else sns.color_palette("husl", len(names))
    styles = itertools.cycle(LINESTYLES)
    markers = itertools.cycle(MARKERS)
    return {
        n: {"color": c, "linestyle": next(styles), "marker": next(markers)} for n, c in zip(names, colours, strict=True)
    }


def new_figure(width: float, height: float, ncols: int = 1, nrows: int = 1, **kw):
    return plt.subplots(nrows, ncols, figsize=(width, height), layout="constrained", squeeze=False, **kw)


def legend_outside(fig, ax) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside right upper", fontsize="small")


def profile_plot(curve: pd.DataFrame, styles: dict) -> plt.Figure:
    """rho(tau) per optimizer (columns optimizer, tau, rho)."""
    fig, axes = new_figure(8, 4.5)
    ax = axes[0, 0]
    for optimizer, group in curve.groupby("optimizer"):
        style = styles[optimizer]
        ax.step(group.tau, group.rho, where="post", color=style["color"], linestyle=style["linestyle"], label=optimizer)
    ax.set(xlabel="τ (time to target / fastest)", ylabel="fraction of tasks within τ", ylim=(-0.02, 1.02))
    legend_outside(fig, ax)
    return fig


def critical_difference_plot(ranks: pd.Series, cd: float, groups: list[list[str]], n_blocks: int) -> plt.Figure:
    """Demšar's diagram: mean ranks on an axis, a bar of length CD, and thick lines joining optimizers whose
    ranks are not significantly different; N (independent workloads) in the title."""
    k = len(ranks)
    ordered = ranks.sort_values()
    rows = (k + 1) // 2  # labels hang in two columns, half the optimizers each
    fig, axes = new_figure(9, 1.6 + 0.3 * rows + 0.12 * len(groups))
    ax = axes[0, 0]
    ax.set_xlim(-0.8, k + 1.8)
    ax.set_ylim(-0.5 * rows - 0.25 * len(groups) - 0.5, 1.6)
    ax.axhline(0, xmin=(1 + 0.8) / (k + 2.6), xmax=(k + 0.8) / (k + 2.6), color="black", lw=1)
    for r in range(1, k + 1):
        ax.plot([r, r], [0, 0.15], color="black", lw=1)
        ax.text(r, 0.3, str(r), ha="center", fontsize=9)
    ax.plot([1, 1 + cd], [1.1, 1.1], color="black", lw=2)
    ax.text(1 + cd / 2, 1.25, f"CD = {cd:.2f}", ha="center", fontsize=9)
    for i, (name, rank) in enumerate(ordered.items()):
        left = i < (k + 1) // 2
        y = -0.5 * (i + 1) if left else -0.5 * (k - i)
        x_text = 0.6 if left else k + 0.4
        ax.plot([rank, rank, x_text], [0, y, y], color="dimgray", lw=0.8)
        ax.text(x_text, y, f"{name} ({rank:.2f})", ha="right" if left else "left", va="center", fontsize=9)
    for j, group in enumerate(groups):
        y = -0.5 * rows - 0.25 * (j + 1)
        ax.plot([ordered[group[0]] - 0.03, ordered[group[-1]] + 0.03], [y, y], color="black", lw=3)
    ax.set_title(f"mean rank over N = {n_blocks} independent workloads (1 = best)", fontsize=10)
    ax.axis("off")
    return fig


def speedup_plot(table: pd.DataFrame, styles: dict) -> plt.Figure:
    """Median speedup over the baseline against scale with its 95% interval as error bars (columns workload,
    order, optimizer, speedup, low, high); points beyond the extrapolation limit are left out."""
    fig, axes = new_figure(8, 4.5)
    ax = axes[0, 0]
    offsets = np.linspace(-0.12, 0.12, max(table.optimizer.nunique(), 1))
    for offset, (optimizer, group) in zip(offsets, table.groupby("optimizer"), strict=False):
        shown = group[np.isfinite(group.speedup)]
        style = styles[optimizer]
        x = shown.order + offset
        low = (shown.speedup - shown.low).clip(lower=0).fillna(0)
        high = (shown.high - shown.speedup).clip(lower=0).replace(np.inf, 0).fillna(0)
        ax.errorbar(x, shown.speedup, yerr=[low, high], capsize=4, elinewidth=1.5, label=optimizer, **style)
    scales = table.drop_duplicates("order").sort_values("order")
    ax.set_xticks(scales.order, scales.workload, rotation=20, ha="right", rotation_mode="anchor")
    ax.axhline(1.0, color="black", lw=1, ls="--")
    ax.set(xlabel="workload (by model size)", ylabel="data-equivalent speedup over the baseline")
    legend_outside(fig, ax)
    return fig


def focus(values: pd.Series, marks: list[float], lower_is_better: bool) -> tuple[float, float]:
    """Vertical limits that show where curves differ: from the best value (and the target and optimum) to the 90th
    percentile of the values towards the worse side, so that a few early, far-off evaluations do not flatten the
    rest."""
    finite = values[np.isfinite(values)]
    if finite.empty:
        return (0.0, 1.0)
    marks = [m for m in marks if np.isfinite(m)]
    if lower_is_better:
        low, high = min([finite.min(), *marks]), max([finite.quantile(0.9), *marks])
    else:
        low, high = min([finite.quantile(0.1), *marks]), max([finite.max(), *marks])
    pad = 0.05 * (high - low) if high > low else 0.05 * max(abs(high), 1e-12)
    return low - pad, high + pad


def curve_plot(curves: pd.DataFrame, metric: str, styles: dict, lines: dict, lower_is_better: bool = True):
    """Median eval metric across seeds with a min-max band, against tokens and against timed seconds
    (columns optimizer, tokens, seconds, median, low, high); the target (dashed) and the known optimum (dotted)."""
    fig, axes = new_figure(12, 4.4, ncols=2, sharey=True)
    axes[0, 0].set_ylim(*focus(curves["median"], list(lines.values()), lower_is_better))
    for ax, x in zip(axes[0], ("tokens", "seconds"), strict=True):
        for optimizer, group in curves.groupby("optimizer"):
            style = styles[optimizer]
            ax.plot(group[x], group["median"], label=optimizer, markersize=3, **style)
            ax.fill_between(group[x], group["low"], group["high"], color=style["color"], alpha=0.15, lw=0)
        if np.isfinite(lines.get("target", np.nan)):
            ax.axhline(lines["target"], color="black", ls="--", lw=1, label=f"target {lines['target']:.4g}")
        if np.isfinite(lines.get("optimum", np.nan)):
            ax.axhline(lines["optimum"], color="gray", ls=":", lw=1.2, label=f"optimum {lines['optimum']:.4g}")
        ax.set(xlabel="tokens" if x == "tokens" else "timed training seconds", ylabel=f"eval {metric}")
    legend_outside(fig, axes[0, 0])
    return fig


def lr_sensitivity_plot(table: pd.DataFrame, styles: dict) -> plt.Figure:
    """Final metric against learning rate, one panel per task (columns task, optimizer, lr, final_metric,
    diverged); a diverged configuration is a × at the top of its panel."""
    tasks = sorted(table.task.unique())
    cols = min(3, len(tasks))
    rows = -(-len(tasks) // cols)
    fig, axes = new_figure(4.4 * cols + 1.6, 3.4 * rows, ncols=cols, nrows=rows)
    for ax, (task, group) in zip(axes.flat, table.groupby("task"), strict=False):
        finite = group[~group.diverged & np.isfinite(group.final_metric)]
        top = finite.final_metric.max() if len(finite) else 1.0
        for optimizer, points in group.groupby("optimizer"):
            style = styles[optimizer]
            ok = points[~points.diverged]
            ax.plot(ok.lr, ok.final_metric, ms=4, label=optimizer, **style)
            bad = points[points.diverged]
            ax.plot(bad.lr, [top] * len(bad), "x", color=style["color"], ms=7, mew=2)
        ax.set(xscale="log", title=task, xlabel="learning rate", ylabel="final eval metric")
        ax.title.set_fontsize(10)
    for ax in axes.flat[len(tasks) :]:
        ax.axis("off")
    handles = {h.get_label(): h for ax in axes.flat for h in ax.get_lines() if not h.get_label().startswith("_")}
    fig.legend(list(handles.values()), list(handles), loc="outside right upper", fontsize="small")
    return fig


def tuning_cost_plot(cost: pd.DataFrame, styles: dict) -> plt.Figure:
    """Expected best final metric after k trials, against k and against compute (columns task, optimizer, k,
    expected_best, seconds); one row of panels per task."""
    tasks = sorted(cost.task.unique())
    fig, axes = new_figure(12, 3.4 * len(tasks), ncols=2, nrows=len(tasks))
    for row, task in zip(axes, tasks, strict=True):
        group = cost[cost.task == task]
        for ax, x, label in zip(row, ("k", "seconds"), ("trials of the search (k)", "training seconds"), strict=True):
            for optimizer, points in group.groupby("optimizer"):
                ax.plot(points[x], points.expected_best, ms=4, label=optimizer, **styles[optimizer])
            ax.set(xlabel=label, ylabel="expected best metric", title=task)
            ax.title.set_fontsize(10)
        row[0].xaxis.set_major_locator(MaxNLocator(integer=True))  # k counts trials
    legend_outside(fig, axes[0, 0])
    return fig


def protocols_plot(numbers: pd.DataFrame) -> plt.Figure:
    """Best final metric against training steps spent, one point per protocol with both intervals (columns
    workload, optimizer, protocol, steps[_low, _high], best[_low, _high], metric); one panel per workload."""
    workloads = sorted(numbers.workload.unique())
    fig, axes = new_figure(4.6 * len(workloads), 3.8, ncols=len(workloads))
    for ax, workload in zip(axes[0], workloads, strict=True):
        group = numbers[numbers.workload == workload]
        for row in group.itertuples():
            xerr = [[row.steps - row.steps_low], [row.steps_high - row.steps]] if np.isfinite(row.steps_low) else None
            yerr = [[row.best - row.best_low], [row.best_high - row.best]] if np.isfinite(row.best_low) else None
            ax.errorbar(
                row.steps, row.best, xerr=xerr, yerr=yerr, fmt="o", capsize=3, label=f"{row.optimizer} {row.protocol}"
            )
        ax.set(xlabel="training steps spent by the search", ylabel=f"best {group.metric.iloc[0]}", title=workload)
    legend_outside(fig, axes[0, -1])
    return fig


def prediction_plot(table: pd.DataFrame, at: float) -> plt.Figure:
    """Predicted against actual final loss (columns workload, predicted, low, high, actual), one panel per
    workload, with each prediction's 95% interval and the line where they agree."""
    workloads = sorted(table.workload.unique())
    fig, axes = new_figure(4.2 * len(workloads), 4, ncols=len(workloads))
    for ax, workload in zip(axes[0], workloads, strict=True):
        group = table[table.workload == workload]
        has = group.low.notna()
        errors = np.vstack([(group.predicted - group.low)[has], (group.high - group.predicted)[has]])
        ax.errorbar(group.actual[has], group.predicted[has], yerr=errors, fmt="o", ms=4, alpha=0.7, label="95% int.")
        ax.plot(group.actual[~has], group.predicted[~has], "x", label="no interval")
        span = [group.actual.min(), group.actual.max()]
        ax.plot(span, span, "k--", lw=1, label="predicted = actual")
        ax.set(xlabel="actual final loss", ylabel=f"predicted from the first {at:.0%}", title=workload)
        ax.set_ylim(*focus(pd.concat([group.actual, group.predicted]), span, True))
    axes[0, 0].legend(fontsize=8)
    return fig


def transfer_plot(optima: pd.DataFrame, law: dict, predicted: pd.DataFrame) -> plt.Figure:
    """The optimum lr of each tuned task (with its interval) against N (or D, when N does not vary), the fitted
    power law through them, and each prediction with the local optimum found around it."""
    axis = "N" if optima.N.nunique() > 1 else "D"
    fig, axes = new_figure(5.5, 4)
    ax = axes[0, 0]
    has = optima.low.notna()
    errors = np.vstack([(optima.lr - optima.low)[has], (optima.high - optima.lr)[has]])
    ax.errorbar(optima[axis][has], optima.lr[has], yerr=errors, fmt="o", capsize=3, label="tuned optimum (vertex)")
    if (~has).any():
        ax.plot(optima[axis][~has], optima.lr[~has], "s", label="tuned optimum (best trial)")
    span = np.geomspace(optima[axis].min(), max(optima[axis].max(), *(predicted.get(axis, pd.Series(dtype=float)))), 50)
    other = "D" if axis == "N" else "N"
    fixed = float(np.exp(np.log(optima[other]).mean()))
    coef = dict(zip(law["terms"], law["coef"], strict=True))
    line = [
        math.exp(
            coef.get("1", 0) + coef.get("log " + axis, 0) * math.log(x) + coef.get("log " + other, 0) * math.log(fixed)
        )
        for x in span
    ]
    ax.plot(span, line, "k--", lw=1, label="fitted power law")
    if not predicted.empty and axis in predicted:
        ax.plot(predicted[axis], predicted.predicted_lr, "^", label="predicted")
        ax.plot(predicted[axis], predicted.local_optimum_lr, "v", label="local optimum around it")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel=f"{axis} ({'non-embedding parameters' if axis == 'N' else 'training tokens'})",
        ylabel="optimal lr",
    )
    ax.legend(fontsize=8)
    return fig


def save(fig: plt.Figure, path) -> None:
    fig.savefig(path, dpi=90)
    plt.close(fig)
