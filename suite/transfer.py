"""Hyperparameters that transfer across scales: the optimum of each tuned task, fitted as a power law in N (non-
embedding parameters) and D (training tokens, or examples), and predicted at a new task (Marin, 'Fantastic
Pretraining Optimizers', phase III: log-linear least squares on the per-task optimum).

A task's optimal learning rate is the vertex of a quadratic fitted to the final held-out loss against log lr over
the search trials nearest the best (not the best trial's lr itself, which moves in steps of the search's spacing); the
other searched hyperparameters take the best trial's values. Each law comes with t intervals (ordinary least
squares on the log scale), and the prediction with the interval of the fitted line at the new task."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from suite.layout import STUDY, SUMMARY
from suite.schema import StudyStatus, load_study, search_trials, studies, summary_or_empty

LR = "lr"
NEAREST = 5  # the vertex is fitted on the best trial and the trials nearest it in log lr, this many in all
SEARCHES = ("random", "grid", "coordinate_descent")  # the protocols whose studies are tuned results to fit on


def t_quantile(q: float, dof: int) -> float:
    """Student's t quantile (scipy.stats imported when a fit needs it: the sweep driver imports this module)."""
    from scipy.stats import t

    return float(t.ppf(q, dof))


CHECK_FACTORS = (0.5, 2.0, 0.25, 4.0, 0.125, 8.0)  # tuning.check=k runs the first k around the prediction


def vertex(lrs: list[float], scores: list[float]) -> dict:
    """The optimum of score against log lr: the vertex of a least-squares quadratic through the points nearest the
    best (NEAREST of them), with a 95% delta-method interval when the fit has residual degrees of freedom; where that
    quadratic opens downwards or puts its vertex outside the best's two neighbours in lr (a curve far from a
    parabola), the parabola through the best and those neighbours ("vertex3", no interval); the best point itself
    ("best") when the best lies at the edge of the search."""
    x, y = np.log(np.asarray(lrs, float)), np.asarray(scores, float)
    best = int(np.argmin(y))
    left, right = x[x < x[best]], x[x > x[best]]
    if len(left) and len(right):  # an interior best: its neighbours bracket the optimum
        bracket = (left.max(), right.min())
        for size, method in ((NEAREST, "vertex"), (3, "vertex3")):
            near = np.argsort(np.abs(x - x[best]), kind="stable")[:size]
            found = fit_vertex(x[near], y[near])
            if found is not None and bracket[0] < math.log(found["lr"]) < bracket[1]:
                return {**found, "method": method, "points": len(near)}
    return {"lr": float(lrs[best]), "low": math.nan, "high": math.nan, "method": "best", "points": 1}


def fit_vertex(xs: np.ndarray, ys: np.ndarray) -> dict | None:
    """The vertex of the least-squares quadratic of ys on xs (log lr) with its interval, or None when it opens
    downwards or its vertex lies outside the points."""
    if len(set(xs)) < 3:
        return None
    design = np.column_stack([xs**2, xs, np.ones_like(xs)])
    coef, *_ = np.linalg.lstsq(design, ys, rcond=None)
    a, b = coef[0], coef[1]
    if a <= 0 or not xs.min() <= -b / (2 * a) <= xs.max():
        return None
    v = -b / (2 * a)
    low = high = math.nan
    dof = len(xs) - 3
    if dof > 0:
        resid = ys - design @ coef
        cov = np.linalg.inv(design.T @ design) * float(resid @ resid) / dof
        grad = np.array([b / (2 * a * a), -1 / (2 * a), 0.0])
        half = t_quantile(0.975, dof) * math.sqrt(max(float(grad @ cov @ grad), 0.0))
        low, high = math.exp(v - half), math.exp(v + half)
    return {"lr": math.exp(v), "low": low, "high": high}


def final_loss(trial: dict) -> float:
    """A study trial's final held-out loss (what the optimum is fitted to, whatever the study ranks by: accuracy
    moves in steps of one example), or its score where the run records no loss."""
    final = summary_or_empty(Path(trial["run_dir"]) / SUMMARY).get("final") or {}
    return float(final["loss"]) if "loss" in final else trial["score"]


