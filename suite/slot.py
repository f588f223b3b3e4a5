"""A local sweep slot's worker: the sweep starts one per slot and keeps it for the whole sweep, so torch, Hydra and
the optimizers are imported once per slot rather than once per round (and while the driver plans its first
round). It runs job after job, each an ordinary
Hydra multirun of `python -m suite` run in this process (every trial still in its own run directory, seeding
every random generator itself), reading one job per line on stdin (a JSON list: the command-line arguments and
the log file) and answering each with its exit status on stdout; the jobs' own output goes to their logs."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

from suite.__main__ import command


def run_job(argv: list[str], log: Path) -> int:
    """One job with stdout and stderr (file descriptors 1 and 2, so child libraries' output too) in its log."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as out:
        out.write(f"$ python -m suite {shlex.join(argv)}  # slot worker {os.getpid()}\n")
        out.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
        try:
            return command(argv, check=False)  # (the driver made the same checks on the same arguments)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def serve() -> None:
    """Import what a trial needs (torch above all) before the first job comes, while the driver plans; answer jobs
    until stdin closes; then leave at once (an idle worker holds no state, and the interpreter's teardown with torch
    loaded takes most of a second the driver would wait for)."""
    import torch

    import suite.trial  # noqa: F401

    torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)  # (a process's first optimizer imports torch._dynamo)

    answers = os.fdopen(os.dup(1), "w")  # the answer channel; fd 1 itself is the jobs' (their logs)
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)
    for line in sys.stdin:
        argv, log = json.loads(line)
        answers.write(json.dumps(run_job(argv, Path(log))) + "\n")
        answers.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    serve()
