"""Population Based Training (`tuning=pbt`): exploit and explore as pure functions, a member started from another's
checkpoint with its own hyperparameters, and the protocol end to end on the quadratic: the learning rate moves
toward the tuned optimum, the lineage is recorded, compute equals random search's, and a killed and rerun sweep
ends with the same population."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis.__main__ import main as analysis_main
from optimizers.schedules import lr_multiplier
from suite.pbt import boundaries, check, exploit, perturb
from suite.search_space import Dim
from tests.conftest import ROOT, cli, read_summary
from tests.test_bad_input import record_of
from tests.test_sweep import sweep, wait_for

LR = Dim("lr", 1e-4, 1.0, log=True)
BETA = Dim("betas.1", 0.9, 0.999, log=False)
QUAD = ["optimizer=adamw", "workload=quadratic", "workload.steps=40", "eval_every=2", "log_every=2"]


def test_boundaries_and_exploit_and_explore():
    assert boundaries(0.25) == [0.25, 0.5, 0.75] and boundaries(0.3) == [0.3, 0.6, 0.9]
    rng = np.random.default_rng(0)
    copied = exploit([3.0, 1.0, math.inf, 2.0, 5.0, 0.5, 4.0, 6.0], rng)
    assert set(copied) == {2, 7} and set(copied.values()) <= {5, 1}  # bottom quarter copies the top quarter
    moved = [perturb({"lr": 0.01, "betas.1": 0.99}, [LR, BETA], rng, resample=0.0) for _ in range(50)]
    assert {m["lr"] for m in moved} == {0.008, 0.0125}
    assert {m["betas.1"] for m in moved} == {0.9, 0.999}  # 0.792 and 1.2375, kept in the range
    fresh = [perturb({"lr": 0.01, "betas.1": 0.99}, [LR, BETA], rng, resample=1.0)["lr"] for _ in range(50)]
    assert len(set(fresh)) == 50 and all(1e-4 <= v <= 1 for v in fresh)


def test_pbt_refuses_several_seeds_and_an_empty_search_space():
    with pytest.raises(ValueError, match="tuning.seeds must be 1"):
        check({"population": 8, "interval": 0.25, "resample": 0.25, "seeds": 3}, [LR])
    with pytest.raises(ValueError, match="nothing to perturb"):
        check({"population": 8, "interval": 0.25, "resample": 0.25, "seeds": 1}, [])
    check({"population": 8, "interval": 0.25, "resample": 0.25, "seeds": 1}, [LR])


@pytest.mark.slow
def test_a_member_starts_from_its_parents_state_with_its_own_hyperparameters(tmp_path):
    assert cli([*QUAD, f"results_dir={tmp_path}", "pause_at=0.5", "progress=false"]).returncode == 0
    parent = next(tmp_path.rglob("checkpoint.pt")).parent
    origin = f"{parent.parent.name}/seed0@20"
    child_args = [*QUAD, "optimizer.lr=0.05", f"init_from={origin}", "progress=false"]
    missing = cli([*child_args, f"results_dir={tmp_path}"])
    assert missing.returncode == 2 and "parent.pt is missing" in missing.stderr
    child = record_of(tmp_path, child_args)  # (nothing written by the refusal: the sweep makes the directory)
    child.mkdir(parents=True)
    (child / "parent.pt").write_bytes((parent / "checkpoint.pt").read_bytes())
    done = cli([*child_args, f"results_dir={tmp_path}"])
    assert done.returncode == 0, done.stderr
    record = read_summary(child)
    assert record["status"] == "completed" and record["parent"]["init_from"] == origin
    rows = [json.loads(line) for line in (child / "metrics.jsonl").read_text().splitlines()]
    parent_rows = [json.loads(line) for line in (parent / "metrics.jsonl").read_text().splitlines()]
    assert rows[: len(parent_rows)] == parent_rows and rows[-1]["step"] == 40
    cosine = {"name": "cosine", "warmup": 0.05, "min_lr_ratio": 0.1}  # its own peak lr on the trial's schedule
    assert all(math.isclose(r["lr"], 0.05 * lr_multiplier(r["step"] - 1, 40, cosine)) for r in rows if r["step"] > 20)
    wrong = cli([*QUAD, f"results_dir={tmp_path}", "optimizer.lr=0.06", f"init_from={parent.parent.name}/seed0@30"])
    assert wrong.returncode == 2


def population(results) -> dict:
    return json.loads((results / "quadratic" / "adamw" / "study-pbt" / "population.json").read_text())


@pytest.mark.slow
def test_pbt_moves_the_learning_rate_toward_the_optimum_records_lineage_and_survives_a_kill(tmp_path):
    args = [*QUAD, "tuning=pbt", "tuning.population=4", "cluster.slots=2"]
    whole = sweep(*args, f"results_dir={tmp_path / 'whole'}")
    assert whole.returncode == 0, whole.stdout + whole.stderr
    study = json.loads((tmp_path / "whole" / "quadratic" / "adamw" / "study-pbt" / "study.json").read_text())
    assert study["budget"]["search_steps"] == study["budget"]["search_steps_full"] == 4 * 40  # random search's 4
    members = study["population"]["members"]
    replaced = study["population"]["replaced"]  # paused trials no member runs any more: stopped early, say why
    records = [read_summary(Path(t["run_dir"])) for t in study["trials"] if t["trial"] in replaced]
    assert replaced and all(r["status"] == "stopped_early" and r["early_stop"]["rule"] == "pbt" for r in records)
    lineage = study["best"]["lineage"]
    assert lineage[0]["step"] == 0 and [e["generation"] for e in lineage] == sorted(e["generation"] for e in lineage)
    assert all(e["from"].endswith(f"@{e['step']}") for e in lineage[1:]) and study["best"]["in_sample"]
    assert analysis_main(["report", str(tmp_path / "whole"), "--out", str(tmp_path / "report")]) == 0
    paths = (tmp_path / "report" / "tables" / "pbt_paths.csv").read_text().splitlines()
    assert "Population Based Training: the winning paths" in (tmp_path / "report" / "leaderboard.md").read_text()
    assert len(paths) == 1 + len(lineage)
    # the tuned optimum: random search over the same space at the same budget
    tuned = sweep(*QUAD, "tuning=random", "tuning.trials=6", "cluster.slots=2", f"results_dir={tmp_path / 'rs'}")
    assert tuned.returncode == 0
    optimum = math.log(json.loads(next((tmp_path / "rs").rglob("study.json")).read_text())["best"]["config"]["lr"])
    first = [math.log(m["lineage"][0]["config"]["lr"]) for m in members]
    last = [math.log(m["config"]["lr"]) for m in members]
    assert abs(np.median(last) - optimum) < abs(np.median(first) - optimum)
    # killed after its first comparison and run again: the same population, member for member
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "suite.sweep", *args, f"results_dir={killed}"], cwd=ROOT)
    wait_for(lambda: (killed / "quadratic/adamw/study-pbt/population.json").exists(), timeout=300)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert population(killed)["generation"] < 3
    again = sweep(*args, f"results_dir={killed}")
    assert again.returncode == 0, again.stdout + again.stderr
    assert population(killed) == population(tmp_path / "whole")
    best = json.loads((killed / "quadratic/adamw/study-pbt/study.json").read_text())["best"]
    assert best["median"] == study["best"]["median"]
