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

import numpy as np
import yaml

from optimizers.hparams import check_values, hyperparameters, validate_search_space
from suite import curves, declared_hyperparameters, early_stop, pbt, step_law, transfer
from suite.layout import CHECKPOINT, PARENT, STUDY, SUMMARY, is_study_defining, run_dir, study_dir
from suite.protocols import Config, key, next_trials, random_configs, wanted
from suite.records import atomic_write, atomic_write_json, atomic_write_text, read_json
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
    mark_stopped,
    save_study,
    summary_or_empty,
)
from suite.search_space import Dim, dims

EARLY_STOP = "early_stop.json"  # a study's rung decisions, written when made (the authority on what it stopped)
POPULATION = "population.json"  # a PBT study's members, generation by generation (the authority on its lineage)
EARLY_STOP_KEYS = ("early_stop", "rungs", "eta")  # settings of tuning.early_stop; part of a study's settings only
# when it is on (a study without early stopping keeps the settings it always had)


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
        early_stop.check(self.tuning)
        if self.tuning["protocol"] == "pbt":
            pbt.check(self.tuning, self.space)
            if force:
                raise ValueError("--force cannot rerun a PBT study; give it a new tuning.name")
        if force and self.tuning.get("early_stop", "none") != "none":
            raise ValueError("--force cannot rerun a study in rungs (tuning.early_stop); give it a new tuning.name")
        self.rule = self.tuning.get("early_stop", "none")
        self.pause_at: float | None = None  # where the trials of the latest batch pause (a rung), or None
        self.law: dict | None = None  # step_law: the law's values and their rounding (suite/step_law.py)
        self.prediction: dict | None = None  # transfer: the fitted laws and the prediction (suite/transfer.py)
        if self.tuning["protocol"] == "step_law":
            step_law.check(optimizer, cfg["workload"], overrides)
            self.law = step_law.plan(cfg["workload"])
            self.cfg = cfg = copy.deepcopy(cfg)
            cfg["workload"].update(batch_size=self.law["batch_size"], micro_batch_size=self.law["micro_batch_size"])
            self.overrides = overrides = [*overrides, *step_law.overrides(self.law)]
        self.start: Config = {d.key: value_of(hyperparameters(cfg["optimizer"]), d.key) for d in self.space}
        if self.law:
            self.start["lr"] = self.law["lr"]
        if self.tuning["protocol"] == "transfer":
            self.prediction = self.predicted(cfg)
            self.start.update({k: v for k, v in self.prediction["config"].items() if k in self.start})
        budget = next((o.partition("=")[2] for o in overrides if o.startswith("workload.tokens=")), None)
        self.directory = study_dir(cfg["results_dir"], workload, optimizer, self.tuning["name"], budget)
        self.configs: dict[tuple, Config] = {}  # every configuration proposed so far
        self.attempted: set[tuple[tuple, int]] = set()  # (config key, seed) launched by this invocation
        self.refused: dict[tuple, str] = {}  # configurations the optimizer refuses, with the refusal: never launched
        self.launched_to: dict[tuple, float] = {}  # search configuration -> the rung this invocation launched it to
        self.decisions: dict[str, dict] = {}  # rung (as text) -> {trial name -> decision}, from early_stop.json
        self.population: dict | None = None  # PBT: generation, members with lineage, replaced; population.json
        self.load()

    def predicted(self, cfg: dict) -> dict:
        """tuning=transfer: the configuration fitted from tuned studies at other scales, at this task's (N, D)."""
        transfer.check_settings(self.tuning)
        if "lr" not in {d.key for d in self.space}:
            raise ValueError(f"tuning=transfer predicts lr, which {self.optimizer}'s search space does not hold")
        sources = self.tuning["from"]
        tasks = transfer.load_tasks([sources] if isinstance(sources, str) else list(sources), self.optimizer)
        if {d.key for d in self.space} != tasks[0]["space"].keys():
            raise ValueError("tuning.from: the studies searched other hyperparameters than this study's search space")
        return transfer.predict(tasks, *transfer.task_scale(cfg["workload"]))

    def settings(self) -> dict:
        """What defines the study: a study directory holding other settings is refused, never overwritten."""
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
            configs = [
                {k: v if k == ORIGIN else float(v) for k, v in trial["config"].items()}
                for trial in saved.get("trials", [])
            ]
        except (TypeError, KeyError, ValueError, AttributeError) as e:
            raise ValueError(f"{path} is not a study record (its trials are damaged); move it away") from e
        for config in configs:
            self.propose(config)
        decisions = read_json(self.directory / EARLY_STOP)
        self.decisions = decisions.get("rungs", {}) if isinstance(decisions, dict) else {}
        population = read_json(self.directory / POPULATION)
        self.population = population if isinstance(population, dict) else None

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
        name = trial_name(config)
        if self.population and name in self.population["replaced"]:
            return self.population["replaced"][name]
        return next((float(r) for r, d in self.decisions.items() if d.get(name, {}).get("stop")), None)

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

    # --- early stopping in rungs (suite/early_stop.py) -------------------------------------------------------
    def reached(self, config: Config) -> float | None:
        """How far the search trial of `config` has come: None when it is done (diverged, failed in this
        invocation, refused or stopped early); 1.0 when it completed (perhaps run to the end by another study: it is
        still decided on at each rung, from its prefix); else the highest rung (or 0) it has reached: one this study
        decided on with it running, or where its paused record stands (a killed trial's record may be behind its
        checkpoint)."""
        if key(config) in self.refused or self.stopped(config) is not None:
            return None
        summary = summary_or_empty(self.run_dir(config, SEARCH_SEED) / SUMMARY)
        status = summary.get("status")
        if status == TrialStatus.COMPLETED:
            return 1.0
        if status in FINISHED or (status == TrialStatus.FAILED and (key(config), SEARCH_SEED) in self.attempted):
            return None
        name = trial_name(config)
        kept = [float(r) for r, decided in self.decisions.items() if name in decided]  # (it was running there)
        if status in (TrialStatus.PAUSED, TrialStatus.STOPPED_EARLY):  # (stopped early by another study)
            kept += [r for r in self.tuning["rungs"] if self.passed(summary, r)]
        return max(kept, default=0.0)

    def passed(self, summary: dict, fraction: float) -> bool:
        """Whether a paused run's record stands at or beyond where a trial pauses for `fraction` of its budget."""
        return summary["steps"] >= curves.pause_step(fraction, summary["budget"]["steps"], self.cfg["eval_every"])

    def decide(self, rung: float, alive: list[Config]) -> None:
        """The rule's decision at a rung over the configurations still running, made once: written to
        early_stop.json (the study's authority) and, for each trial it stops, into the trial's summary.json
        (status stopped_early, with its prediction; its checkpoint stays, so another study may continue it)."""
        found = {trial_name(c): curves.run_curve(self.run_dir(c, SEARCH_SEED), rung) for c in alive}
        decisions = early_stop.decide(self.rule, found, self.tuning.get("eta", 2), seed=self.tuning["seed"])
        self.decisions[str(rung)] = decisions
        record = {"rule": self.rule, "rungs": self.decisions}
        self.directory.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.directory / EARLY_STOP, record)
        for config in alive:
            decision = decisions[trial_name(config)]
            if decision["stop"]:
                mark_stopped(self.run_dir(config, SEARCH_SEED) / SUMMARY, self.rule, rung, self.directory, **decision)

    def rung_trials(self) -> list[tuple[Config, int]] | None:
        """The search trials to run to the next rung (or to the end after the last), deciding at each rung once
        every trial still running has reached it; None when the search is over (every configuration finished,
        failed or was stopped), so the scoring seeds follow; [] when a trial launched in this invocation did not
        reach its rung (killed: a rerun continues it). Sets `pause_at` for the batch."""
        configs = [
            c for c in wanted(self.tuning["protocol"], self.start, {}, self.space, self.tuning) if not self.refuse(c)
        ]
        for config in configs:
            self.propose(config)
        while True:
            alive = {key(c): (c, at) for c in configs if (at := self.reached(c)) is not None}
            if all(at >= 1.0 for _, at in alive.values()):
                return None
            level = min(at for _, at in alive.values())
            if level in self.tuning["rungs"] and str(level) not in self.decisions:
                self.decide(level, [c for c, _ in alive.values()])
                continue
            target = next((r for r in self.tuning["rungs"] if r > level), 1.0)
            pending = [c for c, at in alive.values() if at < target]
            if any(self.launched_to.get(key(c)) == target for c in pending):
                return []
            for config in pending:
                self.launched_to[key(config)] = target
            self.pause_at = target if target < 1.0 else None
            return [(c, SEARCH_SEED) for c in pending]

    # --- Population Based Training (suite/pbt.py) ---------------------------------------------------------------
    def members(self) -> list[dict]:
        """The population now: per member its configuration (naming its origin once it has copied another) and its
        lineage, the whole history of hyperparameters it inherited; the first generation is random search's."""
        if self.population is None:
            found = random_configs(self.space, self.tuning["population"], self.tuning["seed"], self.tuning["sampler"])
            # (the population's own trials: a random search's run of the same point may have run on past a boundary)
            first = [{**c, ORIGIN: str(Origin(population=self.tuning["name"]))} for c in found]
            lineage = [[{"generation": 0, "step": 0, "config": c}] for c in found]
            members = [{"config": c, "lineage": history} for c, history in zip(first, lineage, strict=True)]
            self.population = {"generation": 0, "members": members, "replaced": {}}
        return self.population["members"]

    def member_at(self, config: Config, target: float | None) -> bool:
        """Whether a member's trial has reached the boundary `target` (None: the end), or ended before it (diverged,
        or failed in this invocation: a failed trial is tried again when the command runs again)."""
        summary = summary_or_empty(self.run_dir(config, SEARCH_SEED) / SUMMARY)
        status = summary.get("status")
        if status in FINISHED or (status == TrialStatus.FAILED and self.launched_to.get(key(config), -1) == target):
            return True
        return target is not None and status == TrialStatus.PAUSED and self.passed(summary, target)

    def member_loss(self, config: Config, target: float) -> float:
        """A member's held-out loss at the boundary; inf when it diverged or failed."""
        directory = self.run_dir(config, SEARCH_SEED)
        if summary_or_empty(directory / SUMMARY).get("status") not in (TrialStatus.PAUSED, TrialStatus.COMPLETED):
            return math.inf
        losses = curves.run_curve(directory, target).losses
        return losses[-1] if losses and math.isfinite(losses[-1]) else math.inf

    def next_generation(self, target: float) -> None:
        """Exploit and explore at a boundary, once: the decisions go to population.json before any file is copied."""
        members, generation = self.members(), self.population["generation"]
        losses = [self.member_loss(m["config"], target) for m in members]
        rng = np.random.default_rng([self.tuning["seed"], generation + 1])
        steps = next(
            s["budget"]["steps"]
            for m in members
            if (s := summary_or_empty(self.run_dir(m["config"], SEARCH_SEED) / SUMMARY))
        )
        step = curves.pause_step(target, steps, self.cfg["eval_every"])
        replaced = []
        for loser, donor in sorted(pbt.exploit(losses, rng).items()):
            source = members[donor]["config"]
            values = pbt.perturb(source, self.space, rng, self.tuning["resample"])  # (the searched keys only)
            origin = str(Origin(trial=self.run_dir(source, SEARCH_SEED).parent.name, seed=SEARCH_SEED, step=step))
            replaced.append(members[loser]["config"])
            event = {"generation": generation + 1, "step": step, "copied": donor, "from": origin, "config": values}
            members[loser] = {"config": {**values, ORIGIN: origin}, "lineage": [*members[donor]["lineage"], event]}
        # Replaced: a paused trial no member runs any more (not a diverged one: it ended of itself; not one another
        # member still runs). Its checkpoint stays; its record says why it went no further.
        current = {key(m["config"]) for m in members}
        paths = {trial_name(c): self.run_dir(c, SEARCH_SEED) / SUMMARY for c in replaced if key(c) not in current}
        gone = [name for name, path in paths.items() if summary_or_empty(path).get("status") == TrialStatus.PAUSED]
        self.population["replaced"].update(dict.fromkeys(gone, target))
        self.population["generation"] = generation + 1
        self.directory.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.directory / POPULATION, self.population)
        for name in gone:
            mark_stopped(paths[name], "pbt", target, self.directory)

    def copy_parents(self, configs: list[Config]) -> None:
        """Each new member's starting point: its donor's checkpoint at the boundary, copied to parent.pt (done
        before the donor trains on, so a rerun after a kill finds the donor still at the boundary)."""
        for config in configs:
            child = self.run_dir(config, SEARCH_SEED)
            run = Origin.parse(config[ORIGIN]).run if ORIGIN in config else None
            if run is None or (child / PARENT).exists() or (child / SUMMARY).exists():
                continue
            donor = child.parents[1] / run / CHECKPOINT
            if donor.is_file():
                child.mkdir(parents=True, exist_ok=True)
                atomic_write(child / PARENT, lambda f, donor=donor: f.write(donor.read_bytes()))

    def pbt_trials(self) -> list[tuple[Config, int]]:
        """The members' trials to run to the next boundary (or to the end after the last), exploiting and
        exploring at each boundary once every member has reached it; [] when the population has finished or a
        trial launched in this invocation did not get there. Sets `pause_at` for the batch."""
        marks = pbt.boundaries(self.tuning["interval"])
        while True:
            members = [m["config"] for m in self.members()]
            for config in members:
                self.propose(config)
            generation = self.population["generation"]
            target = marks[generation] if generation < len(marks) else None
            pending = list({key(c): c for c in members if not self.member_at(c, target)}.values())
            if not pending and target is not None:
                self.next_generation(target)
                continue
            if not pending or any(self.launched_to.get(key(c), -1) == target for c in pending):
                return []
            self.copy_parents(pending)
            for config in pending:
                self.launched_to[key(config)] = target
            self.pause_at = target
            return [(c, SEARCH_SEED) for c in pending]

    def next_trials(self) -> list[tuple[Config, int]]:
        """What the protocol's planner asks for next, given this study's results, less the configurations the
        optimizer refuses (the planner hears of them as failed, and asks again); proposals are remembered. With
        early stopping, the search runs in rungs first (rung_trials); PBT runs its population (pbt_trials)."""
        if self.tuning["protocol"] == "pbt":
            return self.pbt_trials()
        if self.rule != "none":
            pairs = self.rung_trials()
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
        if self.population:
            study["population"] = self.population
        if self.law:
            study["step_law"] = self.law
        if self.prediction:
            study["transfer"] = self.prediction
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
            if self.population:  # the winning member's whole path of hyperparameters
                lineage = [m["lineage"] for m in self.population["members"] if key(m["config"]) == best[0]]
                study["best"]["lineage"] = lineage[0] if lineage else None
        self.directory.mkdir(parents=True, exist_ok=True)
        save_study(self.directory / STUDY, study)
        return study
