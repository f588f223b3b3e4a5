"""A tuning study's state: its settings, the configurations proposed so far, their trials' outcomes (read from the
run records) and study.json. What to run next is the planners' business (suite/protocols.py)."""

from __future__ import annotations

import copy
import math
import statistics
from datetime import datetime, timezone
from pathlib import Path

import yaml

from optimizers.hparams import check_values, hyperparameters, validate_search_space
from suite import curves, declared_hyperparameters, early_stop, pbt, step_law, transfer
from suite.layout import STUDY, SUMMARY, is_study_defining, run_dir, study_dir
from suite.population import Population
from suite.protocols import Config, key, next_trials, trial_name, wanted
from suite.rungs import Rungs
from suite.schema import (
    ENDED,
    FINISHED,
    ORIGIN,
    SEARCH_SEED,
    Origin,
    StudyStatus,
    TrialStatus,
    best_of,
    final_score,
    load_study,
    save_study,
    summary_or_empty,
)
from suite.search_space import Dim, dims
from suite.settings import check_config
from workloads.files import atomic_write_text

EARLY_STOP_KEYS = ("early_stop", "rungs", "eta")  # settings of tuning.early_stop; part of a study's settings only
# when it is on (a random search without early stopping keeps the settings it always had)


def with_values(optimizer_cfg: dict, config: Config) -> dict:
    """The optimizer's hyperparameters with the searched values set (`betas.1` sets element 1 of betas)."""
    hp = copy.deepcopy(hyperparameters(optimizer_cfg))
    for name, value in config.items():
        if name == ORIGIN:
            continue
        head, _, index = name.partition(".")
        if index:
            hp[head][int(index)] = value
        else:
            hp[head] = value
    return hp


def value_of(hp: dict, name: str) -> float:
    head, _, index = name.partition(".")
    return float(hp[head][int(index)] if index else hp[head])


def step_law_start(study: Study) -> dict:
    """tuning=step_law: the law's lr as the start, its batch size put into the study's workload and overrides;
    returns the law's values and their rounding (suite/step_law.py)."""
    step_law.check(study.optimizer, study.cfg["workload"], study.overrides)
    law = step_law.plan(study.cfg["workload"])
    study.cfg = copy.deepcopy(study.cfg)
    study.cfg["workload"].update(batch_size=law["batch_size"], micro_batch_size=law["micro_batch_size"])
    study.overrides = [*study.overrides, *step_law.overrides(law)]
    study.start["lr"] = law["lr"]
    return law


def transfer_start(study: Study) -> dict:
    """tuning=transfer: the configuration fitted from tuned studies at other scales, at this task's (N, D), as the
    start; returns the fitted laws and the prediction (suite/transfer.py)."""
    transfer.check_settings(study.tuning)
    if "lr" not in study.start:
        raise ValueError(f"tuning=transfer predicts lr, which {study.optimizer}'s search space does not hold")
    sources = study.tuning["from"]
    tasks = transfer.load_tasks([sources] if isinstance(sources, str) else list(sources), study.optimizer)
    if study.start.keys() != tasks[0]["space"].keys():
        raise ValueError("tuning.from: the studies searched other hyperparameters than this study's search space")
    prediction = transfer.predict(tasks, *transfer.task_scale(study.cfg["workload"]))
    study.start.update({k: v for k, v in prediction["config"].items() if k in study.start})
    return prediction


PREDICTORS = {"step_law": step_law_start, "transfer": transfer_start}  # protocols that predict their configuration


