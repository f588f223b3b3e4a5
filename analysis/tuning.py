"""From trials to tuned results, with selection and scoring on different seeds.

The policies (docs/analysis.md: Analysis policies), each applied here once and read by every table and figure:
- Selection: per task and optimizer, the search seed is the seed on which most configurations ran (seed 0 in a
  sweep); the tuned configuration is the one with the best final held-out metric on that seed.
- Scoring: the tuned configuration and the authors' defaults are scored on the other seeds (a sweep's
  `tuning.seeds` reruns both), which played no part in the selection; with none, the result is the selection
  seed's and is marked in-sample.
- Diverged = the worst result (score +inf, worst rank, infinite time to target); failed or unfinished = missing
  (listed in the report with its error); a task an optimizer never ran is "not run", never a miss.

Also the workload-agnostic calibrated default (Kasimbeg et al., 'How far away are truly hyperparameter-free
learning algorithms?'), scored leave-one-workload-out, and the expected best result after k random-search trials
(Dodge et al. 2019, 'Show Your Work')."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from scipy.special import comb

from analysis.speedup import check_columns
from analysis.stats import t_interval
from suite.schema import FINISHED, TrialStatus, best_of

OPTIONAL = {
    "seed": 0,
    "status": TrialStatus.COMPLETED.value,
    "lower_is_better": True,
    "hparams": "",
    "default": False,
    "lr": np.nan,
    "budget_tokens": np.nan,
    "time_to_target": np.nan,
    "final_metric": np.nan,
    "train_time_s": np.nan,
    "error": "",
}
COMPARED = FINISHED  # a diverged trial is a result (the worst); failed or unfinished ones are missing
CELL = ["task", "optimizer"]


TIME_COLUMNS = {"seconds": "time_to_target", "tokens": "tokens_to_target"}  # what time to target is counted in


def parse_rank_by(text: str) -> dict[str, str]:
    """'cnn_digits=loss,w2=loss' -> {'cnn_digits': 'loss', ...}: workloads ranked by a held-out loss other than their
    metric."""
    pairs = [item.partition("=") for item in text.split(",") if item]
    if any(not sep or not w or "loss" not in name for w, sep, name in pairs):
        raise ValueError(f"--rank-by takes WORKLOAD=LOSS pairs (a held-out loss, e.g. cnn_digits=loss), not {text!r}")
    return {w: name for w, _, name in pairs}


def trials_frame(
    df: pd.DataFrame,
    required=("optimizer", "workload", "final_metric"),
    time: str = "seconds",
    rank_by: dict[str, str] | None = None,
) -> pd.DataFrame:
    """The collected table or an external CSV in the columns the analyses read (docs/analysis.md: Analysis columns),
    with `task` (the workload, or 'workload @ budget' where a workload was run at several budgets) and `score`
    (the final metric oriented so that lower is better; +inf for a diverged run or a missing value). `time`:
    whether time to target is counted in timed seconds (valid from a quiet machine) or in tokens (valid under
    any load). `rank_score` is what ranks the tuned results: the score, or for the workloads in `rank_by` the
    held-out loss named there (`final.<name>`: cnn_digits' accuracy on 359 images moves in steps of 0.28%, too
    coarse to rank by); the selection stays on the workload's own metric, as the sweep's."""
    df = df.copy()
    if time not in TIME_COLUMNS:
        raise ValueError(f"time to target is counted in {' or '.join(TIME_COLUMNS)}, not {time!r}")
    if time == "tokens":
        check_columns(df, ("tokens_to_target",))
        df["time_to_target"] = df["tokens_to_target"]
    check_columns(df, required)
    for column, value in OPTIONAL.items():
        if column not in df.columns:
            df[column] = value
    df["workload"] = df["workload"].astype(str)
    df["optimizer"] = df["optimizer"].astype(str)
    df["seed"] = pd.to_numeric(df["seed"], errors="coerce").fillna(0).astype(int)
    df["status"] = df["status"].fillna(TrialStatus.COMPLETED.value).astype(str)
    df["final_metric"] = pd.to_numeric(df["final_metric"], errors="coerce")
    df["budget_tokens"] = pd.to_numeric(df["budget_tokens"], errors="coerce")
    df["time_to_target"] = pd.to_numeric(df["time_to_target"], errors="coerce").fillna(np.inf)
    df["default"] = df["default"].fillna(False).astype(bool)
    df["hparams"] = df["hparams"].fillna("").astype(str)
    lower = df["lower_is_better"].fillna(True).astype(bool)
    score = df["final_metric"].where(lower, -df["final_metric"])
    diverged = df.status == TrialStatus.DIVERGED
    df["score"] = score.where(np.isfinite(score) & ~diverged, np.inf)
    df.loc[diverged, "time_to_target"] = np.inf
    df["rank_score"] = df["score"]
    for workload, name in (rank_by or {}).items():
        check_columns(df, (f"final.{name}",))
        value = pd.to_numeric(df[f"final.{name}"], errors="coerce")
        mine = df.workload == workload
        df.loc[mine, "rank_score"] = value.where(np.isfinite(value) & ~diverged, np.inf)[mine]
    budgets = df.groupby("workload")["budget_tokens"].transform("nunique")
    df["task"] = df["workload"].where(
        budgets <= 1, df["workload"] + " @ " + df["budget_tokens"].map("{:.3g}".format) + " tokens"
    )
    return df


def compared(trials: pd.DataFrame) -> pd.DataFrame:
    return trials[trials.status.isin(COMPARED)]


NO_SELECTION = -1  # the search seed of a cell with one configuration: nothing was selected, every seed scores


def search_seeds(trials: pd.DataFrame) -> pd.Series:
    """Per (task, optimizer): the seed on which most configurations ran (the lowest on a tie), or NO_SELECTION
    where only one configuration ran (the defaults alone, or an external table without hyperparameters)."""
    finished = compared(trials)
    counts = finished.groupby([*CELL, "seed"]).hparams.nunique().rename("n").reset_index()
    counts = counts.sort_values([*CELL, "n", "seed"], ascending=[True, True, False, True])
    seeds = counts.groupby(CELL).head(1).set_index(CELL).seed.rename("search_seed")
    single = finished.groupby(CELL).hparams.nunique().reindex(seeds.index) == 1
    return seeds.where(~single, NO_SELECTION)


def config_results(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, optimizer, hparams) on the search seed: the results the selection compares."""
    rows = compared(trials).join(search_seeds(trials), on=CELL)
    rows = rows[(rows.seed == rows.search_seed) | (rows.search_seed == NO_SELECTION)]
    return (
        rows.groupby([*CELL, "hparams"], as_index=False, sort=True)
        .agg(
            score=("score", "median"),
            rank_score=("rank_score", "median"),
            final_metric=("final_metric", "median"),
            time_to_target=("time_to_target", "median"),
            train_time_s=("train_time_s", "median"),
            default=("default", "max"),
            lr=("lr", "first"),
            workload=("workload", "first"),
            budget_tokens=("budget_tokens", "first"),
            search_seed=("search_seed", "first"),
        )
        .astype({"default": bool})
    )