def study_optimum(directory: Path) -> dict:
    """One finished tuned study's task, scale and optimum. ValueError when it is not one."""
    study = load_study(Path(directory) / STUDY)
    if study is None:
        raise ValueError(f"{directory} holds no study (no {STUDY})")
    if study["protocol"] not in SEARCHES or study["status"] != StudyStatus.COMPLETED or not study["best"]:
        raise ValueError(f"{directory} holds no finished search study (random, grid or coordinate descent)")
    space = study["settings"].get("search_space") or {}
    if LR not in space:
        raise ValueError(f"{directory}: lr is not searched, so it has no optimum lr to fit")
    searched = search_trials(study)
    best = study["best"]["config"]
    # Along lr at the best's other values (a grid or coordinate descent's line) where there are three such trials.
    line = [t for t in searched if all(t["config"].get(k) == v for k, v in best.items() if k != LR)]
    points = line if len({t["config"][LR] for t in line}) >= 3 else searched
    optimum = vertex([t["config"][LR] for t in points], [final_loss(t) for t in points])
    best_run = next(t["run_dir"] for t in study["trials"] if t["trial"] == study["best"]["trial"])
    summary = summary_or_empty(Path(best_run) / SUMMARY)
    n, d = summary.get("params_non_embedding"), (summary.get("budget") or {}).get("tokens")
    if not n or not d:
        raise ValueError(f"{directory}: its runs record no non-embedding parameter count N or budget D")
    return {
        "study": str(directory),
        "workload": study["workload"],
        "optimizer": study["optimizer"],
        "N": int(n),
        "D": int(d),
        "best": best,
        "space": space,
        "along": "lr line" if points is line else "all trials",
        **optimum,
    }


def find_studies(paths: list[str], optimizer: str | None = None) -> list[Path]:
    """The study directories under `paths` (each a study directory or a directory holding some), of `optimizer`
    when given, searches only."""
    for path in map(Path, paths):
        if not path.is_dir():
            raise ValueError(f"{path} is not a directory")
    return [
        file.parent
        for file, study in studies(paths)
        if study["protocol"] in SEARCHES and optimizer in (None, study["optimizer"])
    ]


@dataclass(frozen=True)
class Law:
    """value = exp(c0) · N^alpha · D^beta for a log-scale hyperparameter (value = c0 + alpha log N + beta log D for
    a linear one); a column that does not vary over the tasks (or that repeats N's) is left out."""

    key: str
    log: bool
    terms: tuple[str, ...]  # "1", "log N", "log D"
    coef: tuple[float, ...]
    cov: tuple[tuple[float, ...], ...] | None  # None: as many tasks as coefficients (an exact fit)
    dof: int

    def design(self, n: float, d: float) -> np.ndarray:
        columns = {"1": 1.0, "log N": math.log(n), "log D": math.log(d)}
        return np.array([columns[t] for t in self.terms])

    def predict(self, n: float, d: float) -> tuple[float, float, float]:
        """The prediction at (N, D) with the 95% interval of the fitted line there (NaN without dof)."""
        x = self.design(n, d)
        mean = float(x @ np.array(self.coef))
        half = math.nan
        if self.cov is not None:
            half = t_quantile(0.975, self.dof) * math.sqrt(max(float(x @ np.array(self.cov) @ x), 0.0))
        back = math.exp if self.log else float
        return back(mean), back(mean - half), back(mean + half)

    def exponents(self) -> dict[str, tuple[float, float, float]]:
        """Each coefficient with its 95% interval."""
        out = {}
        for i, term in enumerate(self.terms):
            half = math.nan if self.cov is None else t_quantile(0.975, self.dof) * math.sqrt(self.cov[i][i])
            out[term] = (self.coef[i], self.coef[i] - half, self.coef[i] + half)
        return out


def fit(key: str, log: bool, tasks: list[dict], values: list[float]) -> Law:
    """Least squares of (log) value on log N and log D over the tasks."""
    columns = {"1": np.ones(len(tasks))}
    for term, name in (("log N", "N"), ("log D", "D")):
        column = np.log([t[name] for t in tasks])
        trial = np.column_stack([*columns.values(), column])
        if np.ptp(column) > 0 and np.linalg.matrix_rank(trial) == trial.shape[1]:
            columns[term] = column
    design = np.column_stack(list(columns.values()))
    y = np.log(values) if log else np.asarray(values, float)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    dof = len(tasks) - design.shape[1]
    cov = None
    if dof > 0:
        resid = y - design @ coef
        cov = np.linalg.inv(design.T @ design) * float(resid @ resid) / dof
        cov = tuple(tuple(map(float, row)) for row in cov)
    return Law(key, log, tuple(columns), tuple(map(float, coef)), cov, dof)


