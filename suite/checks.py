"""Command-line checks made before Hydra starts, so that bad input gets one line instead of a traceback."""

from __future__ import annotations

import shutil

import yaml

from suite import CONF_DIR
from suite.settings import setting

GROUPS = ("optimizer", "workload", "schedule", "workload/data", "tuning", "cluster", "subset", "study")


def check_parses(argv: list[str]) -> str | None:
    """Every argument that is not an option is a key=value override Hydra can parse: its parse error in one line,
    with Hydra's reason (`optimizer:adamw` -> "missing EQUAL at ':'")."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    for arg in argv:
        if arg.startswith("-"):
            continue
        try:
            OverridesParser.create().parse_overrides([arg])
        except HydraException as e:
            lines = str(e).strip().splitlines()
            reason = [line for line in lines if not line.startswith(("Error parsing override", "See "))]
            return f"{arg!r} is not a key=value override ({'; '.join(reason) or 'Hydra cannot parse it'})"
    return None


def check_group_choices(argv: list[str]) -> str | None:
    """Hydra's own message for an unknown group option spans many lines; say it in one, with the valid names."""
    for arg in argv:
        group, sep, value = arg.partition("=")
        if sep and not group.lstrip("+~"):
            return f"{arg!r} names no key (overrides are key=value)"
        if not sep or group not in GROUPS or value.endswith(".yaml"):  # (a subset may be given by its path)
            continue
        valid = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
        for name in value.split(","):  # a multirun sweep lists several
            if name not in valid:
                return f"unknown {group} {name!r}; valid: {', '.join(valid)}"
    return None


def check_overrides(argv: list[str]) -> str | None:
    """Hydra refuses `optimizer.lrr=0.01` or `epochs=5` in five lines without saying what exists, and takes
    `workload.batch_size=abc` as it comes: name the keys that exist, and refuse a value whose type differs from its
    default's (optimizer hyperparameters are checked by their own rules when the trial is prepared). Composes the
    config of the chosen groups (the first of a multirun list) once."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from optimizers.hparams import type_problem

    choices, plain = [], []
    for arg in argv:
        name, sep, value = arg.partition("=")
        if not sep or arg.startswith(("+", "~")) or name.startswith("hydra"):
            continue
        if name in GROUPS:
            if not value.endswith(".yaml") and name not in ("subset", "study"):  # (sweep files, not config groups)
                choices.append(f"{name}={value.split(',')[0]}")
        elif "/" not in name:
            plain.append(arg)
    if not plain:
        return None
    try:
        overrides = OverridesParser.create().parse_overrides(plain)
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("config", choices)
    except (HydraException, OmegaConfBaseException) as e:
        return str(e).strip().splitlines()[0]
    absent = object()
    for override in overrides:
        name = override.key_or_group
        default = OmegaConf.select(cfg, name, default=absent)
        if default is absent:
            parent = name.rpartition(".")[0]
            while parent and not OmegaConf.is_dict(OmegaConf.select(cfg, parent, default=None)):
                parent = parent.rpartition(".")[0]  # the deepest part of the path that exists
            node = OmegaConf.select(cfg, parent) if parent else cfg
            where = f"{parent} ({cfg[parent.split('.')[0]].get('name', '')}) has" if parent else "top-level keys:"
            return f"unknown key {name!r}; {where} {', '.join(sorted(node.keys()))}"
        if name.startswith("optimizer.") or override.is_sweep_override() or isinstance(default, str):
            continue  # (a word's default, like `auto`, may give way to a number)
        declared = setting(name)  # (null, a word like auto, or a list of any length, where its declaration says)
        value = override.value()
        if declared and ((declared.null and value is None) or value in declared.words):
            continue
        if declared and declared.any_length and isinstance(value, list):
            continue
        default = OmegaConf.to_container(default) if OmegaConf.is_config(default) else default
        if type(default) is int and type(override.value()) is float:
            continue  # (fractional epochs are fine; keys that must be whole say so when the trial is prepared)
        expected = "a mapping" if isinstance(default, dict) and not isinstance(override.value(), dict) else None
        expected = expected or type_problem(override.value(), default)
        if expected:
            return f"{name} must be {expected} (its default is {default!r}), got {override.value()!r}"
    return None


def check_single_run(argv: list[str]) -> str | None:
    """Without -m, a list of values (`optimizer=adamw,sgd`, `seed=0,1`) is a mistake Hydra explains in many lines."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    if {"-m", "--multirun"} & set(argv):
        return None
    for arg in (a for a in argv if "=" in a and not a.startswith("hydra")):
        try:
            (override,) = OverridesParser.create().parse_overrides([arg])
        except HydraException as e:
            return f"{arg}: {str(e).strip().splitlines()[0]}"
        if override.is_sweep_override():
            return f"{arg} lists several values: add -m (--multirun) to run one trial for each"
    return None


def cluster_kind(argv: list[str]) -> str:
    """`local` or `slurm`: the `cluster.kind` of the preset named on the command line (default: local)."""
    names = [a.partition("=")[2] for a in argv if a.startswith("cluster=")]
    if not names:
        return "local"
    return yaml.safe_load((CONF_DIR / "cluster" / f"{names[-1]}.yaml").read_text())["cluster"]["kind"]


def check_cluster(argv: list[str]) -> str | None:
    if cluster_kind(argv) == "slurm" and shutil.which("sbatch") is None:
        return "a SLURM cluster preset needs `sbatch`, which this machine lacks (run where SLURM is, or cluster=local)"
    return None