def hyperparameter_values(hparams: str) -> dict:
    """A trial's hyperparameters (JSON text) as the values the selection rule orders ties by; free text as text."""
    try:
        parsed = json.loads(hparams)
    except ValueError:
        parsed = None
    return parsed if isinstance(parsed, dict) else {"": hparams}


def selection(trials: pd.DataFrame) -> pd.DataFrame:
    """Per (task, optimizer): the tuned configuration (best on the search seed, by the sweep's own rule:
    suite/schema.best_of), how many configurations the search compared, and the defaults' configuration (when a
    trial ran them)."""
    configs = config_results(trials)
    tried = configs.groupby(CELL).size().rename("configs_tried")
    winner = {
        cell: best_of(dict(zip(rows.hparams, rows.score, strict=True)), hyperparameter_values)[0]
        for cell, rows in configs.groupby(CELL)
    }
    cells = zip(configs.task, configs.optimizer, strict=True)
    best = configs[[winner[c] == h for c, h in zip(cells, configs.hparams, strict=True)]].set_index(CELL)
    finished = compared(trials)
    defaults = finished[finished.default].groupby(CELL).hparams.first().rename("default_hparams")
    columns = ["workload", "budget_tokens", "hparams", "search_seed", "score", "rank_score"]
    return best[columns].join(tried).join(defaults).reset_index()


def scoring_trials(trials: pd.DataFrame, chosen: pd.DataFrame, column: str) -> pd.DataFrame:
    """The finished trials of each cell's configuration `chosen[column]` on seeds other than its search seed."""
    keys = chosen[[*CELL, column, "search_seed"]].dropna(subset=[column]).rename(columns={column: "hparams"})
    rows = compared(trials).merge(keys, on=[*CELL, "hparams"])
    return rows[rows.seed != rows.search_seed]


