"""Every config file in conf/ composes, and every group option passes its own validation."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from optimizers import get_spec, hyperparameters, schedules
from suite import CONF_DIR
from tests.conftest import compose_config
from workloads import FAMILIES

GROUPS = ["optimizer", "workload", "schedule", "workload/data", "tuning", "cluster"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize("group, option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes_and_validates(group, option):
    cfg = OmegaConf.to_container(compose_config([f"{group}={option}"]), resolve=True)
    spec = get_spec(cfg["optimizer"]["name"])
    spec.validate(hyperparameters(cfg["optimizer"]))
    spec.validate_search_space(cfg["optimizer"]["search_space"])
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


def test_unknown_optimizer_hyperparameter_is_named():
    with pytest.raises(ValueError, match="optimizer adamw: unknown hyperparameter 'momentum'"):
        get_spec("adamw").validate({"lr": 1e-3, "momentum": 0.9})
