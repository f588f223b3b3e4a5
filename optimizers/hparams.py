"""Hyperparameters, declared once: an optimizer's YAML (conf/optimizer/<name>.yaml) lists the keys it accepts and
their defaults; its builder reads them. What a value may be comes from two places only: the type of its default
(a number, an integer, a flag, a word, a list of as many numbers, a list of words), and RULES below, keyed by name
patterns, so a new hyperparameter called `*_lr`, `*betas*`, `*eps`, `*weight_decay*` and the like is checked
without a line of code. Torch-free: the sweep driver validates search spaces without importing torch."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

SCALES = ("log", "linear")


@dataclass(frozen=True)
class Rule:
    holds: Callable[[Any], bool]  # applied to the value (to each element of a list)
    says: str  # what the value must be, as the refusal puts it


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


POSITIVE = Rule(lambda v: v > 0, "positive")
NON_NEGATIVE = Rule(lambda v: v >= 0, "non-negative")
UNIT = Rule(lambda v: 0 <= v < 1, "in [0, 1)")
PROBABILITY = Rule(lambda v: 0 <= v <= 1, "in [0, 1]")
COUNT = Rule(lambda v: v >= 1, "at least 1")


def one_of(*choices) -> Rule:
    return Rule(lambda v: v in choices, "one of " + ", ".join(map(str, choices)))


def is_role(value) -> bool:
    from workloads.base import ParamRole  # (imported when a role is checked: torch is not needed before)

    return value in {r.value for r in ParamRole}


ROLE = Rule(is_role, "parameter roles (workloads.base.ParamRole: embedding, head, hidden_matrix, ...)")


# (name patterns, rule): the first rule whose pattern matches a key applies; a key matching none is only
# type-checked against its default.
RULES: tuple[tuple[tuple[str, ...], Rule], ...] = (
    (("*betas*",), UNIT),  # every element of betas, adam_betas, betas_1d
    (("lr", "*_lr", "lr_*"), POSITIVE),
    (("eps", "*_eps"), NON_NEGATIVE),
    (("*weight_decay*",), NON_NEGATIVE),
    (("momentum",), UNIT),
    (("r", "s_decay"), NON_NEGATIVE),
    (("alpha", "rho", "d0", "d_coef", "s_init", "reps_rel*", "*_scale", "damping"), POSITIVE),
    (("balance_prob",), PROBABILITY),
    (("*_steps", "*_period", "*_frequency", "*_dim", "num_*", "*_triangular"), COUNT),
    (("*_roles",), ROLE),  # each element
    (("adjust_lr_fn",), one_of("original", "match_rms_adamw")),  # torch.optim.Muon's choices
    (("memory_save_mode",), one_of(None, "one_diag", "smart_one_diag", "all_diag")),  # PSGD Kron's choices
)


FLOAT32_MAX = 3.4028234663852886e38  # the optimizers' state is float32: a larger value overflows in their arithmetic


def rule_for(key: str) -> Rule | None:
    return next((rule for patterns, rule in RULES if any(fnmatchcase(key, p) for p in patterns)), None)


def hyperparameters(optimizer_cfg: Mapping) -> dict:
    """The hyperparameters of an optimizer config: everything but its name and its tuning search space."""
    return {k: v for k, v in optimizer_cfg.items() if k not in ("name", "search_space")}


def type_problem(value, default) -> str | None:
    """What is wrong with `value`'s type given its declared default, or None."""
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if isinstance(default, int):
        return None if isinstance(value, int) and not isinstance(value, bool) else "an integer"
    if isinstance(default, float):
        if not (_number(value) and math.isfinite(value)):
            return "a finite number"
        return None if abs(value) <= FLOAT32_MAX else "a number within float32's range (at most 3.4e38 in size)"
    if isinstance(default, str):
        return None if isinstance(value, str) else "a word"
    if isinstance(default, list) and all(isinstance(d, str) for d in default):  # a set of words: any length
        return None if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value) else "a list of words"
    if isinstance(default, list):
        if not isinstance(value, list | tuple) or len(value) != len(default):
            return f"a list of {len(default)} values like {default}"
        problems = [type_problem(v, d) for v, d in zip(value, default, strict=True)]
        return f"a list of {len(default)} values like {default}" if any(problems) else None
    return None  # a null default: any value its rule allows


def validate(name: str, hp: Mapping, declared: Mapping) -> None:
    """Refuse keys the optimizer's YAML does not declare and values of the wrong type or range, naming the key,
    the optimizer and what was expected."""
    missing = sorted(set(declared) - set(hp))
    if missing:
        raise ValueError(
            f"optimizer {name}: {', '.join(missing)} missing (every declared hyperparameter needs a value)"
        )
    check_values(name, hp, declared)


def check_values(name: str, values: Mapping, declared: Mapping) -> None:
    """Refuse keys the YAML does not declare and values of the wrong type or range (validate's check of each
    value: a sweep checks a configuration's searched values with it before launching the trial)."""
    for key, value in values.items():
        if key not in declared:
            raise ValueError(f"optimizer {name}: unknown hyperparameter {key!r}; valid: {', '.join(sorted(declared))}")
        expected = type_problem(value, declared[key])
        if expected:
            raise ValueError(f"optimizer {name}: {key} must be {expected}, got {value!r}")
        rule = rule_for(key)
        values = value if isinstance(value, list | tuple) else [value]
        if rule and not all(rule.holds(v) for v in values):
            each = "every value of " if isinstance(value, list | tuple) else ""
            raise ValueError(f"optimizer {name}: {each}{key} must be {rule.says}, got {value!r}")


def validate_search_space(name: str, space, declared: Mapping) -> None:
    """Each entry names a declared hyperparameter (or `name.i`, element i of a list such as betas) and a range
    {low, high, scale} with low < high, scale log or linear, and log ranges strictly positive."""
    if not isinstance(space, Mapping):
        raise ValueError(f"optimizer {name}: search_space must map hyperparameters to ranges, got {space!r}")
    for key, dim in space.items():
        where = f"optimizer {name}: search_space.{key}"
        head, _, index = key.partition(".")
        if head not in declared:
            raise ValueError(f"{where} is not a hyperparameter of {name}")
        default = declared[head]
        if index and not (isinstance(default, list) and index.isdigit() and int(index) < len(default)):
            raise ValueError(f"{where}: {head} has no element {index}")
        if not isinstance(dim, Mapping) or set(dim) != {"low", "high", "scale"} or dim["scale"] not in SCALES:
            raise ValueError(f"{where} must be {{low, high, scale}} with scale one of {', '.join(SCALES)}")
        if not (_number(dim["low"]) and _number(dim["high"])):
            raise ValueError(f"{where}: low and high must be numbers, got {dim['low']!r} and {dim['high']!r}")
        if not dim["low"] < dim["high"]:
            raise ValueError(f"{where}: low {dim['low']} must be below high {dim['high']}")
        if dim["scale"] == "log" and not dim["low"] > 0:
            raise ValueError(f"{where}: a log scale needs positive values, got low {dim['low']}")
