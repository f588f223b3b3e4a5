"""The records' schema, shared by the harness and `analysis/` (torch-free): the words a record may hold, the keys it
must hold, how it is read and written, the search seed, a PBT member's origin, and the one rule that picks the tuned
configuration. Every reader and writer of summary.json and study.json goes through here; no other module spells a
status or a record's required key.

    summary.json  one run's record (written by suite/trial.py; a study's early-stopping or PBT decision may rewrite
                  its status to stopped_early through `mark_stopped`)
    study.json    one study's record (written by suite/study.py)"""

from __future__ import annotations

import math
import os
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from suite.layout import STUDY
from suite.records import read_json
from workloads.files import atomic_write_json


class _Word(str, Enum):
    """A status word: equal to, hashed as, printed and written to JSON as its plain string."""

    __hash__ = str.__hash__

    def __str__(self) -> str:
        return self.value

    __format__ = str.__format__


class TrialStatus(_Word):
    """A run's status in summary.json (and, with REFUSED, a trial's status in study.json)."""

    RUNNING = "running"  # written before training (`process_gone` tells one whose process died)
    COMPLETED = "completed"
    DIVERGED = "diverged"
    FAILED = "failed"
    PAUSED = "paused"  # stopped at `pause_at` with a checkpoint: a run without it continues the trial
    STOPPED_EARLY = "stopped_early"  # paused, and left there by a study's early-stopping rule or PBT
    REFUSED = "refused"  # study.json only: the optimizer refuses the configuration's values; never launched


class StudyStatus(_Word):
    RUNNING = "running"  # the sweep has more to run
    COMPLETED = "completed"  # every trial it ran ended
    INCOMPLETE = "incomplete"  # it is over, but some trial failed or never finished


FINISHED = (TrialStatus.COMPLETED, TrialStatus.DIVERGED)  # never run again (unless force=true): a result
ENDED = (*FINISHED, TrialStatus.STOPPED_EARLY)  # a study's trials that it runs no further
HELD = (TrialStatus.STOPPED_EARLY, TrialStatus.PAUSED)  # partial by design: neither a result nor a failure
SEARCH_SEED = 0  # the seed a sweep selects on; seeds 1 .. tuning.seeds-1 score, and played no part in the choice


def scoring_seeds(seeds: int) -> range:
    """The seeds a study of `seeds` seeds scores its tuned and default configurations on."""
    return range(SEARCH_SEED + 1, SEARCH_SEED + seeds)


class RecordError(ValueError):
    """A record that is there but cannot be read as one (damaged, or not written by this suite)."""

    def __init__(self, path, why: str, kind: str = "run"):
        self.path, self.why = path, why
        shown = "is damaged" if kind == "run" else f"is not a {kind} record"
        super().__init__(f"{path} {shown}; move it away ({why})")


# --- summary.json -----------------------------------------------------------------------------------------------
SUMMARY_KEYS = (  # what every run record holds from the moment it is written
    "status",
    "workload",
    "optimizer",
    "seed",
    "default_hyperparameters",
    "metric",
    "budget",
    "steps",
    "tokens",
    "final",
    "best",
    "time_to_target",
    "error",
    "provenance",
)
WORKLOAD_FACTS = ("flops_per_example", "params_non_embedding", "data_fingerprint")  # every workload's facts()


def check_facts(name: str, facts: Mapping) -> Mapping:
    """A workload's facts() as a record needs them, or ValueError naming the keys it lacks."""
    missing = [k for k in WORKLOAD_FACTS if k not in facts]
    if missing:
        raise ValueError(f"workload {name}: facts() lacks {', '.join(missing)} (suite/schema.py WORKLOAD_FACTS)")
    return facts


def check_summary(summary, where) -> dict:
    if not isinstance(summary, Mapping):
        raise RecordError(where, "not a JSON object written by this suite")
    missing = [k for k in SUMMARY_KEYS if k not in summary]
    if missing or summary["status"] not in TrialStatus.__members__.values() or summary["status"] == "refused":
        raise RecordError(where, f"lacks {', '.join(missing)}" if missing else f"status {summary['status']!r}")
    return dict(summary)


def load_summary(path: Path) -> dict | None:
    """A run's summary.json: None when there is none, RecordError when it is damaged."""
    if not path.exists():
        return None
    return check_summary(read_json(path), path)


def summary_or_empty(path: Path) -> dict:
    """A run's summary for a reader that treats a missing or damaged record as no record."""
    try:
        return load_summary(path) or {}
    except RecordError:
        return {}


def save_summary(path: Path, summary: Mapping) -> None:
    atomic_write_json(path, check_summary(summary, path))


def status_of(path: Path) -> str | None:
    return summary_or_empty(path).get("status")


def mark_stopped(path: Path, rule: str, rung: float, study: Path, **decision) -> None:
    """A study's decision to leave a paused run where it stands (early stopping in rungs with the rule's
    `decision`, or PBT replacing it): the run's status becomes stopped_early, its checkpoint stays."""
    stopped = {"rule": rule, "rung": rung, "study": str(study), **decision}
    save_summary(path, {**load_summary(path), "status": TrialStatus.STOPPED_EARLY, "early_stop": stopped})


def process_gone(summary: Mapping) -> bool:
    """Whether a `running` record's process has gone (killed, say by the kernel for memory) and left it so: its
    process id names no process on this host (a record from another host cannot be told: False)."""
    where = summary.get("provenance") or {}
    if summary.get("status") != TrialStatus.RUNNING or where.get("hostname") != socket.gethostname():
        return False
    pid = where.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # (alive, another user's)
        return False
    return False


