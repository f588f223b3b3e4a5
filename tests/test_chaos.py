"""Chaos: a local sweep whose trial processes and driver are killed (SIGKILL) at random times, rerun until it
finishes, ends with the same study as an undisturbed sweep: the same records (bitwise, wall clock aside), the same
best configuration and the same study.json, with no record lost or duplicated."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, read_metrics, without_time

pytestmark = pytest.mark.slow  # (pytest -m "not slow" leaves this file out)

# 12 quadratic trials of 1,500 steps (about a second each), checkpointed every 100, on 2 local slots
SWEEP = [
    "workload=quadratic",
    "workload.steps=1500",
    "eval_every=500",
    "log_every=50",
    "checkpoint_every=100",
    "optimizer=adamw",
    "tuning=random",
    "tuning.trials=12",
    "cluster.slots=2",
]


def sweep(results: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "suite.sweep", *SWEEP, f"results_dir={results}"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def the_study(results: Path) -> dict:
    """Everything the study concluded, less what differs between any two runs (times, the command's timestamps)."""
    study = json.loads((results / "quadratic" / "adamw" / "study-random" / "study.json").read_text())
    records = {}
    for summary in sorted(results.rglob("summary.json")):
        if ".replaced" in summary.parts:
            continue
        s = json.loads(summary.read_text())
        records[str(summary.parent.relative_to(results))] = (
            s["status"],
            s["final"],
            s["best"],
            s["steps"],
            without_time(read_metrics(summary.parent)),
        )
    return {
        "best": study["best"],
        "trials": [{k: t[k] for k in ("trial", "config", "seed", "status", "score")} for t in study["trials"]],
        "status": study["status"],
        "budget": study["budget"],
        "records": records,
    }


def test_killed_trials_and_driver_leave_the_study_an_undisturbed_sweep_reaches(tmp_path):
    calm = tmp_path / "calm"
    began = time.monotonic()
    undisturbed = sweep(calm)
    assert undisturbed.wait(timeout=600) == 0, undisturbed.stderr.read()
    duration = time.monotonic() - began

    chaos, rng, attempts, kills = tmp_path / "chaos", random.Random(0), 0, 0
    while True:
        attempts += 1
        assert attempts <= 15, "the sweep never finished"
        proc = sweep(chaos)
        deadline = time.monotonic() + rng.uniform(0.1, 0.6) * duration
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if proc.poll() is None and attempts <= 6:
            slots = children(proc.pid)
            if slots and rng.random() < 0.5:
                os.kill(rng.choice(slots), signal.SIGKILL)  # a slot process, and the trial running in it
                kills += 1
                deadline = time.monotonic() + rng.uniform(0.05, 0.2) * duration
                while proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.1)
            if proc.poll() is None:
                proc.kill()  # the driver (its slot processes die with it)
                kills += 1
        code = proc.wait(timeout=600)
        stderr = proc.stderr.read()
        assert "Traceback" not in stderr, stderr
        if code == 0:
            break
    assert kills >= 2  # the chaos happened
    assert not list(chaos.rglob("checkpoint.pt"))  # every trial finished
    assert the_study(chaos) == the_study(calm)
