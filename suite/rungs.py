"""Random search in rungs (`tuning.early_stop=curve|halving`): a study's state between rounds. Every trial still
running trains to the next rung (a fraction of its budget) and pauses; once all have reached it, the rule of
suite/early_stop.py decides which to stop, once, written to the study's early_stop.json (the authority on what it
stopped) and into each stopped trial's record. After the last rung the survivors run to the end, and the study's
planner (suite/protocols.py) takes over for the scoring seeds."""

from __future__ import annotations

from typing import TYPE_CHECKING

from suite import curves, early_stop
from suite.layout import SUMMARY
from suite.protocols import Config, key, trial_name, wanted
from suite.records import read_json
from suite.schema import FINISHED, SEARCH_SEED, TrialStatus, mark_stopped, summary_or_empty
from workloads.files import atomic_write_json

if TYPE_CHECKING:
    from suite.study import Study

EARLY_STOP = "early_stop.json"  # a study's rung decisions, written when made


class Rungs:
    def __init__(self, study: Study):
        self.study = study
        self.launched_to: dict[tuple, float | None] = {}  # configuration -> where this invocation launched it to
        self.rule = study.tuning["early_stop"]
        decisions = read_json(study.directory / EARLY_STOP)
        # rung (as text) -> {trial name -> decision}
        self.decisions: dict[str, dict] = decisions.get("rungs", {}) if isinstance(decisions, dict) else {}

    def stopped(self, config: Config) -> float | None:
        """The rung at which this study stopped the configuration, or None."""
        name = trial_name(config)
        return next((float(r) for r, d in self.decisions.items() if d.get(name, {}).get("stop")), None)

    def reached(self, config: Config) -> float | None:
        """How far the search trial of `config` has come: None when it is done (diverged, failed in this
        invocation, refused or stopped early); 1.0 when it completed (perhaps run to the end by another study: it is
        still decided on at each rung, from its prefix); else the highest rung (or 0) it has reached: one this study
        decided on with it running, or where its paused record stands (a killed trial's record may be behind its
        checkpoint)."""
        if key(config) in self.study.refused or self.stopped(config) is not None:
            return None
        summary = summary_or_empty(self.study.run_dir(config, SEARCH_SEED) / SUMMARY)
        status = summary.get("status")
        if status == TrialStatus.COMPLETED:
            return 1.0
        if status in FINISHED or (status == TrialStatus.FAILED and (key(config), SEARCH_SEED) in self.study.attempted):
            return None
        name = trial_name(config)
        kept = [float(r) for r, decided in self.decisions.items() if name in decided]  # (it was running there)
        if status in (TrialStatus.PAUSED, TrialStatus.STOPPED_EARLY):  # (stopped early by another study)
            kept += [r for r in self.study.tuning["rungs"] if curves.passed(summary, r, self.study.cfg["eval_every"])]
        return max(kept, default=0.0)

    def decide(self, rung: float, alive: list[Config]) -> None:
        """The rule's decision at a rung over the configurations still running, made once: written to
        early_stop.json (the study's authority) and, for each trial it stops, into the trial's summary.json
        (status stopped_early, with its prediction; its checkpoint stays, so another study may continue it)."""
        found = {trial_name(c): curves.run_curve(self.study.run_dir(c, SEARCH_SEED), rung) for c in alive}
        decisions = early_stop.decide(self.rule, found, self.study.tuning.get("eta", 2), seed=self.study.tuning["seed"])
        self.decisions[str(rung)] = decisions
        record = {"rule": self.rule, "rungs": self.decisions}
        self.study.directory.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.study.directory / EARLY_STOP, record)
        for config in alive:
            decision = decisions[trial_name(config)]
            if decision["stop"]:
                mark_stopped(
                    self.study.run_dir(config, SEARCH_SEED) / SUMMARY, self.rule, rung, self.study.directory, **decision
                )

    def next_trials(self) -> list[tuple[Config, int]] | None:
        """The search trials to run to the next rung (or to the end after the last), deciding at each rung once
        every trial still running has reached it; None when the search is over (every configuration finished,
        failed or was stopped), so the scoring seeds follow; [] when a trial launched in this invocation did not
        reach its rung (killed: a rerun continues it). Sets `pause_at` for the batch."""
        configs = [
            c
            for c in wanted(self.study.tuning["protocol"], self.study.start, {}, self.study.space, self.study.tuning)
            if not self.study.refuse(c)
        ]
        for config in configs:
            self.study.propose(config)
        while True:
            alive = {key(c): (c, at) for c in configs if (at := self.reached(c)) is not None}
            if all(at >= 1.0 for _, at in alive.values()):
                return None
            level = min(at for _, at in alive.values())
            if level in self.study.tuning["rungs"] and str(level) not in self.decisions:
                self.decide(level, [c for c, _ in alive.values()])
                continue
            target = next((r for r in self.study.tuning["rungs"] if r > level), 1.0)
            pending = [c for c, at in alive.values() if at < target]
            if any(self.launched_to.get(key(c)) == target for c in pending):
                return []
            for config in pending:
                self.launched_to[key(config)] = target
            self.study.pause_at = target if target < 1.0 else None
            return [(c, SEARCH_SEED) for c in pending]
