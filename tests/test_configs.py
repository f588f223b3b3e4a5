"""Every config file in conf/ composes, and every group option passes its own validation."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from optimizers import get_spec, schedules
from optimizers.hparams import hyperparameters, validate, validate_search_space
from suite import CONF_DIR, declared_hyperparameters
from tests.conftest import compose_config
from workloads import FAMILIES

GROUPS = ["optimizer", "workload", "schedule", "workload/data", "tuning", "cluster"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize("group, option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes_and_validates(group, option):
    cfg = OmegaConf.to_container(compose_config([f"{group}={option}"]), resolve=True)
    name = cfg["optimizer"]["name"]
    get_spec(name)
    validate(name, hyperparameters(cfg["optimizer"]), declared_hyperparameters(name))
    validate_search_space(name, cfg["optimizer"]["search_space"], declared_hyperparameters(name))
    schedules.validate(cfg["schedule"])
    assert cfg["workload"]["family"] in FAMILIES
    assert cfg["workload"]["family"] == "quadratic" or cfg["workload"]["data"]["source"]
    assert cfg["tuning"]["protocol"] in ("default", "random", "grid", "coordinate_descent")
    assert cfg["cluster"]["kind"] in ("local", "slurm")
    if group == "tuning":
        assert cfg["tuning"]["protocol"] == cfg["tuning"]["name"] == option
    if group == "cluster":
        assert cfg["cluster"]["kind"] == ("slurm" if option.startswith("slurm") else "local")
    if group == "workload":
        assert cfg["workload"]["name"] == option
    if group == "workload/data":
        assert cfg["workload"]["data"]["source"] == option
