"""Entry point: `python -m suite optimizer=<name> workload=<name> [schedule=<name>] [key=value ...]`, or a Hydra
multirun (`-m`) over lists of values, locally or on SLURM (`cluster=<preset>`)."""

from __future__ import annotations

import sys

import hydra
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from suite import CONF_DIR
from suite.checks import check_cluster, check_group_choices, check_overrides, check_parses, check_single_run
from suite.settings import refuse


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> None:
    from suite.trial import run  # (torch: imported once the command line has passed its checks)

    code = run(cfg)
    # In a multirun the other jobs go on; each trial's outcome is in its record.
    if code and HydraConfig.get().mode == RunMode.RUN:
        sys.exit(code)


def refusal(argv: list[str]) -> str | None:
    """Why the command line is refused before anything runs (one line), or None."""
    return (
        check_parses(argv)
        or check_group_choices(argv)
        or check_single_run(argv)
        or check_overrides(argv)
        or (check_cluster(argv) if {"-m", "--multirun"} & set(argv) else None)
    )


def command(argv: list[str]) -> int:
    """`python -m suite ARGV` as a function: the refusals, then Hydra's run; returns the exit code (the bad-input
    tests call it in process)."""
    problem = refusal(argv)
    if problem:
        return refuse(problem)
    sys.argv = ["suite", *argv]
    GlobalHydra.instance().clear()
    try:
        main()
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 1
    return 0


if __name__ == "__main__":
    sys.exit(command(sys.argv[1:]))
