"""The data-parallel path on CPU: two gloo processes each take half of every batch and end with the metrics of a
single process that takes all of it; rank 0 alone writes the record."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

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


@pytest.mark.slow
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


def matrix_steps(ranked: bool) -> dict:
    """Muon and Scion over five matrices of mixed shapes, three steps on seeded gradients; with `ranked`, also the
    items this rank computed in `across_ranks`."""
    import torch

    from optimizers import newton_schulz
    from optimizers.muon import Muon
    from optimizers.scion import Scion

    torch.manual_seed(0)
    shapes = [(16, 8), (8, 16), (12, 12), (4, 20), (20, 4)]
    results = {}
    for name in ("muon", "scion"):
        params = [torch.nn.Parameter(torch.randn(*s)) for s in shapes]
        if name == "muon":
            opt = Muon(params, lr=0.02, weight_decay=0.01, momentum=0.95, ns_steps=5, adjust_lr_fn="original")
        else:
            groups = [{"params": params, "lmo": "spectral", "scale": 50.0}]
            opt = Scion(groups, lr=0.01, momentum=0.1, constrained=False, ns_steps=5)
        for step in range(3):
            gen = torch.Generator().manual_seed(step)
            for p in params:
                p.grad = torch.randn(p.shape, generator=gen)
            opt.step()
        results[name] = [p.detach().clone() for p in params]
    if ranked:
        computed = []
        newton_schulz.across_ranks([torch.zeros(2, 2)] * 5, lambda x: computed.append(len(computed)) or x)
        results["computed"] = len(computed)
    return results


def matrix_worker(out: str) -> None:
    """One rank of the distributed matrix-optimizer test (run by test_distributed_muon_and_scion_...)."""
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{os.environ['MASTER_PORT']}", rank=rank, world_size=world
    )
    results = matrix_steps(ranked=True)
    torch.save(results, f"{out}.{dist.get_rank()}")
    dist.barrier()  # no rank tears down while the other still talks to it (a gloo abort at exit otherwise)
    dist.destroy_process_group()


@pytest.mark.slow
def test_distributed_muon_and_scion_split_the_work_and_equal_one_process(tmp_path):
    import torch

    port, out = free_port(), tmp_path / "params"
    code = f"from tests.test_distributed import matrix_worker; matrix_worker({str(out)!r})"
    procs = []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": "2", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}
        pipe = subprocess.PIPE
        procs.append(subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=pipe, stderr=pipe))
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = matrix_steps(ranked=False)
    finally:
        torch.set_num_threads(threads)
    ranks = [torch.load(f"{out}.{rank}") for rank in range(2)]
    assert [r["computed"] for r in ranks] == [3, 2]  # items 0, 2, 4 on rank 0; 1, 3 on rank 1
    for name in ("muon", "scion"):
        for rank in ranks:
            for mine, reference in zip(rank[name], single[name], strict=True):
                assert torch.equal(mine, reference), name