def laws(tasks: list[dict]) -> dict[str, Law]:
    """A law for lr (from the vertices) and for every other searched hyperparameter whose best value varies over
    the tasks; one that does not vary keeps its value (a law with the constant term alone)."""
    space = tasks[0]["space"]
    found = {}
    for key in sorted(space):
        values = [t["lr"] if key == LR else t["best"][key] for t in tasks]
        varies = len(set(values)) > 1
        found[key] = fit(
            key, space[key]["scale"] == "log", tasks if varies else tasks[:1], values[: len(tasks) if varies else 1]
        )
    return found


def task_scale(workload_cfg: dict) -> tuple[int, int]:
    """(N, D) of a workload at its budget: a language model's from its config alone, any other's by building it."""
    from workloads import build_workload  # (torch: imported when a transfer study is set up, not by every sweep)
    from workloads.lm.workload import scale

    if workload_cfg.get("family") == "lm":
        return scale(workload_cfg)
    workload = build_workload(workload_cfg)
    n = workload.facts().get("params_non_embedding")
    if not n:
        raise ValueError(f"workload {workload_cfg['name']} has no parameter count N to predict from")
    return int(n), workload.steps * workload.tokens_per_step


def load_tasks(paths: list[str], optimizer: str) -> list[dict]:
    """The optimum of every study of `optimizer` under `paths`: at least two tasks, each once, one search space."""
    directories = find_studies(paths, optimizer)
    tasks = [study_optimum(d) for d in directories]
    if len(tasks) < 2:
        raise ValueError(f"tuning.from: {len(tasks)} finished search studies of {optimizer} found; a fit needs two")
    seen = {}
    for t in tasks:
        task = (t["workload"], t["D"])
        if task in seen:
            raise ValueError(
                f"tuning.from: two studies of {t['workload']} at {t['D']} tokens ({seen[task]}, {t['study']})"
            )
        seen[task] = t["study"]
    if any(t["space"].keys() != tasks[0]["space"].keys() for t in tasks):
        raise ValueError("tuning.from: the studies search different hyperparameters")
    if len({(t["N"], t["D"]) for t in tasks}) < 2:
        raise ValueError("tuning.from: the studies share one scale (N, D); a fit needs two")
    return tasks


def predict(tasks: list[dict], n: int, d: int) -> dict:
    """The fitted laws and the predicted configuration at (N, D), each value with its interval."""
    fitted = laws(tasks)
    values, intervals = {}, {}
    for key, law in fitted.items():
        mean, low, high = law.predict(n, d)
        values[key], intervals[key] = float(f"{mean:.6g}"), [low, high]
    inside = all(min(t[k] for t in tasks) <= v <= max(t[k] for t in tasks) for k, v in (("N", n), ("D", d)))
    return {
        "N": n,
        "D": d,
        "config": values,
        "intervals": intervals,
        "laws": {k: {"terms": law.terms, "coef": law.coef, "exponents": law.exponents()} for k, law in fitted.items()},
        "tasks": [
            {k: t[k] for k in ("study", "workload", "N", "D", "lr", "low", "high", "method", "along")} for t in tasks
        ],
        "extrapolated": not inside,
    }


def checks(config: dict, k: int) -> list[dict]:
    """The k configurations around the prediction: its lr times 1/2, 2, 1/4, 4, ..."""
    return [{**config, LR: float(f"{config[LR] * f:.6g}")} for f in CHECK_FACTORS[:k]]


def check_settings(tuning: dict) -> None:
    """What tuning=transfer needs beyond its settings' values (declared in suite/settings.py): studies to fit on."""
    sources = tuning.get("from")
    if not sources or not isinstance(sources, list | str):
        raise ValueError("tuning=transfer needs tuning.from=[<study dir>,...]: the tuned studies to fit on")
