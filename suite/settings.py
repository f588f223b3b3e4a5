"""What each config group accepts, declared once, and the one place a violation becomes the `error:` line.

A composed configuration has the groups below (conf/<group>/*.yaml, and the top-level keys of conf/config.yaml);
GROUPS declares, per group, what each key's value may be. `check_config` checks a whole composed configuration
against it (a trial before it builds anything, a sweep before it plans a study); `suite/checks.py` reads it to know
which keys take null, `auto` or a list of any length before Hydra composes. Relations between groups or with
files on disk (a batch that splits into micro-batches, a search space PBT can perturb, a data file's header) are
checked by their owners, and raise the same ConfigError. The optimizer group is declared by each optimizer's YAML
and `optimizers/hparams.RULES` (types from the defaults, ranges by name). `refuse` is the one place any of these
becomes the single `error: ...` line on stderr with exit code 2. Torch-free: the sweep driver and `analysis`
use it."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from suite.early_stop import RULES as EARLY_STOP_RULES
from suite.schema import Origin
from suite.transfer import CHECK_FACTORS

PRECISIONS = ("fp32", "bf16")  # what `precision` may name besides auto (suite/trial.py maps each to its dtype)
SAMPLERS = ("halton", "sobol")  # scipy.stats.qmc's scrambled sequences (suite/protocols.py)


class ConfigError(ValueError):
    """A configuration a command refuses before anything runs: its message is the one line the user reads."""


@dataclass(frozen=True)
class Setting:
    holds: Callable[[Any], bool]  # applied to the value (never to null or one of `words`)
    says: str  # what the value must be, as the refusal puts it
    null: bool = False  # null is accepted (it means none: no cap, no budget given, ...)
    words: tuple[str, ...] = ()  # words accepted besides (auto)
    any_length: bool = False  # a list whose length the default does not fix

    def problem(self, name: str, value) -> str | None:
        if (value is None and self.null) or (isinstance(value, str) and value in self.words):
            return None
        try:
            if self.holds(value):
                return None
        except (TypeError, ValueError):  # (a value of a type the test did not foresee)
            pass
        return f"{name} must be {self.says}, got {value!r}"


def _integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)) and math.isfinite(value)


def integer(low: int, says: str | None = None, high: float = math.inf, **kw) -> Setting:
    return Setting(lambda v: _integer(v) and low <= v <= high, says or f"an integer >= {low}", **kw)


POSITIVE_INTEGER = integer(1, "a positive integer")
NON_NEGATIVE_INTEGER = integer(0, "a non-negative integer")
POSITIVE_NUMBER = Setting(lambda v: _number(v) and v > 0, "a positive number (finite)", null=True)
FLAG = Setting(lambda v: isinstance(v, bool), "true or false")
FRACTION = Setting(lambda v: _number(v) and 0 < v < 1, "a fraction of the budget in (0, 1)")


def one_of(*words) -> Setting:
    return Setting(lambda v: v in words, "one of " + ", ".join(map(str, words)))


def _increasing_fractions(value) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(_number(r) and 0 < r < 1 for r in value)
        and list(value) == sorted(set(value))
    )


def _origin(value) -> bool:
    Origin.parse(value)  # (its own error says what the format is)
    return True


TRIAL = {  # the top-level keys of conf/config.yaml
    "seed": NON_NEGATIVE_INTEGER,
    "data_seed": NON_NEGATIVE_INTEGER,
    "checkpoint_every": NON_NEGATIVE_INTEGER,
    "eval_every": POSITIVE_INTEGER,
    "log_every": POSITIVE_INTEGER,
    "progress": FLAG,
    "force": FLAG,
    "compile": Setting(lambda v: isinstance(v, bool), "auto, true or false", words=("auto",)),
    "precision": Setting(lambda v: v in PRECISIONS, f"one of auto, {', '.join(PRECISIONS)}", words=("auto",)),
    "peak_flops": Setting(lambda v: _number(v) and v > 0, "a positive number of FLOP/s or null", null=True),
    "grad_clip": Setting(lambda v: _number(v) and v >= 0, "a finite number >= 0 (0 turns clipping off)"),
    "divergence_factor": Setting(lambda v: _number(v) and v > 1, "a number > 1"),
    "init_from": Setting(_origin, "<trial id>/seed<N>@<step>, population-<name>@0 or null", null=True),
    "pause_at": Setting(FRACTION.holds, "a fraction of the budget in (0, 1) or null", null=True),
}

TUNING = {  # every protocol's keys (each conf/tuning/<protocol>.yaml holds its own)
    "seeds": integer(1),
    "trials": integer(1),
    "grid_points": integer(2),
    "max_trials": integer(1, "an integer >= 1 or null", null=True),
    "seed": NON_NEGATIVE_INTEGER,
    "sampler": one_of(*SAMPLERS),
    "early_stop": one_of(*EARLY_STOP_RULES),
    "rungs": Setting(_increasing_fractions, "increasing fractions of the budget in (0, 1)", any_length=True),
    "eta": integer(2, "an integer >= 2 (halving keeps the best 1/eta)"),
    "population": integer(4, "an integer >= 4 (a quarter to copy from)"),
    "interval": FRACTION,
    "resample": Setting(lambda v: _number(v) and 0 <= v <= 1, "a probability in [0, 1]"),
    "from": Setting(lambda v: isinstance(v, list | str), "study directories (a list)", any_length=True),
    "check": integer(0, f"an integer in [0, {len(CHECK_FACTORS)}]", high=len(CHECK_FACTORS)),
}

CLUSTER = {
    "kind": one_of("local", "slurm"),
    "slots": Setting(lambda v: _integer(v) and v >= 1, ">= 1 or auto", words=("auto",)),
}

MICRO_BATCH = Setting(POSITIVE_INTEGER.holds, "a positive integer or auto", words=("auto",))
WORKLOADS = {  # per workload family (the `family` key of conf/workload/<name>.yaml)
    "lm": {
        **dict.fromkeys(("batch_size", "seq_len", "d_model", "n_head", "n_layer"), POSITIVE_INTEGER),
        "tokens": POSITIVE_NUMBER,
        "chinchilla": POSITIVE_NUMBER,
        "micro_batch_size": MICRO_BATCH,
        "activation_checkpointing": FLAG,
    },
    "quadratic": {
        **dict.fromkeys(("rows", "cols", "batch_size", "steps", "eval_examples"), POSITIVE_INTEGER),
        "tokens": POSITIVE_NUMBER,
        "noise": Setting(lambda v: _number(v) and v >= 0, "a number >= 0"),
    },
    "vision": {
        "batch_size": POSITIVE_INTEGER,
        "epochs": POSITIVE_NUMBER,
        "tokens": POSITIVE_NUMBER,
        "micro_batch_size": MICRO_BATCH,
    },
}


def setting(path: str) -> Setting | None:
    """The declaration of a dotted key (`tuning.max_trials`, `workload.micro_batch_size`, `seed`), or None. A
    workload key is looked up in every family (checks.py asks before the family is known)."""
    group, _, key = path.partition(".")
    if not key:
        return TRIAL.get(group)
    if group == "workload":
        return next((family[key] for family in WORKLOADS.values() if key in family), None)
    return {"tuning": TUNING, "cluster": CLUSTER}.get(group, {}).get(key)


def check_group(prefix: str, declared: Mapping[str, Setting], values: Mapping) -> None:
    for key, value in values.items():
        rule = declared.get(key)
        problem = rule and rule.problem(f"{prefix}{key}", value)
        if problem:
            raise ConfigError(problem)


def check_config(cfg: Mapping) -> None:
    """Every declared key of a composed configuration (a resolved dict), refused in one line (ConfigError)."""
    check_group("", TRIAL, cfg)
    if "workload" in cfg:
        check_group("workload.", WORKLOADS.get(cfg["workload"].get("family"), {}), cfg["workload"])
    for group, declared in (("tuning", TUNING), ("cluster", CLUSTER)):
        if group in cfg:
            check_group(f"{group}.", declared, cfg[group])


def refuse(problem: Exception | str) -> int:
    """The one way a command refuses its input: `error: <the first line>` on stderr; returns the exit code, 2."""
    lines = str(problem).strip().splitlines()
    print(f"error: {lines[0] if lines else type(problem).__name__}", file=sys.stderr)
    return 2
