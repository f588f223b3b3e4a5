"""Every config file in conf/ composes, and every group option passes its own validation."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from optimizers import get_spec, schedules
from optimizers.hparams import hyperparameters, validate, validate_search_space
from suite import CONF_DIR, declared_hyperparameters
from suite.protocols import PLANNERS
from suite.throughput import peak_flops
from tests.conftest import compose_config
from workloads import FAMILIES
from workloads.lm.workload import lm_shape, token_budget

GPT2_VOCAB = 50257  # the shards' tokenizer (workloads/lm/fetch.py)
H100_BF16_FLOPS = peak_flops("NVIDIA H100 80GB HBM3", "cuda", None)

GROUPS = ["optimizer", "workload", "schedule", "workload/data", "tuning", "cluster"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize("group, option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes_and_validates(group, option):
    source = ["schedule.from=results/lm_tiny/adamw/0123456789/seed0"] if option == "refined" else []  # (its run)
    cfg = OmegaConf.to_container(compose_config([f"{group}={option}", *source]), resolve=True)
    name = cfg["optimizer"]["name"]
    get_spec(name)
    validate(name, hyperparameters(cfg["optimizer"]), declared_hyperparameters(name))
    validate_search_space(name, cfg["optimizer"]["search_space"], declared_hyperparameters(name))
    schedules.validate(cfg["schedule"])
    assert cfg["workload"]["family"] in FAMILIES
    assert cfg["workload"]["family"] == "quadratic" or cfg["workload"]["data"]["source"]
    assert cfg["tuning"]["protocol"] in (*PLANNERS, "pbt")
    assert cfg["cluster"]["kind"] in ("local", "slurm")
    if group == "tuning":
        assert cfg["tuning"]["protocol"] == cfg["tuning"]["name"] == option
    if group == "cluster":
        assert cfg["cluster"]["kind"] == ("slurm" if option.startswith("slurm") else "local")
    if group == "workload":
        assert cfg["workload"]["name"] == option
    if group == "workload/data":
        assert cfg["workload"]["data"]["source"] == option


@pytest.mark.parametrize("preset", [o for o in options("cluster") if o.startswith("slurm_") and o != "slurm_test"])
def test_each_gpu_scale_preset_sets_its_own_limits_with_one_rank_per_gpu(preset):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"cluster={preset}"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    written = OmegaConf.load(CONF_DIR / "cluster" / f"{preset}.yaml").hydra.launcher
    assert {key: launcher[key] for key in written} == dict(written)  # the preset's values win over slurm.yaml's
    assert launcher.tasks_per_node == launcher.gpus_per_node >= 1
    assert launcher.max_num_timeout > 0 and launcher.signal_delay_s > 0  # a trial past its limit is requeued
    if preset.startswith("slurm_lm_"):  # sized from the budget: the whole run fits in the limit at 40% MFU on H100s
        workload = OmegaConf.to_container(compose_config([f"workload={preset[6:]}"]).workload, resolve=True)
        shape = lm_shape(workload, GPT2_VOCAB)
        flops = token_budget(workload, shape.non_embedding_params) * shape.flops_per_token
        hours = flops / (0.4 * H100_BF16_FLOPS * launcher.gpus_per_node) / 3600
        assert hours < launcher.timeout_min / 60 < 4 * hours + 3  # (room for slower optimizers, not a week)
