"""Fair to every optimizer. Every default carries its cited source beside it, in the optimizer's YAML (the one place
it is declared). And on the quadratic (trials of under a second), a dense
1-D scan of each optimizer's learning rate across its search range, the other hyperparameters at their defaults,
finds the best value strictly inside the range: a range whose edge is best would cut the optimum off, handicapping
that optimizer. (DoG and Prodigy search no lr; Mechanic's lr only multiplies its s_init, which it searches.)"""

from __future__ import annotations

import copy
import json
import math
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from analysis.fairness import fairness_table, verdict
from optimizers import NAMES, YAMLS, get_spec
from suite import declared_hyperparameters, rng
from suite.trainer import evaluate, train_step
from suite.trial import build_optimization
from tests.conftest import ROOT, compose_config
from workloads import build_workload

CPU = torch.device("cpu")
NO_AUTOCAST = torch.autocast("cpu", enabled=False)
POINTS = 9  # log-spaced over the range, both edges included
WITH_LR = sorted(n for n in NAMES if "lr" in (compose_config([f"optimizer={n}"]).optimizer.get("search_space") or {}))


def final_loss(cfg: dict, workload, lr: float) -> float:
    """The held-out loss after the quadratic's whole budget at this lr (inf when the run diverges, as the
    harness's divergence rule says: non-finite, or above divergence_factor x the first loss)."""
    cfg = copy.deepcopy(cfg)
    cfg["optimizer"]["lr"] = lr
    rng.seed_all(cfg["seed"])
    model = workload.build_model(cfg["seed"])
    opt = build_optimization(get_spec(cfg["optimizer"]["name"]), cfg, model, workload)
    opt.train_mode()
    first = None
    for step in range(workload.steps):
        opt.set_lr(step)
        loss = train_step(
            model, opt, workload, workload.train_batch(step, cfg["data_seed"]), NO_AUTOCAST, cfg["grad_clip"]
        )[0].item()
        first = loss if first is None else first
        if not math.isfinite(loss) or loss > cfg["divergence_factor"] * first:
            return math.inf
    return evaluate(model, opt, workload, CPU, NO_AUTOCAST)["loss"]


@pytest.mark.slow
@pytest.mark.parametrize("name", WITH_LR)
def test_the_best_learning_rate_on_the_quadratic_lies_strictly_inside_the_search_range(name):
    cfg = OmegaConf.to_container(compose_config([f"optimizer={name}", "workload=quadratic"]), resolve=True)
    workload = build_workload(cfg["workload"])
    dim = cfg["optimizer"]["search_space"]["lr"]
    assert dim["scale"] == "log"
    lrs = np.geomspace(dim["low"], dim["high"], POINTS)
    losses = [final_loss(cfg, workload, float(lr)) for lr in lrs]
    best = int(np.argmin(losses))
    scan = ", ".join(f"{lr:.3g}: {loss:.2f}" for lr, loss in zip(lrs, losses, strict=True))
    assert 0 < best < POINTS - 1, f"{name}: best lr at the range's edge ({scan})"


def test_every_default_has_its_source_beside_it():
    """Each hyperparameter of each optimizer YAML carries its source as a comment on its line (the authors' paper,
    code or package, or why the suite departs from them): what a reviewer audits, in the one place it is declared."""
    unsourced = []
    for name in NAMES:
        text = (YAMLS / f"{name}.yaml").read_text()
        lines = dict(re.findall(r"^([A-Za-z_]\w*):(.*)$", text, flags=re.M))
        for key in declared_hyperparameters(name):
            comment = lines.get(key, "").partition("#")[2].strip()
            if not comment:
                unsourced.append(f"{name}.{key}")
    assert unsourced == []


def write_study(root, optimizer, protocol, configurations, best, space, workload="quadratic"):
    directory = root / workload / optimizer / f"study-{protocol}"
    directory.mkdir(parents=True)
    study = {
        "optimizer": optimizer,
        "workload": workload,
        "protocol": protocol,
        "settings": {"search_space": space, "grid_points": 4},
        "budget": {"configurations": configurations, "trials": configurations + 2, "seeds": 3, "cut": []},
        "trials": [],
        "best": {"config": best},
        "status": "completed",
    }
    (directory / "study.json").write_text(json.dumps(study))


def test_fairness_report_shows_budgets_spent_and_flags_unequal_budgets_and_tuned_values_at_range_edges(tmp_path):
    lr = {"low": 1e-4, "high": 1e-1, "scale": "log"}
    wd = {"low": 0.0, "high": 0.2, "scale": "linear"}
    write_study(tmp_path, "adamw", "random", 16, {"lr": 0.095, "weight_decay": 0.1}, {"lr": lr, "weight_decay": wd})
    write_study(tmp_path, "lion", "random", 16, {"lr": 1e-3, "weight_decay": 0.005}, {"lr": lr, "weight_decay": wd})
    write_study(tmp_path, "sgd", "grid", 16, {"lr": 1e-2, "weight_decay": 0.2}, {"lr": lr, "weight_decay": wd})
    write_study(tmp_path, "muon", "grid", 64, {"lr": 1e-3}, {"lr": lr})
    table = fairness_table(tmp_path).set_index("optimizer")
    assert table.loc["adamw", "at_edge"] == "lr (high)"  # 0.095 lies in the top 5% of [1e-4, 1e-1] (log)
    assert table.loc["lion", "at_edge"] == "weight_decay (low)"
    assert table.loc["sgd", "at_edge"] == "weight_decay (high)"  # the grid's last value
    assert table.loc["muon", "at_edge"] == "" and table.loc["muon", "dimensions"] == 1
    said = "\n".join(verdict(fairness_table(tmp_path)))
    assert "quadratic [random]: every optimizer searched 16 configurations" in said
    assert "UNEQUAL search budgets (muon 64, sgd 16)" in said
    assert "quadratic/adamw [random]: tuned lr (high) at its range's edge" in said
    proc = subprocess.run(
        [sys.executable, "-m", "analysis", "fairness", str(tmp_path), "--out", str(tmp_path / "f.csv")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0 and "UNEQUAL" in proc.stdout and (tmp_path / "f.csv").exists(), proc.stderr
    empty = subprocess.run(
        [sys.executable, "-m", "analysis", "fairness", str(tmp_path / "none")], cwd=ROOT, capture_output=True, text=True
    )
    assert empty.returncode == 2 and len(empty.stderr.strip().splitlines()) == 1
