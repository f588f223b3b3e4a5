"""Command-line checks made before Hydra starts, so that bad input gets one line instead of a traceback."""

from __future__ import annotations

import shutil

import yaml

from suite import CONF_DIR

GROUPS = ("optimizer", "workload", "schedule", "workload/data", "tuning", "cluster", "subset")


def check_group_choices(argv: list[str]) -> str | None:
    """Hydra's own message for an unknown group option spans many lines; say it in one, with the valid names."""
    for arg in argv:
        group, sep, value = arg.partition("=")
        if not sep or group not in GROUPS or value.endswith(".yaml"):  # (a subset may be given by its path)
            continue
        valid = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
        for name in value.split(","):  # a multirun sweep lists several
            if name not in valid:
                return f"unknown {group} {name!r}; valid: {', '.join(valid)}"
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
