"""docs/architecture.md's recipes, followed as a contributor would: an optimizer is one module plus one YAML, and it
then runs through a trial, a sweep and the report with nothing else touched; a workload of an existing family is one
YAML."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT, cli, compose_config

pytestmark = pytest.mark.slow

TOY_MODULE = '''"""A toy optimizer for tests/test_contributing.py: plain SGD without momentum."""

from __future__ import annotations

import torch

from optimizers.spec import OptimizerSpec, decay_groups


def build(params, roles, hp, ctx) -> torch.optim.Optimizer:
    return torch.optim.SGD(decay_groups(params, roles, hp), lr=hp["lr"])


SPEC = OptimizerSpec(name="toy_sgd", build=build)
'''
TOY_YAML = """# A toy optimizer for tests/test_contributing.py: plain SGD (torch.optim.SGD, momentum 0).
name: toy_sgd
lr: 0.05                # chosen for the quadratic workload (tests only)
weight_decay: 0.0       # none (tests only)
no_decay_roles: [embedding, norm, bias]  # this suite: embeddings, norms and biases are not decayed, for every optimizer
search_space:
  lr: {low: 1.0e-3, high: 1.0, scale: log}
"""
QUICK = ["workload=quadratic", "workload.steps=20", "eval_every=10", "log_every=5", "progress=false"]


@pytest.fixture
def toy_optimizer():
    """The two files of a new optimizer, in the tree as a contributor adds them (removed afterwards)."""
    files = {ROOT / "optimizers" / "toy_sgd.py": TOY_MODULE, ROOT / "conf" / "optimizer" / "toy_sgd.yaml": TOY_YAML}
    assert not any(path.exists() for path in files)
    try:
        for path, text in files.items():
            path.write_text(text)
        yield "toy_sgd"
    finally:
        for path in files:
            path.unlink(missing_ok=True)


def run(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=ROOT, timeout=600)


def test_an_optimizer_is_one_module_and_one_yaml_through_a_trial_a_sweep_and_the_report(toy_optimizer, tmp_path):
    results = tmp_path / "results"
    trial = cli([f"optimizer={toy_optimizer}", *QUICK, f"results_dir={results}"])
    assert trial.returncode == 0, trial.stderr[-2000:]
    assert "quadratic / toy_sgd / seed 0  ->  completed" in trial.stdout
    sweep = run(
        "suite.sweep",
        f"optimizer={toy_optimizer},adamw",
        *QUICK,
        "tuning=random",
        "tuning.trials=2",
        "tuning.seeds=2",
        f"results_dir={results}",
    )
    assert sweep.returncode == 0, sweep.stderr[-2000:]
    assert (results / "quadratic" / toy_optimizer / "study-random" / "study.json").is_file()
    report = run("analysis", "report", str(results), "--out", str(tmp_path / "report"), "--time", "tokens")
    assert report.returncode == 0, report.stderr[-2000:]
    assert toy_optimizer in (tmp_path / "report" / "leaderboard.md").read_text()
    assert run("suite", "optimizer=toy_sgd", "optimizer.momentum=0.9").returncode == 2  # (only its YAML's keys)


def test_a_workload_of_an_existing_family_is_one_yaml(tmp_path):
    path = ROOT / "conf" / "workload" / "quadratic_toy.yaml"
    assert not path.exists()
    try:
        text = (ROOT / "conf" / "workload" / "quadratic.yaml").read_text()
        path.write_text(text.replace("\nname: quadratic\n", "\nname: quadratic_toy\n"))
        assert compose_config(["workload=quadratic_toy"]).workload.name == "quadratic_toy"
        trial = cli(["workload=quadratic_toy", "workload.steps=20", "eval_every=10", f"results_dir={tmp_path}"])
        assert trial.returncode == 0, trial.stderr[-2000:]
        assert (tmp_path / "quadratic_toy" / "adamw").is_dir()
    finally:
        path.unlink(missing_ok=True)
