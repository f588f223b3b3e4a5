"""Nothing lost: checkpoints every `checkpoint_every` steps and on SIGTERM/SIGUSR2; a trial killed at any point
(SIGKILL included) resumes on its next launch and ends with the same record as one never interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.conftest import ROOT, cli, only_run_dir, read_metrics, read_summary, without_time

# lm_tiny with 2 layers and short windows: 30 steps of about 0.1 s each
TRIAL = [
    "progress=false",
    "workload.n_layer=2",
    "workload.seq_len=64",
    "workload.batch_size=8",
    "workload.micro_batch_size=8",
    "workload.tokens=15360",
    "workload.eval_tokens=512",
    "eval_every=10",
    "log_every=1",
    "checkpoint_every=5",
]


def start(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    out = subprocess.DEVNULL
    return subprocess.Popen([sys.executable, "-m", "suite", *args], cwd=ROOT, env=env, stdout=out, stderr=out)


def wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def logged_steps(results) -> int:
    runs = list(results.rglob("metrics.jsonl"))
    return len(runs[0].read_text().splitlines()) if runs else 0


def reference(tmp_path, optimizer: str) -> list[dict]:
    proc = cli([*TRIAL, f"optimizer={optimizer}", f"results_dir={tmp_path / 'reference'}"])
    assert proc.returncode == 0, proc.stderr
    return read_metrics(only_run_dir(tmp_path / "reference"))


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["adamw", "sf_adamw"])
def test_sigkill_at_any_point_resumes_from_the_last_checkpoint_bitwise(tmp_path, optimizer):
    results = tmp_path / "killed"
    args = [*TRIAL, f"optimizer={optimizer}", f"results_dir={results}"]
    proc = start(args)
    wait_for(lambda: logged_steps(results) >= 12)  # past the checkpoints at steps 5 and 10
    proc.kill()
    proc.wait()
    run = only_run_dir(results)
    assert read_summary(run)["status"] == "running" and (run / "checkpoint.pt").is_file()
    json.loads((run / "summary.json").read_text())  # whole, not half-written

    again = cli(args)
    assert again.returncode == 0, again.stderr
    assert "resuming" in again.stdout
    summary = read_summary(run)
    assert summary["status"] == "completed" and summary["resumed_from_steps"][0] in (10, 15, 20, 25)
    assert not (run / "checkpoint.pt").exists()  # a finished trial keeps no checkpoint
    assert without_time(read_metrics(run)) == without_time(reference(tmp_path, optimizer))


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR2])
def test_preemption_signal_checkpoints_at_the_next_step_and_resumes(tmp_path, sig):
    results = tmp_path / "preempted"
    args = [*TRIAL, "checkpoint_every=0", f"results_dir={results}"]
    proc = start(args)
    wait_for(lambda: logged_steps(results) >= 3)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert proc.returncode == -sig  # re-raised to its default action after the checkpoint (submitit's would requeue)
    run = only_run_dir(results)
    saved = read_summary(run)
    assert saved["status"] == "running" and (run / "checkpoint.pt").is_file()

    again = cli(args)
    assert again.returncode == 0, again.stderr
    summary = read_summary(run)
    assert summary["status"] == "completed" and len(summary["resumed_from_steps"]) == 1
    expected = cli([*TRIAL, "checkpoint_every=0", f"results_dir={tmp_path / 'reference'}"])
    assert expected.returncode == 0
    assert without_time(read_metrics(run)) == without_time(read_metrics(only_run_dir(tmp_path / "reference")))


@pytest.mark.slow
def test_a_checkpoint_refuses_a_different_config_and_force_sets_the_old_record_aside(tmp_path):
    results = tmp_path / "r"
    proc = start([*TRIAL, f"results_dir={results}"])
    wait_for(lambda: logged_steps(results) >= 7)
    proc.kill()
    proc.wait()
    run = only_run_dir(results)
    state = torch.load(run / "checkpoint.pt", weights_only=True)  # a checkpoint of another trial, put in its place
    state["config"]["eval_every"] = 5
    torch.save(state, run / "checkpoint.pt")
    before = (run / "checkpoint.pt").read_bytes()
    changed = cli([*TRIAL, f"results_dir={results}"])
    assert changed.returncode == 2 and "differs: eval_every" in changed.stderr
    assert len(changed.stderr.strip().splitlines()) == 1
    assert (run / "checkpoint.pt").read_bytes() == before  # untouched by the refusal

    forced = cli([*TRIAL, "force=true", f"results_dir={results}"])
    assert forced.returncode == 0, forced.stderr
    assert read_summary(run)["status"] == "completed" and "resumed_from_steps" not in read_summary(run)
    kept = list((run.parent / ".replaced").iterdir())
    assert len(kept) == 1 and (kept[0] / "checkpoint.pt").is_file()  # the old record, moved aside, not deleted
    skipped = cli([*TRIAL, f"results_dir={results}"])
    assert "nothing to do" in skipped.stdout
