"""The harness: Hydra entry point, one trial (build, train, evaluate, record), checkpoints, DDP and sweeps.
Imports workloads and optimizers.

`analysis/` imports from the harness only the torch-free modules in SHARED (tests/test_schema.py enforces it)."""

from pathlib import Path

import yaml

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
SHARED = (  # the harness's modules that `analysis/` may import: the records and the fits both sides compute
    "suite.layout",  # trial ids and where records live
    "suite.records",  # atomic files, JSON lines
    "suite.schema",  # what the records hold, statuses, the search seed, the selection rule
    "suite.search_space",  # a search space's dimensions (where a tuned value lies in its range)
    "suite.curves",  # a run's recorded learning curve and schedule
    "suite.curve_law",  # the scaling law with learning-rate annealing (early stopping, analysis predict)
    "suite.transfer",  # the optimum-lr vertex and the power laws in N and D (tuning=transfer, analysis transfer)
    "suite.early_stop",  # the early-stopping rules' names (suite.settings declares tuning.early_stop with them)
    "suite.settings",  # what each config group accepts, and the one `error:` line of a refusal
)


def declared_hyperparameters(optimizer: str) -> dict:
    """The hyperparameters conf/optimizer/<optimizer>.yaml declares, with their defaults: the one declaration of
    what the optimizer accepts (its name and search space left out). `optimizer` is a known name (get_spec)."""
    from optimizers.hparams import hyperparameters

    return hyperparameters(yaml.safe_load((CONF_DIR / "optimizer" / f"{optimizer}.yaml").read_text()))
