"""The contract between the packages: which config keys define a trial, and where its record lives.

Torch-free, so the sweep driver and `analysis/` import it as cheaply as the harness does. Every other module takes
these facts from here: trial ids, the run-directory layout, the record's file names, where a replaced record is
set aside and where a study lives (what the records hold is suite/schema.py's).

    <results_dir>/<workload>/<optimizer>/<trial_id>/seed<seed>/{config.yaml, metrics.jsonl, summary.json,
                                                                checkpoint.pt (unfinished trials only),
                                                                parent.pt (PBT members started from another's)}
    <results_dir>/<workload>/<optimizer>/<trial_id>/.replaced/seed<seed>-<time>/   (force=true set these aside)
    <results_dir>/<workload>/<optimizer>/study-<tuning.name>[-<tokens>tokens]/study.json   (python -m suite.sweep)

Directories whose names start with '.' (.replaced/, .multirun/) are never read as records."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from pathlib import Path

# Each top-level key of a composed config, classified once (tests/test_contract.py fails on an unclassified key).
TRIAL_KEYS = (  # define what is trained and measured: the trial id is a hash of these
    "optimizer",
    "workload",
    "schedule",
    "grad_clip",
    "precision",
    "compile",
    "data_seed",
    "divergence_factor",  # decides when a run counts as diverged
    "eval_every",  # decides the evaluation points: best metric and time-to-target
    "log_every",  # decides the divergence checks
    "init_from",  # the run a PBT member starts from (left out of the id when null: every other trial's id stands)
)
RUN_KEYS = ("seed",)  # names one run of a trial: seed<seed>/
SETTING_KEYS = (  # where and how it runs, never what: may differ between a checkpoint and its resume
    "results_dir",
    "device",
    "progress",
    "force",
    "checkpoint_every",  # a resumed run is bitwise the uninterrupted one
    "pause_at",  # where a run pauses (early-stopping rungs): continued, it is bitwise the uninterrupted one
    "peak_flops",  # only divides the measured FLOP/s into MFU
    "tuning",  # sweeps only
    "cluster",  # sweeps only
)
NOT_IN_TRIAL_ID = ("search_space",)  # optimizer.search_space belongs to tuning, not to the trial

CONFIG, SUMMARY, METRICS, CHECKPOINT, STUDY, PARENT = (
    "config.yaml",
    "summary.json",
    "metrics.jsonl",
    "checkpoint.pt",
    "study.json",
    "parent.pt",  # a PBT member's starting point: a copy of the checkpoint named by its `init_from`
)
RECORD_FILES = (CONFIG, SUMMARY, METRICS)  # what the records hold: suite/schema.py
REPLACED = ".replaced"

# Names that become path components: no separators, no leading dot, nothing a shell or a file system treats oddly.
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")


def unclassified(cfg: dict) -> list[str]:
    """Top-level keys of a config that the contract does not classify."""
    known = {*TRIAL_KEYS, *RUN_KEYS, *SETTING_KEYS}
    return sorted(k for k in cfg if k not in known)


def check_name(kind: str, name) -> str:
    """`name` as a single path component, or ValueError (so `optimizer.name=../../x` cannot escape the results)."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ValueError(f"{kind} name {name!r} cannot be a directory name (letters, digits and _ . + - only)")
    return name


def trial_definition(cfg: dict) -> dict:
    """The part of a resolved config that defines the trial."""
    defining = {k: cfg.get(k) for k in TRIAL_KEYS}
    defining["optimizer"] = {k: v for k, v in (cfg.get("optimizer") or {}).items() if k not in NOT_IN_TRIAL_ID}
    if defining["init_from"] is None:
        del defining["init_from"]
    schedule = defining["schedule"]
    if isinstance(schedule, dict) and schedule.get("from"):  # a refined schedule: its source run, by identity
        defining["schedule"] = {**schedule, "from": run_identity(schedule["from"])}
    return defining


def run_identity(directory) -> str:
    """A run directory as <workload>/<optimizer>/<trial id>/seed<N>, wherever its results directory lies."""
    return "/".join(Path(str(directory)).expanduser().parts[-4:])


def trial_id(cfg: dict) -> str:
    """A short stable hash of the trial-defining keys of a resolved config."""
    canonical = json.dumps(trial_definition(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:10]


def task_dir(results_dir, workload: str, optimizer: str) -> Path:
    """<results_dir>/<workload>/<optimizer>/: every trial and study of one optimizer on one workload."""
    return Path(results_dir).expanduser() / check_name("workload", workload) / check_name("optimizer", optimizer)


def run_dir(cfg: dict) -> Path:
    """<results_dir>/<workload>/<optimizer>/<trial_id>/seed<seed>/"""
    trial = task_dir(cfg["results_dir"], cfg["workload"]["name"], cfg["optimizer"]["name"]) / trial_id(cfg)
    return trial / f"seed{cfg['seed']}"


def results_dir_of(run_directory: Path) -> Path:
    """The results directory holding a run directory (run_dir's inverse)."""
    return run_directory.parents[3]


def study_dir(results_dir, workload: str, optimizer: str, tuning_name: str, budget_tokens: str | None) -> Path:
    """<results_dir>/<workload>/<optimizer>/study-<tuning.name>[-<tokens>tokens]/"""
    name = f"study-{check_name('tuning', tuning_name)}" + (f"-{budget_tokens}tokens" if budget_tokens else "")
    return task_dir(results_dir, workload, optimizer) / check_name("study", name)


def resume_differences(saved: dict, cfg: dict) -> list[str]:
    """The keys in which a checkpoint's config and this run's differ where a resume must not: what defines the
    trial and names the run (where and how it runs may change). A checkpoint lies in the directory of its own
    trial id, so this guards against a record copied, edited or written under another version's identity."""
    old = {**trial_definition(saved), **{k: saved.get(k) for k in RUN_KEYS}}
    new = {**trial_definition(cfg), **{k: cfg.get(k) for k in RUN_KEYS}}
    return sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))


def is_study_defining(override: str) -> bool:
    """Whether a command-line override changes what a study's trials train (the sweep sets the seeds itself)."""
    head = override.lstrip("+~").partition("=")[0].split(".")[0]
    return head in TRIAL_KEYS and not override.lstrip("+~").startswith("optimizer.search_space")


def is_record_dir_name(name: str) -> bool:
    """Directories collect descends into: not hidden (.replaced/, .multirun/ hold no current records)."""
    return not name.startswith(".")


def replaced_dir(directory: Path) -> Path:
    """Where force=true moves a run's old record: <trial>/.replaced/seed<N>-<time>/ (hidden from collect)."""
    return directory.parent / REPLACED / f"{directory.name}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}"
