"""A local sweep slot's worker: the sweep starts one per slot and keeps it for the whole sweep, so torch, Hydra and
the optimizers are imported once per slot rather than once per round (and while the driver plans its first
round). It reads one job per line on stdin (a JSON list: the job's runs, each the overrides of one `python -m
suite`, and the log file), composes each run's config and runs it as `python -m suite` would (suite.trial.run:
every trial in its own run directory, seeding every random generator itself), and answers each job with its exit
status on stdout; the jobs' own output goes to their logs. (Composing directly, not through Hydra's multirun, spares
the four compositions Hydra makes for each multirun; the driver has made the command line's checks.)"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from suite import CONF_DIR
from suite.trial import run as run_trial


def run(overrides: list[str]) -> int:
    """One run, as `python -m suite OVERRIDES` runs it."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides)
    return run_trial(cfg)


def run_job(runs: list[list[str]], log: Path) -> int:
    """One job's runs, stdout and stderr (file descriptors 1 and 2, so child libraries' output too) in its log;
    the first non-zero exit status, or 0 (each run's outcome is in its record)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as out:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
        try:
            codes = []
            for overrides in runs:
                print(f"$ python -m suite {shlex.join(overrides)}  # slot worker {os.getpid()}", flush=True)
                codes.append(run(overrides))
            return next((code for code in codes if code), 0)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def serve() -> None:
    """Warm up before the first job comes, while the driver plans (torch and the trial's modules are imported with
    this module); answer jobs until stdin closes; then leave at once (an idle worker holds no state, and the
    interpreter's teardown with torch loaded takes most of a second the driver would wait for)."""
    torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)  # (a process's first optimizer imports torch._dynamo)

    answers = os.fdopen(os.dup(1), "w")  # the answer channel; fd 1 itself is the jobs' (their logs)
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)
    for line in sys.stdin:
        runs, log = json.loads(line)
        answers.write(json.dumps(run_job(runs, Path(log))) + "\n")
        answers.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    serve()
