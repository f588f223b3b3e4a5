"""The data-parallel path on CPU: two gloo processes each take half of every batch and end with the metrics of a
single process that takes all of it; rank 0 alone writes the record."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import numpy as np

from tests.conftest import ROOT, cli, only_run_dir, read_metrics, read_summary

TRIAL = [
    "progress=false",
    "workload.n_layer=2",
    "workload.seq_len=64",
    "workload.batch_size=8",
    "workload.micro_batch_size=4",
    "workload.tokens=4096",
    "workload.eval_tokens=512",
    "eval_every=4",
    "log_every=1",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_ranks_match_one_process(tmp_path):
    port = free_port()
    procs = []
    for rank in range(2):
        env = {
            **os.environ,
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": "2",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "OMP_NUM_THREADS": "1",
        }
        args = [sys.executable, "-m", "suite", *TRIAL, "device=cpu", f"results_dir={tmp_path / 'ddp'}"]
        pipe = subprocess.PIPE
        procs.append(subprocess.Popen(args, cwd=ROOT, env=env, stdout=pipe, stderr=pipe, text=True))
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    single = cli([*TRIAL, f"results_dir={tmp_path / 'one'}"])
    assert single.returncode == 0, single.stderr

    ddp_run, one_run = only_run_dir(tmp_path / "ddp"), only_run_dir(tmp_path / "one")  # one record, by rank 0
    ddp, one = read_metrics(ddp_run), read_metrics(one_run)
    assert [r["step"] for r in ddp] == [r["step"] for r in one] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert np.allclose([r["train_loss"] for r in ddp], [r["train_loss"] for r in one], rtol=1e-4)
    assert np.allclose(
        [r["eval/loss"] for r in ddp if "eval/loss" in r], [r["eval/loss"] for r in one if "eval/loss" in r], rtol=1e-4
    )
    assert read_summary(ddp_run)["status"] == "completed"
