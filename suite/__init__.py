"""The harness: Hydra entry point, one trial (build, train, evaluate, record), checkpoints, DDP and sweeps.
Imports workloads and optimizers."""

from pathlib import Path

import yaml

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def declared_hyperparameters(optimizer: str) -> dict:
    """The hyperparameters conf/optimizer/<optimizer>.yaml declares, with their defaults: the one declaration of
    what the optimizer accepts (its name and search space left out). `optimizer` is a known name (get_spec)."""
    from optimizers.hparams import hyperparameters

    return hyperparameters(yaml.safe_load((CONF_DIR / "optimizer" / f"{optimizer}.yaml").read_text()))
