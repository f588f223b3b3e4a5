"""Entry point: `python -m suite optimizer=<name> workload=<name> [schedule=<name>] [key=value ...]`."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from suite.trial import CONF_DIR, run

GROUPS = ("optimizer", "workload", "schedule", "workload/data")


def check_group_choices(argv: list[str]) -> str | None:
    """Hydra's own message for an unknown group option spans many lines; say it in one, with the valid names."""
    for arg in argv:
        group, sep, value = arg.partition("=")
        if not sep or group not in GROUPS:
            continue
        valid = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
        for name in value.split(","):  # a multirun sweep lists several
            if name not in valid:
                return f"unknown {group} {name!r}; valid: {', '.join(valid)}"
    return None


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> None:
    code = run(cfg)
    if code:
        sys.exit(code)


if __name__ == "__main__":
    problem = check_group_choices(sys.argv[1:])
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    main()