class Study:
    """One optimizer on one task under one protocol. Reads its earlier state from study.json (refusing one written
    with other settings), answers for the outcome of each (configuration, seed) from the run records, and writes
    study.json; it never decides what runs next."""

    def __init__(self, optimizer: str, workload: str, cfg: dict, overrides: list[str], force: bool):
        self.optimizer, self.workload, self.cfg, self.overrides, self.force = optimizer, workload, cfg, overrides, force
        space = cfg["optimizer"].get("search_space") or {}
        validate_search_space(optimizer, space, declared_hyperparameters(optimizer))
        self.space: list[Dim] = dims(space)
        self.tuning = cfg["tuning"]
        check_config(cfg)
        early_stop.check(self.tuning)
        if self.tuning["protocol"] == "pbt":
            pbt.check(self.tuning, self.space)
            if force:
                raise ValueError("--force cannot rerun a PBT study; give it a new tuning.name")
        if force and self.tuning.get("early_stop", "none") != "none":
            raise ValueError("--force cannot rerun a study in rungs (tuning.early_stop); give it a new tuning.name")
        self.rule = self.tuning.get("early_stop", "none")
        self.pause_at: float | None = None  # where the trials of the latest batch pause (a rung), or None
        self.start: Config = {d.key: value_of(hyperparameters(cfg["optimizer"]), d.key) for d in self.space}
        # a protocol that predicts its configuration (PREDICTORS) sets the start, and its record goes into study.json
        # under the protocol's name; the rest start from the optimizer's defaults
        predictor = PREDICTORS.get(self.tuning["protocol"])
        self.prediction: dict | None = predictor(self) if predictor else None
        cfg, overrides = self.cfg, self.overrides
        budget = next((o.partition("=")[2] for o in overrides if o.startswith("workload.tokens=")), None)
        self.directory = study_dir(cfg["results_dir"], workload, optimizer, self.tuning["name"], budget)
        self.configs: dict[tuple, Config] = {}  # every configuration proposed so far
        self.attempted: set[tuple[tuple, int]] = set()  # (config key, seed) launched by this invocation
        self.refused: dict[tuple, str] = {}  # configurations the optimizer refuses, with the refusal: never launched
        self.load()
        # the protocol that decides on partial curves and keeps state between rounds (suite/rungs.py: random search
        # in rungs; suite/population.py: PBT), or None (the planners of suite/protocols.py alone)
        self.partial: Rungs | Population | None = (
            Population(self) if self.tuning["protocol"] == "pbt" else Rungs(self) if self.rule != "none" else None
        )

    def settings(self) -> dict:
        """What defines the study: a study directory holding other settings is refused, never overwritten. Each
        protocol's YAML (conf/tuning/<name>.yaml) holds its own keys only."""
        return {
            **{
                k: v
                for k, v in self.tuning.items()
                if k != "name" and (k not in EARLY_STOP_KEYS or self.tuning.get("early_stop", "none") != "none")
            },
            "search_space": self.cfg["optimizer"].get("search_space") or {},
            "start": self.start,
            "overrides": sorted(o for o in self.overrides if is_study_defining(o)),
        }

    def load(self) -> None:
        path = self.directory / STUDY
        saved = load_study(path)
        if saved is None:
            return
        old, new = saved["settings"], self.settings()
        # (compared on this protocol's keys: a record written when every tuning YAML held every protocol's keys
        # carries ones this protocol never read)
        differing = [k for k in sorted(new) if old.get(k) != new.get(k)]
        if "overrides" in differing:
            changed = sorted(set(old.get("overrides", [])) ^ set(new["overrides"]))
            differing[differing.index("overrides")] = f"overrides {' '.join(changed)}"
        if differing:
            raise ValueError(
                f"{self.directory} holds a study with other settings (differs: {', '.join(differing)}); "
                "give this one its own tuning.name"
            )
        try:
            configs = [
                {k: v if k == ORIGIN else float(v) for k, v in trial["config"].items()}
                for trial in saved.get("trials", [])
            ]
        except (TypeError, KeyError, ValueError, AttributeError) as e:
            raise ValueError(f"{path} is not a study record (its trials are damaged); move it away") from e
        for config in configs:
            self.propose(config)

    def propose(self, config: Config) -> None:
        self.configs.setdefault(key(config), config)

    # --- trials ---------------------------------------------------------------------------------------------
    def write_trial_file(self, config: Config) -> str:
        name = trial_name(config)
        path = self.directory / "conf" / "trial" / f"{name}.yaml"
        if not path.exists():  # (written atomically: a killed driver leaves the whole file or none)
            path.parent.mkdir(parents=True, exist_ok=True)
            hp = with_values(self.cfg["optimizer"], config)
            values = {h: hp[h] for h in sorted({k.split(".")[0] for k in config if k != ORIGIN})}
            if ORIGIN in config:  # a PBT member started from another's run: the trial names its origin too
                text = "# @package _global_\n" + yaml.safe_dump({"optimizer": values, ORIGIN: config[ORIGIN]})
            else:
                text = "# @package optimizer\n" + yaml.safe_dump(values)
            atomic_write_text(path, text)
        return name

    def run_dir(self, config: Config, seed: int) -> Path:
        cfg = copy.deepcopy(self.cfg)
        cfg["optimizer"].update(with_values(self.cfg["optimizer"], config))
        cfg["seed"] = seed
        cfg[ORIGIN] = config.get(ORIGIN)
        return run_dir(cfg)

    def refuse(self, config: Config) -> bool:
        """Whether the optimizer refuses this configuration's values (a search range reaching past what it accepts,
        beta2 = 1.5 say), checked as the trial would check them; the refusal is remembered, and such a
        configuration is never launched: it would be refused the same way every time."""
        if key(config) not in self.refused:
            hp = with_values(self.cfg["optimizer"], config)
            searched = {h: hp[h] for h in {k.partition(".")[0] for k in config if k != ORIGIN}}
            try:
                check_values(self.optimizer, searched, declared_hyperparameters(self.optimizer))
                return False
            except ValueError as e:
                self.refused[key(config)] = str(e)
        return True

    def stopped(self, config: Config) -> float | None:
        """The rung at which this study stopped the configuration early (or, PBT, the boundary where another
        member's copy replaced it), or None."""
        return None if self.partial is None else self.partial.stopped(config)

    def outcome(self, config: Config, seed: int) -> tuple[str | None, float]:
        """(status, score): score is the final metric oriented so lower is better, +inf when diverged, failed,
        refused or stopped early by this study."""
        if key(config) in self.refused:
            return TrialStatus.REFUSED, math.inf
        if seed == SEARCH_SEED and self.stopped(config) is not None:
            return TrialStatus.STOPPED_EARLY, math.inf
        summary = summary_or_empty(self.run_dir(config, seed) / SUMMARY)
        status = summary.get("status")
        if status in FINISHED and self.force and (key(config), seed) not in self.attempted:
            return None, math.inf  # --force: run again once in this invocation
        return status, final_score(summary)

    def results(self) -> dict[tuple[tuple, int], float | None]:
        """The score of every trial run so far: finished ones, and those tried in this invocation (not retried
        until the command runs again): +inf when the trial failed, None when it never finished (killed)."""
        scores = {}
        for k, config in self.configs.items():
            for seed in range(self.tuning["seeds"]):
                status, score = self.outcome(config, seed)
                if status in (*ENDED, TrialStatus.REFUSED) or (k, seed) in self.attempted:
                    done = (*ENDED, TrialStatus.FAILED, TrialStatus.REFUSED)
                    scores[(k, seed)] = score if status in done else None
        return scores

    def next_trials(self) -> list[tuple[Config, int]]:
        """What the protocol's planner asks for next, given this study's results, less the configurations the
        optimizer refuses (the planner hears of them as failed, and asks again); proposals are remembered. With
        early stopping, the search runs in rungs first; PBT runs its population (`partial`: None when it is over)."""
        if self.partial is not None:
            pairs = self.partial.next_trials()
            if pairs is not None:
                return pairs
        self.pause_at = None
        while True:
            pairs = next_trials(self.tuning["protocol"], self.start, self.space, self.tuning, self.results())
            for config, _ in pairs:
                self.propose(config)
            runnable = [(c, seed) for c, seed in pairs if not self.refuse(c)]
            if runnable or not pairs:
                return runnable

    def launched(self, pairs: list[tuple[Config, int]]) -> None:
        self.attempted.update((key(c), s) for c, s in pairs)

    def extensions(self) -> dict[str, list[float]]:
        """The values tried beyond each search range (coordinate descent extends a range whose edge is best)."""
        beyond = {}
        for d in self.space:
            values = sorted({c[d.key] for c in self.configs.values() if not d.low <= c[d.key] <= d.high})
            if values and d.key in self.start and self.start[d.key] in values:
                values.remove(self.start[d.key])  # (a default outside its range is no extension)
            if values:
                beyond[d.key] = values
        return beyond

    def compute(self) -> dict:
        """The training steps the search spent (a stopped or diverged trial counts the steps it ran) and what running
        every search configuration to the end would have cost: the compute protocols are compared at."""
        spent, budgets = 0, []
        for config in self.configs.values():
            summary = summary_or_empty(self.run_dir(config, SEARCH_SEED) / SUMMARY)
            if not summary.get("budget"):  # (the defaults of a random search run on the scoring seeds only)
                continue
            budgets.append(summary["budget"]["steps"])
            rung = self.stopped(config)  # (another study may have continued it since)
            stop = None if rung is None else curves.pause_step(rung, budgets[-1], self.cfg["eval_every"])
            start = Origin.parse(config[ORIGIN]).step if ORIGIN in config else 0  # (a PBT member's parent's)
            spent += (summary.get("steps", 0) if stop is None else stop) - start
        runs = self.tuning["population"] if self.tuning["protocol"] == "pbt" else len(budgets)
        return {"search_steps": spent, "search_steps_full": runs * max(budgets, default=0)}

    def record(self, command: str, done: bool) -> dict:
        """study.json: protocol, budget, every trial with its outcome, the best configuration, the status."""
        results = self.results()
        search = {k: s for (k, seed), s in results.items() if seed == SEARCH_SEED and s is not None}
        # (a failed or diverged configuration is never the best: it has no result to show)
        best = best_of({k: s for k, s in search.items() if s < math.inf})
        trials = []
        for k, config in sorted(self.configs.items()):
            ran = [s for s in range(self.tuning["seeds"]) if (k, s) in results] or [SEARCH_SEED]
            for seed in range(self.tuning["seeds"]) if best and k == best[0] else ran:
                status, score = self.outcome(config, seed)
                trials.append(
                    {
                        "trial": trial_name(config),
                        "config": config,
                        "seed": seed,
                        "status": status,
                        "score": score if math.isfinite(score) else None,
                        "run_dir": str(self.run_dir(config, seed)),
                    }
                )
        failed = [t for t in trials if t["status"] not in ENDED]
        cap = self.tuning.get("max_trials")
        at_cap = cap is not None and len(search) >= cap
        cut = wanted(self.tuning["protocol"], self.start, search, self.space, self.tuning) if at_cap else []
        study = {
            "optimizer": self.optimizer,
            "workload": self.workload,
            "protocol": self.tuning["protocol"],
            "settings": self.settings(),
            "extensions": self.extensions(),
            "budget": {  # what was spent, under which cap, and what the cap kept from running
                "configurations": len([k for k in self.configs if (k, SEARCH_SEED) in results or k != key(self.start)]),
                "dimensions": len(self.space),
                "seeds": self.tuning["seeds"],
                "trials": len(trials),
                "max_trials": cap,
                "cut": cut,
                **self.compute(),
            },
            "trials": trials,
            "best": None,
            "status": (StudyStatus.INCOMPLETE if failed else StudyStatus.COMPLETED) if done else StudyStatus.RUNNING,
            "command": command,
            "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        population = self.partial.population if isinstance(self.partial, Population) else None
        if population:
            study["population"] = population
        if self.prediction:
            study[self.tuning["protocol"]] = self.prediction
        if best:
            config = dict(best[0])
            mine = [t for t in trials if t["trial"] == trial_name(config) and t["score"] is not None]
            # scored on the seeds that played no part in its selection where it has them
            held_out = [t["score"] for t in mine if t["seed"] != SEARCH_SEED]
            scores = held_out or [t["score"] for t in mine]
            median = statistics.median(scores)
            metric = summary_or_empty(self.run_dir(config, SEARCH_SEED) / SUMMARY).get("metric") or {"name": "loss"}
            study["best"] = {
                "trial": trial_name(config),
                "config": config,
                "hyperparameters": with_values(self.cfg["optimizer"], config),
                "median_score": median,  # oriented: lower is better
                "metric": metric["name"],
                "median": median if metric.get("lower_is_better", True) else -median,  # in the metric's own sign
                "seeds": len(scores),
                "in_sample": not held_out,  # True: the median is the selection seed's own result
            }
            if population:  # the winning member's whole path of hyperparameters
                study["best"]["lineage"] = self.partial.lineage(best[0])
        self.directory.mkdir(parents=True, exist_ok=True)
        save_study(self.directory / STUDY, study)
        return study