def is_finished(summary: Mapping | None) -> bool:
    return bool(summary) and summary.get("status") in FINISHED


def final_score(summary: Mapping) -> float:
    """A completed run's final metric oriented so that lower is better; +inf for anything else."""
    if summary.get("status") != TrialStatus.COMPLETED or not summary.get("final"):
        return math.inf
    metric = summary.get("metric") or {"name": "loss", "lower_is_better": True}
    value = summary["final"][metric["name"]]
    return value if metric["lower_is_better"] else -value


# --- study.json -------------------------------------------------------------------------------------------------
STUDY_KEYS = ("optimizer", "workload", "protocol", "settings", "budget", "trials", "best", "status")
STUDY_TRIAL_KEYS = ("trial", "config", "seed", "status", "score", "run_dir")


def check_study(study, where) -> dict:
    problem = None
    if not isinstance(study, dict):
        problem = "not a JSON object"
    elif missing := [k for k in STUDY_KEYS if k not in study]:
        problem = f"lacks {', '.join(missing)}"
    elif not isinstance(study["settings"], dict) or not isinstance(study["trials"], list):
        problem = "its settings or trials are damaged"
    elif any(not isinstance(t, dict) or any(k not in t for k in STUDY_TRIAL_KEYS) for t in study["trials"]):
        problem = "its trials are damaged"
    elif study["status"] not in StudyStatus.__members__.values():
        problem = f"status {study['status']!r}"
    if problem:
        raise RecordError(where, problem, kind="study")
    return study


def load_study(path: Path) -> dict | None:
    """A study.json: None when there is none, RecordError when it is damaged."""
    if not path.exists():
        return None
    return check_study(read_json(path), path)


def save_study(path: Path, study: dict) -> None:
    atomic_write_json(path, check_study(study, path))


def study_files(paths: Iterable) -> list[Path]:
    """The study.json files of study directories, or under directories holding them (sorted, each once)."""
    found = set()
    for p in map(Path, paths):
        found.update([p / STUDY] if (p / STUDY).is_file() else p.rglob(STUDY))
    return sorted(found)


def studies(paths: Iterable, finished: bool = False) -> list[tuple[Path, dict]]:
    """Every study record under `paths` (`finished`: only completed studies with a best configuration); a damaged
    one is RecordError, never skipped in silence."""
    found = [(f, load_study(f)) for f in study_files(paths)]
    if finished:
        found = [(f, s) for f, s in found if s["status"] == StudyStatus.COMPLETED and s["best"]]
    return found


def search_trials(study: Mapping) -> list[dict]:
    """A study's trials on the search seed that have a score: what its selection compared."""
    return [t for t in study["trials"] if t["seed"] == SEARCH_SEED and t["score"] is not None]


# --- init_from: where a PBT member starts ------------------------------------------------------------------------
ORIGIN = "init_from"  # the config key (a trial key; left out of the trial id when null)
INIT_FROM = re.compile(
    r"(?P<trial>[0-9a-f]{10})/seed(?P<seed>[0-9]+)@(?P<step>[0-9]+)|population-(?P<name>[A-Za-z0-9_.+-]+)@0"
)


@dataclass(frozen=True)
class Origin:
    """Another run's (trial id, seed) at a step, or the first generation of population `population` (trained from
    scratch, but its own trial: its checkpoints at the boundaries are the population's)."""

    trial: str | None = None
    seed: int = SEARCH_SEED
    step: int = 0
    population: str | None = None

    def __str__(self) -> str:
        if self.population is not None:
            return f"population-{self.population}@0"
        return f"{self.trial}/seed{self.seed}@{self.step}"

    @property
    def run(self) -> str | None:
        """<trial id>/seed<N>: the run directory (under the task's) whose checkpoint the member starts from."""
        return None if self.trial is None else f"{self.trial}/seed{self.seed}"

    @classmethod
    def parse(cls, text) -> Origin:
        match = INIT_FROM.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise ValueError(f"init_from must be <trial id>/seed<N>@<step>, population-<name>@0 or null, got {text!r}")
        if match["name"] is not None:
            return cls(population=match["name"])
        return cls(trial=match["trial"], seed=int(match["seed"]), step=int(match["step"]))


# --- the one selection rule -------------------------------------------------------------------------------------
def _comparable(value) -> tuple:
    if isinstance(value, int | float):
        return (0, value)
    if isinstance(value, list | tuple):
        return (1, tuple(_comparable(v) for v in value))
    return (2, str(value))


def tie_order(values: Mapping) -> tuple:
    """How tied configurations are ordered: by their (name, value) pairs sorted by name, values compared as numbers
    (5.6e-07 before 4.2e-05, which as text sort the other way); a list value by its elements, anything else as
    text after the numbers."""
    return tuple((name, _comparable(v)) for name, v in sorted(values.items()))


def best_of(scores: Mapping, values=None):
    """The (key, score) of the lowest score, ties broken by `tie_order` of the key's values (`values(key)`; by
    default the key is a configuration's sorted (name, value) pairs): the sweep and the analysis select alike."""
    if not scores:
        return None
    order = values or dict
    k = min(scores, key=lambda k: (scores[k], tie_order(order(k))))
    return k, scores[k]
