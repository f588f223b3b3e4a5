"""The contract between the packages, each fact from its one owner: which config keys define a trial
(suite/layout.py), what an optimizer accepts (its YAML, checked by optimizers/hparams.py), and names that become
paths."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from optimizers import NAMES, get_spec
from optimizers.hparams import hyperparameters, validate, validate_search_space
from suite import CONF_DIR, declared_hyperparameters
from suite.layout import RUN_KEYS, SETTING_KEYS, TRIAL_KEYS, check_name, resume_differences, trial_id, unclassified
from suite.trial import build_optimization
from tests.conftest import compose_config
from tests.test_optimizers import SMALL_LM
from workloads import build_workload

GROUPS = ["optimizer", "workload", "schedule", "workload/data", "tuning", "cluster"]


def resolved(overrides):
    return OmegaConf.to_container(compose_config(overrides), resolve=True)


@pytest.mark.parametrize("group, option", [(g, p.stem) for g in GROUPS for p in sorted((CONF_DIR / g).glob("*.yaml"))])
def test_every_key_of_every_composed_config_is_classified(group, option):
    assert unclassified(resolved([f"{group}={option}"])) == []


def test_a_new_top_level_key_is_unclassified_until_the_contract_names_it():
    cfg = resolved([])
    assert unclassified({**cfg, "epochs": 5, "zeta": None}) == ["epochs", "zeta"]
    assert unclassified({k: v for k, v in cfg.items() if k != "seed"}) == []  # (absent is not unclassified)


# a changed value of each key (a different optimizer's settings stand in for the nested groups)
CHANGES = {
    "optimizer": "optimizer.lr=0.002",
    "workload": "workload.tokens=4096",
    "schedule": "schedule=wsd",
    "grad_clip": "grad_clip=0",
    "precision": "precision=bf16",
    "compile": "compile=true",
    "data_seed": "data_seed=1",
    "divergence_factor": "divergence_factor=10",
    "eval_every": "eval_every=7",
    "log_every": "log_every=3",
    "seed": "seed=3",
    "results_dir": "results_dir=/elsewhere",
    "device": "device=cpu",
    "progress": "progress=false",
    "force": "force=true",
    "checkpoint_every": "checkpoint_every=5",
    "peak_flops": "peak_flops=1e15",
    "pause_at": "pause_at=0.5",
    "init_from": "init_from=0123456789/seed0@10",
    "tuning": "tuning=grid",
    "cluster": "cluster=slurm",
}


def test_the_trial_id_is_a_function_of_the_trial_keys_only():
    assert set(CHANGES) == {*TRIAL_KEYS, *RUN_KEYS, *SETTING_KEYS}
    base = resolved([])
    for key, change in CHANGES.items():
        changed = resolved([change])
        assert changed[key] != base[key], change
        assert (trial_id(changed) != trial_id(base)) == (key in TRIAL_KEYS), change
        assert (resume_differences(base, changed) == [key]) == (key not in SETTING_KEYS), change
    searched = resolved(["optimizer.search_space.lr.high=0.1"])  # the search space belongs to tuning
    assert trial_id(searched) == trial_id(base)


@pytest.mark.parametrize("name", ["../../x", "a/b", ".hidden", "", "x y", 3])
def test_names_that_would_escape_the_results_directory_are_refused(name):
    with pytest.raises(ValueError, match="cannot be a directory name"):
        check_name("optimizer", name)


class Recording(Mapping):
    """A hyperparameter mapping that notes which keys the builder reads."""

    def __init__(self, values: dict):
        self.values, self.read = values, set()

    def __getitem__(self, key):
        self.read.add(key)
        return self.values[key]

    def __iter__(self):
        return iter(self.values)

    def __len__(self):
        return len(self.values)


@pytest.mark.parametrize("name", sorted(NAMES))
def test_the_builder_reads_exactly_the_hyperparameters_its_yaml_declares(name):
    cfg = resolved([f"optimizer={name}", *SMALL_LM, "workload.tokens=1024"])
    workload = build_workload(cfg["workload"])
    model = workload.build_model(0)
    hp = Recording(hyperparameters(cfg["optimizer"]))
    spec = get_spec(name)
    spec_build = spec.build
    object.__setattr__(spec, "build", lambda params, roles, _, ctx: spec_build(params, roles, hp, ctx))
    try:
        build_optimization(spec, cfg, model, workload)
    finally:
        object.__setattr__(spec, "build", spec_build)
    assert hp.read == set(declared_hyperparameters(name)), "a declared key no builder reads, or the reverse"


@pytest.mark.parametrize("name", sorted(NAMES))
def test_hyperparameter_values_are_checked_against_the_yaml_and_the_rules(name):
    declared = declared_hyperparameters(name)
    validate(name, declared, declared)  # the defaults pass their own rules
    validate_search_space(name, resolved([f"optimizer={name}"])["optimizer"]["search_space"], declared)
    cases = [
        ({"lrr": 1.0}, "unknown hyperparameter 'lrr'"),
        ({"lr": -1.0}, "lr must be positive"),
        ({"lr": "abc"}, "lr must be a finite number, got 'abc'"),
        ({"lr": True}, "lr must be a finite number"),
        ({"lr": float("inf")}, "lr must be a finite number"),
    ]
    for key in [k for k in declared if "betas" in k]:
        cases += [({key: [0.9] * (len(declared[key]) - 1) + [1.0]}, f"every value of {key} must be in \\[0, 1\\)")]
        cases += [({key: 0.9}, f"{key} must be a list of {len(declared[key])} values")]
    for key in [k for k in declared if "weight_decay" in k]:
        cases += [({key: [1]}, f"{key} must be a finite number"), ({key: -0.1}, f"{key} must be non-negative")]
    for key in [k for k, v in declared.items() if isinstance(v, bool)]:
        cases += [({key: "yes"}, f"{key} must be true or false")]
    if "no_decay_roles" in declared:
        cases += [({"no_decay_roles": ["embedding", "bais"]}, "every value of no_decay_roles must be parameter roles")]
    for change, message in cases:
        with pytest.raises(ValueError, match=f"^optimizer {name}: {message}"):
            validate(name, {**declared, **change}, declared)


def test_choices_and_search_space_mistakes():
    muon = declared_hyperparameters("muon")
    validate("muon", {**muon, "adjust_lr_fn": "match_rms_adamw"}, muon)
    with pytest.raises(ValueError, match="optimizer muon: adjust_lr_fn must be one of original, match_rms_adamw"):
        validate("muon", {**muon, "adjust_lr_fn": "rms"}, muon)
    adamw = declared_hyperparameters("adamw")
    for space, message in [
        ({"lr": {"low": 1e-2, "high": 1e-3, "scale": "log"}}, "low 0.01 must be below high"),
        ({"weight_decay": {"low": 0.0, "high": 0.1, "scale": "log"}}, "log scale needs positive"),
        ({"momentum": {"low": 0.8, "high": 0.9, "scale": "linear"}}, "not a hyperparameter of adamw"),
        ({"lr": {"low": 1e-4, "high": 1e-2, "scale": "cubic"}}, "scale one of log, linear"),
        ({"betas.2": {"low": 0.9, "high": 0.99, "scale": "linear"}}, "betas has no element 2"),
        ({"lr": {"low": "a", "high": 1e-2, "scale": "log"}}, "low and high must be numbers"),
        ({"lr": [1e-4, 1e-2]}, "must be \\{low, high, scale\\}"),
    ]:
        with pytest.raises(ValueError, match=message):
            validate_search_space("adamw", space, adamw)


def test_trial_ids_are_those_of_the_committed_fixture():
    """Every trial id stays what it was when tests/fixtures/trial_ids.json was written (a refactor that moved one
    would orphan every record on disk and every committed leaderboard's trial)."""
    fixture = json.loads((Path(__file__).parent / "fixtures" / "trial_ids.json").read_text())
    assert len(fixture) >= 40
    moved = [(c["overrides"], c["trial_id"], trial_id(resolved(c["overrides"]))) for c in fixture]
    assert [m for m in moved if m[1] != m[2]] == []
