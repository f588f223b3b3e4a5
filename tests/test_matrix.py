"""The whole matrix: every optimizer on every workload family trains a few steps from the command line with finite
losses, and its record names the version of every package the optimizer comes from. One Hydra multirun of all
optimizers per workload (one process, so torch is imported five times, not 90), on shapes small enough for the
whole product to take a few minutes on two cores."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from optimizers import NAMES, get_spec
from tests.conftest import ROOT, read_metrics
from tests.test_workloads import write_cifar

pytestmark = pytest.mark.slow  # (pytest -m "not slow" leaves this file out)

SMALL_VISION = [
    "workload.tokens=16",
    "workload.batch_size=8",
    "workload.micro_batch_size=8",
    "workload.eval_batch_size=8",
]
FAMILIES = {  # a workload of each family, with overrides that make a trial a few steps
    "quadratic": ["workload.steps=4"],
    "cnn_digits": ["workload.tokens=128", "workload.batch_size=32", "workload.micro_batch_size=32"],
    "lm_tiny": [
        "workload.n_layer=2",
        "workload.tokens=2048",
        "workload.batch_size=4",
        "workload.micro_batch_size=4",
        "workload.seq_len=64",
        "workload.eval_tokens=512",
    ],
    "resnet18_w16_cifar10": [*SMALL_VISION, "workload.bn_recompute_batches=1"],
    "vit_tiny_cifar10": [*SMALL_VISION, "workload.model.depth=2"],
}


@pytest.mark.parametrize("workload", sorted(FAMILIES))
def test_every_optimizer_trains_on_every_workload_family(workload, tmp_path):
    data = [f"workload.data.path={write_cifar(tmp_path / 'cifar', per_file=8)}"] if "cifar" in workload else []
    results = tmp_path / "r"
    argv = ["-m", f"optimizer={','.join(sorted(NAMES))}", f"workload={workload}", *FAMILIES[workload], *data]
    argv += ["eval_every=2", "log_every=1", "progress=false", f"results_dir={results}"]
    proc = subprocess.run([sys.executable, "-m", "suite", *argv], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summaries = {p.parent: json.loads(p.read_text()) for p in results.rglob("summary.json")}
    by_optimizer = {s["optimizer"]: (d, s) for d, s in summaries.items()}
    assert sorted(by_optimizer) == sorted(NAMES)
    for name, (directory, summary) in by_optimizer.items():
        assert summary["status"] == "completed", (name, summary["error"] or summary["divergence"])
        losses = [row["train_loss"] for row in read_metrics(directory)]
        assert len(losses) >= 2 and all(math.isfinite(v) for v in losses), name
        assert all(math.isfinite(v) for v in summary["final"].values()), name
        for package in get_spec(name).packages:
            assert summary["provenance"]["packages"][package], package  # every optimizer package's version
