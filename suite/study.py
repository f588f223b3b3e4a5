"""A tuning study's state: its settings, the configurations proposed so far, their trials' outcomes (read from the
run records) and study.json. What to run next is the planners' business (suite/protocols.py)."""

from __future__ import annotations

import copy
import hashlib
import json
import math
import statistics
from datetime import datetime, timezone
from pathlib import Path

import yaml

from optimizers.hparams import check_values, hyperparameters, validate_search_space
from suite import declared_hyperparameters
from suite.layout import FINISHED, STUDY, SUMMARY, is_study_defining, run_dir, study_dir
from suite.protocols import Config, Dim, best_of, dims, key, next_trials, wanted
from suite.records import atomic_write_json, atomic_write_text, read_json


def with_values(optimizer_cfg: dict, config: Config) -> dict:
    """The optimizer's hyperparameters with the searched values set (`betas.1` sets element 1 of betas)."""
    hp = copy.deepcopy(hyperparameters(optimizer_cfg))
    for name, value in config.items():
        head, _, index = name.partition(".")
        if index:
            hp[head][int(index)] = value
        else:
            hp[head] = value
    return hp


def value_of(hp: dict, name: str) -> float:
    head, _, index = name.partition(".")
    return float(hp[head][int(index)] if index else hp[head])