def tuned_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """The finished trials of each cell's tuned configuration on its scoring seeds (on its search seed where it has
    no other: in-sample, as the report marks it). What the speedups and curves are computed from."""
    chosen = selection(trials)
    scored = scoring_trials(trials, chosen, "hparams")
    missing = chosen.set_index(CELL).index.difference(scored.set_index(CELL).index)
    in_sample = compared(trials).merge(chosen.set_index(CELL).loc[missing].reset_index()[[*CELL, "hparams"]])
    return pd.concat([scored, in_sample], ignore_index=True)


def metric_sign(trials: pd.DataFrame) -> pd.Series:
    """Per task: +1 when lower is better, -1 when higher is (score = sign * metric)."""
    lower = trials.groupby("task").lower_is_better.first().fillna(True).astype(bool)
    return lower.map({True: 1.0, False: -1.0})


def tuned_results(trials: pd.DataFrame) -> pd.DataFrame:
    """Per (task, optimizer): the tuned configuration's result on its scoring seeds (mean, with Student's t 95%
    interval over seeds, in the metric's own units; +inf when a seed diverged), or on the selection seed when it
    has no other (in_sample); and the same for its rank_score."""
    chosen = selection(trials)
    scored = scoring_trials(trials, chosen, "hparams").groupby(CELL)
    sign = metric_sign(trials)
    rows = []
    for cell in chosen.itertuples(index=False):
        key = (cell.task, cell.optimizer)
        held_out = key in scored.groups
        scores = scored.get_group(key).score.to_numpy() if held_out else np.array([cell.score])
        ranked = scored.get_group(key).rank_score.to_numpy() if held_out else np.array([cell.rank_score])
        low, high = t_interval(scores)
        rank_low, rank_high = t_interval(ranked)
        s = sign[cell.task]
        rows.append(
            {
                "task": cell.task,
                "workload": cell.workload,
                "budget_tokens": cell.budget_tokens,
                "optimizer": cell.optimizer,
                "hparams": cell.hparams,
                "configs_tried": cell.configs_tried,
                "seeds": len(scores),
                "in_sample": not held_out,
                "score": float(np.mean(scores)),
                "diverged": int(np.isinf(scores).sum()),
                "final_metric": s * float(np.mean(scores)),
                "low": min(s * low, s * high),
                "high": max(s * low, s * high),
                "rank_score": float(np.mean(ranked)),  # lower is better
                "rank_low": rank_low,
                "rank_high": rank_high,
            }
        )
    return pd.DataFrame(rows)


def tuned_vs_default(trials: pd.DataFrame) -> pd.DataFrame:
    """Per (task, optimizer), on the seeds both the tuned configuration and the defaults ran other than the search
    seed: the mean default and tuned results, and the mean paired gap (default - tuned, in the metric's units;
    positive = tuning helped, negative possible) with Student's t 95% interval over those seeds."""
    chosen = selection(trials)
    by_seed = {
        column: {key: g.set_index("seed").score for key, g in scoring_trials(trials, chosen, column).groupby(CELL)}
        for column in ("hparams", "default_hparams")
    }
    sign = metric_sign(trials)
    rows = []
    for cell in chosen.itertuples(index=False):
        key = (cell.task, cell.optimizer)
        t = by_seed["hparams"].get(key, pd.Series(dtype=float))
        d = by_seed["default_hparams"].get(key, pd.Series(dtype=float))
        shared = sorted(set(t.index) & set(d.index))
        t, d = t[shared].to_numpy(), d[shared].to_numpy()
        row = {
            "task": cell.task,
            "optimizer": cell.optimizer,
            "seeds": len(shared),
            "configs_tried": cell.configs_tried,
        }
        row["default"] = sign[cell.task] * float(np.mean(d)) if len(shared) else np.nan
        row["tuned"] = sign[cell.task] * float(np.mean(t)) if len(shared) else np.nan
        row["gap"] = row["low"] = row["high"] = np.nan
        if pd.isna(cell.default_hparams):
            row["note"] = "no trial ran the defaults"
        elif not shared:
            row["note"] = "not measured: no scoring seed (run the sweep with tuning.seeds >= 2)"
        elif np.isinf(d).any() and np.isfinite(t).all():
            row["note"] = f"default diverged on {int(np.isinf(d).sum())} of {len(shared)} seeds (tuning rescued it)"
        elif np.isinf(t).any():
            row["note"] = f"tuned diverged on {int(np.isinf(t).sum())} of {len(shared)} seeds"
        else:
            gaps = d - t
            row["gap"] = float(gaps.mean())
            row["low"], row["high"] = t_interval(gaps)
            within = len(shared) > 1 and row["low"] <= 0 <= row["high"]
            row["note"] = "within the seed noise" if within else ""
        row["tuned_hparams"] = cell.hparams
        rows.append(row)
    columns = ["task", "optimizer", "default", "tuned", "gap", "low", "high", "seeds", "configs_tried", "note"]
    return pd.DataFrame(rows, columns=[*columns, "tuned_hparams"])


