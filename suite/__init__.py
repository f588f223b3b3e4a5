"""The harness: Hydra entry point, one trial (build, train, evaluate, record), checkpoints, DDP and sweeps.
Imports workloads and optimizers."""

from pathlib import Path

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