def trial_name(config: Config) -> str:
    """The name of a configuration's trial file (conf/trial/<name>.yaml in the study directory)."""
    return "t" + hashlib.sha256(json.dumps(sorted(config.items())).encode()).hexdigest()[:10]


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
        cap = self.tuning.get("max_trials")
        if self.tuning["seeds"] < 1 or self.tuning["trials"] < 1 or self.tuning["grid_points"] < 2:
            raise ValueError("tuning.seeds and tuning.trials must be >= 1 and tuning.grid_points >= 2")
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise ValueError(f"tuning.max_trials must be an integer >= 1 or null, got {cap!r}")
        self.start: Config = {d.key: value_of(hyperparameters(cfg["optimizer"]), d.key) for d in self.space}
        budget = next((o.partition("=")[2] for o in overrides if o.startswith("workload.tokens=")), None)
        self.directory = study_dir(cfg["results_dir"], workload, optimizer, self.tuning["name"], budget)
        self.configs: dict[tuple, Config] = {}  # every configuration proposed so far
        self.attempted: set[tuple[tuple, int]] = set()  # (config key, seed) launched by this invocation
        self.refused: dict[tuple, str] = {}  # configurations the optimizer refuses, with the refusal: never launched
        self.load()

    def settings(self) -> dict:
        """What defines the study: a study directory holding other settings is refused, never overwritten."""
        return {
            **{k: v for k, v in self.tuning.items() if k != "name"},
            "search_space": self.cfg["optimizer"].get("search_space") or {},
            "start": self.start,
            "overrides": sorted(o for o in self.overrides if is_study_defining(o)),
        }

    def load(self) -> None:
        path = self.directory / STUDY
        if not path.exists():
            return
        saved = read_json(path)
        if not isinstance(saved, dict) or not isinstance(saved.get("settings"), dict):
            raise ValueError(f"{path} is not a study record (damaged or not written by this suite); move it away")
        old, new = saved["settings"], self.settings()
        differing = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        if "overrides" in differing:
            changed = sorted(set(old.get("overrides", [])) ^ set(new["overrides"]))
            differing[differing.index("overrides")] = f"overrides {' '.join(changed)}"
        if differing:
            raise ValueError(
                f"{self.directory} holds a study with other settings (differs: {', '.join(differing)}); "
                "give this one its own tuning.name"
            )
        try:
            configs = [{k: float(v) for k, v in trial["config"].items()} for trial in saved.get("trials", [])]
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
            values = {h: hp[h] for h in sorted({k.split(".")[0] for k in config})}
            atomic_write_text(path, "# @package optimizer\n" + yaml.safe_dump(values))
        return name

    def run_dir(self, config: Config, seed: int) -> Path:
        cfg = copy.deepcopy(self.cfg)
        cfg["optimizer"].update(with_values(self.cfg["optimizer"], config))
        cfg["seed"] = seed
        return run_dir(cfg)

    def refuse(self, config: Config) -> bool:
        """Whether the optimizer refuses this configuration's values (a search range reaching past what it accepts,
        beta2 = 1.5 say), checked as the trial would check them; the refusal is remembered, and such a
        configuration is never launched: it would be refused the same way every time."""
        if key(config) not in self.refused:
            hp = with_values(self.cfg["optimizer"], config)
            searched = {h: hp[h] for h in {k.partition(".")[0] for k in config}}
            try:
                check_values(self.optimizer, searched, declared_hyperparameters(self.optimizer))
                return False
            except ValueError as e:
                self.refused[key(config)] = str(e)
        return True

    def outcome(self, config: Config, seed: int) -> tuple[str | None, float]:
        """(status, score): score is the final metric oriented so lower is better, +inf when diverged, failed or
        refused."""
        if key(config) in self.refused:
            return "refused", math.inf
        summary = read_json(self.run_dir(config, seed) / SUMMARY) or {}
        status = summary.get("status")
        if status in FINISHED and self.force and (key(config), seed) not in self.attempted:
            return None, math.inf  # --force: run again once in this invocation
        if status == "completed" and summary.get("final"):
            metric = summary.get("metric") or {"name": "loss", "lower_is_better": True}
            value = summary["final"][metric["name"]]
            return status, value if metric["lower_is_better"] else -value
        return status, math.inf

    def results(self) -> dict[tuple[tuple, int], float | None]:
        """The score of every trial run so far: finished ones, and those tried in this invocation (not retried
        until the command runs again): +inf when the trial failed, None when it never finished (killed)."""
        scores = {}
        for k, config in self.configs.items():
            for seed in range(self.tuning["seeds"]):
                status, score = self.outcome(config, seed)
                if status in (*FINISHED, "refused") or (k, seed) in self.attempted:
                    scores[(k, seed)] = score if status in (*FINISHED, "failed", "refused") else None
        return scores

    def next_trials(self) -> list[tuple[Config, int]]:
        """What the protocol's planner asks for next, given this study's results, less the configurations the
        optimizer refuses (the planner hears of them as failed, and asks again); proposals are remembered."""
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

    def record(self, command: str, done: bool) -> dict:
        """study.json: protocol, budget, every trial with its outcome, the best configuration, the status."""
        results = self.results()
        search = {k: s for (k, seed), s in results.items() if seed == 0 and s is not None}
        # (a failed or diverged configuration is never the best: it has no result to show)
        best = best_of({k: s for k, s in search.items() if s < math.inf})
        trials = []
        for k, config in sorted(self.configs.items()):
            ran = [s for s in range(self.tuning["seeds"]) if (k, s) in results] or [0]
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
        failed = [t for t in trials if t["status"] not in FINISHED]
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
                "configurations": len([k for k in self.configs if (k, 0) in results or k != key(self.start)]),
                "dimensions": len(self.space),
                "seeds": self.tuning["seeds"],
                "trials": len(trials),
                "max_trials": cap,
                "cut": cut,
            },
            "trials": trials,
            "best": None,
            "status": ("completed" if not failed else "incomplete") if done else "running",
            "command": command,
            "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        if best:
            config = dict(best[0])
            mine = [t for t in trials if t["trial"] == trial_name(config) and t["score"] is not None]
            # scored on the seeds that played no part in its selection (seed 0) where it has them
            held_out = [t["score"] for t in mine if t["seed"] != 0]
            scores = held_out or [t["score"] for t in mine]
            median = statistics.median(scores)
            metric = (read_json(self.run_dir(config, 0) / SUMMARY) or {}).get("metric") or {"name": "loss"}
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
        self.directory.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.directory / STUDY, study)
        return study
