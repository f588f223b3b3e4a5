"""Population Based Training (`tuning=pbt`): a study's population between boundaries. Every member trains to the
next boundary and pauses; once all have, the bottom quarter copies a top-quarter member (its checkpoint becomes the
copy's starting point, parent.pt) and perturbs its hyperparameters (the pure rules of suite/pbt.py), written to the
study's population.json (the authority on its members and lineage) before any file is copied."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from suite import curves, pbt
from suite.layout import CHECKPOINT, PARENT, SUMMARY
from suite.protocols import Config, key, random_configs, trial_name
from suite.records import read_json
from suite.schema import FINISHED, ORIGIN, SEARCH_SEED, Origin, TrialStatus, mark_stopped, summary_or_empty
from workloads.files import atomic_write, atomic_write_json

if TYPE_CHECKING:
    from suite.study import Study

POPULATION = "population.json"  # a PBT study's members, generation by generation


class Population:
    def __init__(self, study: Study):
        self.study = study
        self.launched_to: dict[tuple, float | None] = {}  # configuration -> where this invocation launched it to
        population = read_json(study.directory / POPULATION)
        # generation, members with lineage, replaced trials
        self.population: dict | None = population if isinstance(population, dict) else None

    def stopped(self, config: Config) -> float | None:
        """The boundary where another member's copy replaced this configuration's trial, or None."""
        return (self.population or {"replaced": {}})["replaced"].get(trial_name(config))

    def lineage(self, config_key: tuple) -> list | None:
        """The whole path of hyperparameters of the member whose configuration is `config_key`."""
        found = [m["lineage"] for m in self.population["members"] if key(m["config"]) == config_key]
        return found[0] if found else None

    def members(self) -> list[dict]:
        """The population now: per member its configuration (naming its origin once it has copied another) and its
        lineage, the whole history of hyperparameters it inherited; the first generation is random search's."""
        if self.population is None:
            found = random_configs(
                self.study.space,
                self.study.tuning["population"],
                self.study.tuning["seed"],
                self.study.tuning["sampler"],
            )
            # (the population's own trials: a random search's run of the same point may have run on past a boundary)
            first = [{**c, ORIGIN: str(Origin(population=self.study.tuning["name"]))} for c in found]
            lineage = [[{"generation": 0, "step": 0, "config": c}] for c in found]
            members = [{"config": c, "lineage": history} for c, history in zip(first, lineage, strict=True)]
            self.population = {"generation": 0, "members": members, "replaced": {}}
        return self.population["members"]

    def member_at(self, config: Config, target: float | None) -> bool:
        """Whether a member's trial has reached the boundary `target` (None: the end), or ended before it (diverged,
        or failed in this invocation: a failed trial is tried again when the command runs again)."""
        summary = summary_or_empty(self.study.run_dir(config, SEARCH_SEED) / SUMMARY)
        status = summary.get("status")
        if status in FINISHED or (status == TrialStatus.FAILED and self.launched_to.get(key(config), -1) == target):
            return True
        return (
            target is not None
            and status == TrialStatus.PAUSED
            and curves.passed(summary, target, self.study.cfg["eval_every"])
        )

    def member_loss(self, config: Config, target: float) -> float:
        """A member's held-out loss at the boundary; inf when it diverged or failed."""
        directory = self.study.run_dir(config, SEARCH_SEED)
        if summary_or_empty(directory / SUMMARY).get("status") not in (TrialStatus.PAUSED, TrialStatus.COMPLETED):
            return math.inf
        losses = curves.run_curve(directory, target).losses
        return losses[-1] if losses and math.isfinite(losses[-1]) else math.inf

    def next_generation(self, target: float) -> None:
        """Exploit and explore at a boundary, once: the decisions go to population.json before any file is copied."""
        members, generation = self.members(), self.population["generation"]
        losses = [self.member_loss(m["config"], target) for m in members]
        rng = np.random.default_rng([self.study.tuning["seed"], generation + 1])
        steps = next(
            s["budget"]["steps"]
            for m in members
            if (s := summary_or_empty(self.study.run_dir(m["config"], SEARCH_SEED) / SUMMARY))
        )
        step = curves.pause_step(target, steps, self.study.cfg["eval_every"])
        replaced = []
        for loser, donor in sorted(pbt.exploit(losses, rng).items()):
            source = members[donor]["config"]
            values = pbt.perturb(
                source, self.study.space, rng, self.study.tuning["resample"]
            )  # (the searched keys only)
            origin = str(Origin(trial=self.study.run_dir(source, SEARCH_SEED).parent.name, seed=SEARCH_SEED, step=step))
            replaced.append(members[loser]["config"])
            event = {"generation": generation + 1, "step": step, "copied": donor, "from": origin, "config": values}
            members[loser] = {"config": {**values, ORIGIN: origin}, "lineage": [*members[donor]["lineage"], event]}
        # Replaced: a paused trial no member runs any more (not a diverged one: it ended of itself; not one another
        # member still runs). Its checkpoint stays; its record says why it went no further.
        current = {key(m["config"]) for m in members}
        paths = {trial_name(c): self.study.run_dir(c, SEARCH_SEED) / SUMMARY for c in replaced if key(c) not in current}
        gone = [name for name, path in paths.items() if summary_or_empty(path).get("status") == TrialStatus.PAUSED]
        self.population["replaced"].update(dict.fromkeys(gone, target))
        self.population["generation"] = generation + 1
        self.study.directory.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.study.directory / POPULATION, self.population)
        for name in gone:
            mark_stopped(paths[name], "pbt", target, self.study.directory)

    def copy_parents(self, configs: list[Config]) -> None:
        """Each new member's starting point: its donor's checkpoint at the boundary, copied to parent.pt (done
        before the donor trains on, so a rerun after a kill finds the donor still at the boundary)."""
        for config in configs:
            child = self.study.run_dir(config, SEARCH_SEED)
            run = Origin.parse(config[ORIGIN]).run if ORIGIN in config else None
            if run is None or (child / PARENT).exists() or (child / SUMMARY).exists():
                continue
            donor = child.parents[1] / run / CHECKPOINT
            if donor.is_file():
                child.mkdir(parents=True, exist_ok=True)
                atomic_write(child / PARENT, lambda f, donor=donor: f.write(donor.read_bytes()))

    def next_trials(self) -> list[tuple[Config, int]]:
        """The members' trials to run to the next boundary (or to the end after the last), exploiting and
        exploring at each boundary once every member has reached it; [] when the population has finished or a
        trial launched in this invocation did not get there. Sets `pause_at` for the batch."""
        marks = pbt.boundaries(self.study.tuning["interval"])
        while True:
            members = [m["config"] for m in self.members()]
            for config in members:
                self.study.propose(config)
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
            self.study.pause_at = target
            return [(c, SEARCH_SEED) for c in pending]
