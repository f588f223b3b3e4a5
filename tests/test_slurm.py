"""Sweeps on a real single-node SLURM cluster (tests/slurm/up.sh; .ci/run brings it up where it can): an array of
trials completes, and a trial requeued mid-run with `scontrol requeue` resumes from its checkpoint and ends with
the metrics of an uninterrupted run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, only_run_dir, read_metrics, read_summary, without_time
from tests.test_distributed import TRIAL as DDP_TRIAL
from tests.test_transfer import planted_study


def slurm_up() -> bool:
    if not shutil.which("sinfo") or not shutil.which("sbatch"):
        return False
    proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    return proc.returncode == 0 and any(s in proc.stdout for s in ("idle", "mixed", "allocated"))


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not slurm_up(), reason="no SLURM cluster here (as root, `bash tests/slurm/up.sh` brings one up)"
    ),
]
ENV = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}


def sweep(*args: str, wait: bool = True):
    argv = [sys.executable, "-m", "suite.sweep", "cluster=slurm_test", *args]
    if wait:
        return subprocess.run(argv, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=900)
    return subprocess.Popen(argv, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def run_locally(trial: list[str], results) -> list[dict]:
    """The same trial without SLURM, for reference: its metrics rows."""
    argv = [sys.executable, "-m", "suite", *trial, "progress=false", f"results_dir={results}"]
    proc = subprocess.run(argv, cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return read_metrics(only_run_dir(results))


def test_an_array_of_four_trials_completes_on_slurm(tmp_path):
    args = ["workload=quadratic", "workload.steps=20", "eval_every=10", "optimizer=sgd", "tuning=random"]
    proc = sweep(*args, "tuning.trials=4", f"results_dir={tmp_path}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    study = json.loads((tmp_path / "quadratic" / "sgd" / "study-random" / "study.json").read_text())
    assert study["status"] == "completed" and [t["status"] for t in study["trials"]] == ["completed"] * 4
    logs = list((tmp_path / ".multirun").rglob("*_log.out"))  # submitit's per-task logs: jobs ran under SLURM
    assert len({p.name.split("_")[0] for p in logs}) == 1 and len(logs) == 4  # one array job of 4 tasks


TRIAL = [
    "workload.n_layer=2",
    "workload.seq_len=64",
    "workload.batch_size=8",
    "workload.micro_batch_size=8",
    "workload.tokens=30720",
    "workload.eval_tokens=512",
    "eval_every=20",
    "log_every=1",
    "checkpoint_every=5",
]


def release_requeued(job: str) -> None:
    """Slurm holds a requeued job back for about two minutes (reason BeginTime); let it start now (what is tested is
    the resume, not the wait). Where the hold never shows, the job starts when Slurm lets it."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        reason = subprocess.run(["squeue", "-h", "-j", job, "-o", "%r"], capture_output=True, text=True).stdout
        if reason.strip() == "BeginTime":
            subprocess.run(["scontrol", "update", f"job={job}", "StartTime=now"], check=True)
            return
        time.sleep(0.5)


def test_a_requeued_trial_resumes_from_its_checkpoint(tmp_path):
    running = sweep(*TRIAL, "tuning=default", f"results_dir={tmp_path / 'slurm'}", wait=False)
    deadline = time.monotonic() + 600

    def rows() -> int:
        found = list((tmp_path / "slurm").rglob("metrics.jsonl"))
        return len(found[0].read_text().splitlines()) if found else 0

    while rows() < 12:
        assert time.monotonic() < deadline and running.poll() is None, running.stdout.read() if running.poll() else ""
        time.sleep(0.2)
    job = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout.split()[0]
    subprocess.run(["scontrol", "requeue", job], check=True)
    release_requeued(job)
    out, _ = running.communicate(timeout=900)
    assert running.returncode == 0, out

    run = only_run_dir(tmp_path / "slurm")
    summary = read_summary(run)
    assert summary["status"] == "completed" and summary["resumed_from_steps"], summary
    assert without_time(read_metrics(run)) == without_time(run_locally(TRIAL, tmp_path / "local"))


def test_ddp_across_the_tasks_of_one_slurm_job(tmp_path):
    trial = [a for a in DDP_TRIAL if a != "progress=false"]
    proc = sweep(*trial, "tuning=default", "hydra.launcher.tasks_per_node=2", f"results_dir={tmp_path / 'slurm'}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    logs = sorted((tmp_path / "slurm" / ".multirun").rglob("*_log.out"))
    assert len(logs) == 2 and "global_rank=1(2)" in logs[1].read_text()  # two ranks, from submitit's environment
    ddp, one = read_metrics(only_run_dir(tmp_path / "slurm")), run_locally(trial, tmp_path / "one")
    assert np.allclose([r["train_loss"] for r in ddp], [r["train_loss"] for r in one], rtol=1e-4)


def test_early_stopping_rungs_run_as_slurm_arrays(tmp_path):
    quad = ["optimizer=adamw", "workload=quadratic", "workload.steps=40", "eval_every=2", "log_every=2"]
    rungs = sweep(
        *quad,
        "tuning=random",
        "tuning.trials=4",
        "tuning.early_stop=halving",
        "tuning.rungs=[0.5]",
        f"results_dir={tmp_path}",
    )
    assert rungs.returncode == 0, rungs.stdout + rungs.stderr
    study = json.loads((tmp_path / "quadratic" / "adamw" / "study-random" / "study.json").read_text())
    assert sorted(t["status"] for t in study["trials"]) == ["completed"] * 2 + ["stopped_early"] * 2
    # (a PBT population's rounds are launched the same way: one array per round, trials from their trial files)


def test_a_transfer_study_and_a_step_law_study_run_as_slurm_arrays(tmp_path):
    """The predicted configuration and its checks as one array (fitted on planted studies at two scales), and the
    Step Law's configuration with its batch size on its seeds."""
    rng = np.random.default_rng(0)
    fitted = [planted_study(tmp_path / "fit", w, n, 2560, 0.3 * n**-0.2, 0.0, rng) for w, n in (("a", 100), ("b", 400))]
    quad = ["workload=quadratic_1600", "workload.steps=20", "eval_every=10", "log_every=5", f"results_dir={tmp_path}"]
    space = ["~optimizer.search_space", "+optimizer.search_space={lr:{low:0.001,high:1.0,scale:log}}"]
    done = sweep(*quad, *space, "tuning=transfer", f"tuning.from=[{fitted[0]},{fitted[1]}]")
    assert done.returncode == 0, done.stdout + done.stderr
    study = json.loads((tmp_path / "quadratic_1600" / "adamw" / "study-transfer" / "study.json").read_text())
    assert study["transfer"]["config"]["lr"] == pytest.approx(0.3 * 1600**-0.2, rel=1e-5)
    assert [t["status"] for t in study["trials"]] == ["completed"] * 3
    lm = ["workload=lm_tiny", "workload.tokens=32768", "workload.eval_tokens=1024", "eval_every=64"]
    law = sweep(*lm, "tuning=step_law", "tuning.seeds=2", f"results_dir={tmp_path}")
    assert law.returncode == 0, law.stdout + law.stderr
    study = json.loads((tmp_path / "lm_tiny" / "adamw" / "study-step_law-32768tokens" / "study.json").read_text())
    assert [t["status"] for t in study["trials"]] == ["completed"] * 2
    assert {read_summary(Path(t["run_dir"]))["budget"]["steps"] for t in study["trials"]} == {128}  # batch 2