def normalised_scores(configs: pd.DataFrame) -> pd.Series:
    """Each configuration's score mapped per task to [0, 1]: 0 the best finite result of any optimizer on that task,
    1 the worst (a diverged result is 1)."""
    finite = configs.score.where(np.isfinite(configs.score))
    low = finite.groupby(configs.task).transform("min")
    high = finite.groupby(configs.task).transform("max")
    span = (high - low).where(high > low, 1.0)
    return ((configs.score - low) / span).clip(upper=1.0).fillna(1.0)


def calibrated_default(trials: pd.DataFrame) -> pd.DataFrame:
    """Per optimizer with configurations tried on tasks of at least two workloads: the one configuration for every
    task with the best mean normalised search-seed score, scored in-sample (chosen and scored on all tasks) and
    leave-one-workload-out (chosen on all workloads but one, scored on the held-out one's tasks, rotated; the
    honest estimate of one setting's cost), beside tuning per task."""
    configs = config_results(trials)
    configs = configs.assign(normalised=normalised_scores(configs))
    rows = []
    for optimizer, group in configs.groupby("optimizer"):
        tasks = group.task.nunique()
        table = group.pivot_table(index="hparams", columns="task", values="normalised")
        table = table.dropna()  # configurations tried on every task
        workloads = group.groupby("task").workload.first()
        if workloads.nunique() < 2 or table.empty:
            continue
        chosen = table.mean(axis=1).idxmin()
        held_out = []
        for workload in sorted(workloads.unique()):
            inside = workloads.index[workloads == workload]
            pick = table.drop(columns=inside).mean(axis=1).idxmin()
            held_out.append(table.loc[pick, inside].mean())
        tuned = group.groupby("task").normalised.min().mean()
        rows.append(
            {
                "optimizer": optimizer,
                "calibrated_hparams": chosen,
                "tasks": tasks,
                "workloads": workloads.nunique(),
                "in_sample": table.loc[chosen].mean(),
                "held_out": float(np.mean(held_out)),
                "tuned_per_task": tuned,
                "gap": float(np.mean(held_out)) - tuned,
            }
        )
    columns = ["optimizer", "calibrated_hparams", "tasks", "workloads", "in_sample", "held_out", "tuned_per_task"]
    return pd.DataFrame(rows, columns=[*columns, "gap"])


def expected_best(scores: np.ndarray, k: int) -> float:
    """The expected lowest of k scores drawn without replacement from `scores` (exact: the i-th smallest of n is
    the minimum of the draw with probability C(n - i, k - 1) / C(n, k))."""
    v = np.sort(np.asarray(scores, dtype=float))
    n = len(v)
    weights = comb(n - np.arange(1, n + 1), k - 1) / comb(n, k)
    return float(np.dot(weights, v))


def tuning_cost(trials: pd.DataFrame) -> pd.DataFrame:
    """Per (task, optimizer) and k = 1 .. configurations searched: the expected best final metric after k trials of
    the search (random search only makes the draws exchangeable), and the compute k trials cost (k times the mean
    timed training seconds and tokens of a search trial). A diverged trial counts as the task's worst finite
    result (an infinite value would make every expectation with a chance of drawing it infinite)."""
    configs = config_results(trials)
    worst = configs.score.where(np.isfinite(configs.score)).groupby(configs.task).transform("max")
    configs = configs.assign(score=configs.score.where(np.isfinite(configs.score), worst))
    sign = metric_sign(trials)
    rows = []
    for (task, optimizer), group in configs.groupby(CELL):
        scores = group.score.to_numpy()
        if not np.isfinite(scores).all():
            continue
        for k in range(1, len(scores) + 1):
            rows.append(
                {
                    "task": task,
                    "optimizer": optimizer,
                    "k": k,
                    "expected_best": sign[task] * expected_best(scores, k),
                    "seconds": k * float(group.train_time_s.mean()),
                    "tokens": k * float(group.budget_tokens.mean()),
                }
            )
    return pd.DataFrame(rows, columns=["task", "optimizer", "k", "expected_best", "seconds", "tokens"])
