"""suite/settings.py: each config group's declaration refuses what it should, accepts the shipped presets, and
agrees with the code that uses the values."""

from __future__ import annotations

import math

import pytest
import yaml

from suite import CONF_DIR, early_stop
from suite.settings import (
    PRECISIONS,
    TRIAL,
    TUNING,
    WORKLOADS,
    ConfigError,
    check_config,
    refuse,
    setting,
)
from tests.conftest import compose_config


def composed(*overrides: str) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(compose_config(list(overrides)), resolve=True)


@pytest.mark.parametrize(
    "group, values, message",
    [
        ("tuning", {"early_stop": "often"}, "tuning.early_stop must be one of none, curve, halving"),
        ("tuning", {"rungs": [0.5, 0.25]}, "tuning.rungs must be increasing fractions"),
        ("tuning", {"rungs": [1.0]}, "increasing fractions"),
        ("tuning", {"rungs": []}, "increasing fractions"),
        ("tuning", {"eta": 1}, "tuning.eta must be an integer >= 2"),
        ("tuning", {"population": 3}, "tuning.population must be an integer >= 4"),
        ("tuning", {"interval": 1.0}, "tuning.interval must be a fraction"),
        ("tuning", {"resample": 2}, "tuning.resample must be a probability"),
        ("tuning", {"seeds": True}, "tuning.seeds must be an integer >= 1"),
        ("tuning", {"max_trials": 0}, "tuning.max_trials must be an integer >= 1 or null"),
        ("tuning", {"check": 7}, "tuning.check must be an integer in [0, 6]"),
        ("tuning", {"sampler": "grid"}, "tuning.sampler must be one of halton, sobol"),
        ("cluster", {"slots": 0}, "cluster.slots must be >= 1 or auto"),
        ("workload", {"batch_size": 0}, "workload.batch_size must be a positive integer"),
        ("workload", {"tokens": math.inf}, "workload.tokens must be a positive number (finite)"),
        ("workload", {"micro_batch_size": "max"}, "workload.micro_batch_size must be a positive integer or auto"),
        ("workload", {"activation_checkpointing": 1}, "activation_checkpointing must be true or false"),
        ("", {"seed": -1}, "seed must be a non-negative integer"),
        ("", {"grad_clip": float("nan")}, "grad_clip must be a finite number >= 0"),
        ("", {"pause_at": 0}, "pause_at must be a fraction of the budget in (0, 1) or null"),
        ("", {"init_from": "seed0@3"}, "init_from must be"),
        ("", {"precision": "fp8"}, "precision must be one of auto, fp32, bf16"),
    ],
)
def test_each_declared_setting_refuses_a_bad_value_in_one_line(group, values, message):
    cfg = composed("tuning=random", "workload=lm_tiny")
    (cfg[group] if group else cfg).update(values)
    with pytest.raises(ConfigError) as refused:
        check_config(cfg)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_every_shipped_preset_passes_its_declaration():
    """A declaration stricter than the presets would refuse the suite's own configurations."""
    for tuning in sorted(p.stem for p in (CONF_DIR / "tuning").glob("*.yaml")):
        check_config(composed(f"tuning={tuning}"))
    for workload in sorted(p.stem for p in (CONF_DIR / "workload").glob("*.yaml")):
        cfg = composed(f"workload={workload}")
        assert cfg["workload"]["family"] in WORKLOADS, workload
        check_config(cfg)
    check_config(composed("cluster=slurm", "pause_at=0.5", "init_from=population-pbt@0", "tuning.seeds=2"))


def test_the_declaration_names_keys_that_exist_and_the_words_the_code_uses():
    from suite.trial import AUTOCAST
    from workloads import FAMILIES

    top = yaml.safe_load((CONF_DIR / "config.yaml").read_text())
    assert set(TRIAL) <= set(top), set(TRIAL) - set(top)
    tuning_keys = set().union(*(yaml.safe_load(p.read_text()) for p in (CONF_DIR / "tuning").glob("*.yaml")))
    assert set(TUNING) <= tuning_keys, set(TUNING) - tuning_keys
    assert set(WORKLOADS) == set(FAMILIES) and set(PRECISIONS) == set(AUTOCAST)
    assert TUNING["early_stop"].says.endswith(", ".join(early_stop.RULES))
    assert setting("tuning.max_trials").null and "auto" in setting("workload.micro_batch_size").words
    assert setting("tuning.rungs").any_length and setting("workload.nonexistent") is None


def test_a_refusal_is_one_line_on_stderr_with_exit_code_2(capsys):
    assert refuse(ValueError("first line\nsecond line")) == 2
    assert capsys.readouterr().err == "error: first line\n"
