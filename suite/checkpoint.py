"""Checkpoints of unfinished trials (written atomically, loaded with weights_only=True) and the preemption signals
that ask for one: SIGUSR2 (submitit's timeout/preemption signal) and SIGTERM (SLURM's preemption and
`scontrol requeue`)."""

from __future__ import annotations

import signal
from pathlib import Path

import torch

from workloads.files import atomic_write

SIGNALS = (signal.SIGUSR2, signal.SIGTERM)


def save(path: Path, state: dict) -> None:
    """torch.save, atomically: a kill leaves the old or the new checkpoint."""
    atomic_write(path, lambda f: torch.save(state, f))


def load(path: Path) -> dict | None:
    """The checkpoint at `path` (None when there is none); ValueError naming the file when it is damaged."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, weights_only=True)
    except Exception as e:  # truncated, not a torch file, or unpicklable: torch raises several kinds
        state = e
    if not isinstance(state, dict) or not {"config", "step", "model", "optimizer", "rng"} <= state.keys():
        raise ValueError(f"{path} is damaged or not a checkpoint of this suite; move it away, or force=true restarts")
    return state


class Preemption:
    """While active, SIGUSR2/SIGTERM only set a flag; the training loop checkpoints at the next step boundary and
    calls `hand_over`, which restores the previous handlers and re-raises the signal (submitit's handler then
    requeues the job) or, if that returns, exits with 128 + signal number."""

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> Preemption:
        for sig in SIGNALS:
            self._previous[sig] = signal.signal(sig, self._note)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _note(self, signum, frame) -> None:
        self.signum = signum

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def hand_over(self) -> None:
        signum = self.signum
        self.__exit__()
        signal.raise_signal(signum)
        raise SystemExit(128 + signum)
