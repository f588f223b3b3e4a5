"""The report's figures, drawn with seaborn from the same tables that are saved as CSV beside them."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

sns.set_theme(style="whitegrid", context="notebook")


def profile_plot(curve: pd.DataFrame) -> plt.Figure:
    """rho(tau) per optimizer (columns optimizer, tau, rho)."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    sns.lineplot(data=curve, x="tau", y="rho", hue="optimizer", drawstyle="steps-post", ax=ax, errorbar=None)
    ax.set(xlabel="τ (time to target / best)", ylabel="fraction of tasks within τ", ylim=(-0.02, 1.02))
    ax.legend(fontsize="small", ncols=2)
    return fig


def critical_difference_plot(ranks: pd.Series, cd: float, groups: list[list[str]]) -> plt.Figure:
    """Demšar's diagram: mean ranks on an axis, a bar of length CD, and thick lines joining optimizers whose
    ranks are not significantly different."""
    k = len(ranks)
    ordered = ranks.sort_values()
    fig, ax = plt.subplots(figsize=(8, 1.6 + 0.3 * k))
    ax.set_xlim(0.5, k + 0.5)
    ax.set_ylim(-(k + 1) * 0.5 - 0.5 * len(groups), 1.5)
    ax.axhline(0, color="black", lw=1)
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
        ax.text(x_text, y, f"{name} ({rank:.2f})", ha="left" if left else "right", va="bottom", fontsize=9)
    for j, group in enumerate(groups):
        y = -0.5 * (k + 1) / 2 - 0.25 * (j + 1)
        ax.plot([ordered[group[0]] - 0.03, ordered[group[-1]] + 0.03], [y, y], color="black", lw=3)
    ax.axis("off")
    return fig


def speedup_plot(table: pd.DataFrame) -> plt.Figure:
    """Median speedup over the baseline against scale (columns workload, order, optimizer, speedup, ci_low, ci_high)."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    sns.lineplot(data=table, x="order", y="speedup", hue="optimizer", marker="o", ax=ax, errorbar=None)
    for _, row in table.dropna(subset=["ci_low", "ci_high"]).iterrows():
        ax.plot([row.order, row.order], [row.ci_low, row.ci_high], color="gray", lw=1, alpha=0.7)
    scales = table.drop_duplicates("order").sort_values("order")
    ax.set_xticks(scales.order, scales.workload, rotation=30)
    ax.axhline(1.0, color="black", lw=1, ls="--")
    ax.set(xlabel="workload (by model size)", ylabel="data-equivalent speedup over the baseline")
    return fig


def palette(names) -> dict:
    names = sorted(set(names))
    return dict(zip(names, sns.color_palette(n_colors=len(names)), strict=True))


def curve_plot(curves: pd.DataFrame, metric: str) -> plt.Figure:
    """Median eval metric across seeds with a min-max band, against tokens and against timed seconds
    (columns optimizer, tokens, seconds, median, low, high). Drawn with matplotlib in seaborn's theme: a sweep's
    report has one such figure per task."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    colours = palette(curves.optimizer)
    for ax, x in zip(axes, ("tokens", "seconds"), strict=True):
        for optimizer, group in curves.groupby("optimizer"):
            ax.plot(group[x], group["median"], color=colours[optimizer], label=optimizer)
            ax.fill_between(group[x], group["low"], group["high"], color=colours[optimizer], alpha=0.2, lw=0)
        ax.set(xlabel="tokens" if x == "tokens" else "timed training seconds", ylabel=f"eval {metric}")
    axes[0].legend(fontsize="small")
    return fig


def lr_sensitivity_plot(table: pd.DataFrame) -> plt.Figure:
    """Final metric against learning rate, one panel per task (columns task, optimizer, lr, final_metric)."""
    tasks = sorted(table.task.unique())
    cols = min(3, len(tasks))
    rows = -(-len(tasks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    colours = palette(table.optimizer)
    for ax, (task, group) in zip(axes.flat, table.groupby("task"), strict=False):
        for optimizer, points in group.groupby("optimizer"):
            ax.plot(points.lr, points.final_metric, "o-", ms=3, color=colours[optimizer], label=optimizer)
        ax.set(xscale="log", title=task, xlabel="learning rate", ylabel="final eval metric")
    for ax in axes.flat[len(tasks) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize="small")
    fig.subplots_adjust(hspace=0.45, wspace=0.3, left=0.08, right=0.97, top=0.95, bottom=0.06)
    return fig


def save(fig: plt.Figure, path) -> None:
    fig.savefig(path, dpi=90)  # (a tight bounding box would measure every tick label: seconds per large figure)
    plt.close(fig)
