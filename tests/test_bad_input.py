"""Bad input: a one-line error, exit code 2, before any training, and nothing in the results directory touched."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import FAST, cli
from workloads.lm.data import write_shard

CASES = {
    "unknown optimizer": (["optimizer=adamz"], "valid: adam_mini, adamw, ademamix"),
    "unknown workload": (["workload=lm_huge"], "lm_tiny"),
    "unknown schedule": (["schedule=cosin"], "valid: constant, cosine, linear, power, rex, wsd"),
    "unknown data source": (["workload/data=fineweb"], "shards, stdlib_text, synthetic"),
    "negative lr": (["optimizer.lr=-0.001"], "lr must be positive"),
    "zero lr": (["optimizer.lr=0"], "lr must be positive"),
    "beta outside [0,1)": (["optimizer.betas=[0.9,1.0]"], "beta"),
    "zero token budget": (["workload.tokens=0"], "must be positive"),
    "budget below one step": (["workload.tokens=100"], "less than one step"),
    "negative chinchilla": (["workload.chinchilla=-1"], "chinchilla must be positive"),
    "batch not a multiple of micro-batch": (["workload.micro_batch_size=5"], "not a multiple"),
    "missing data.path": (["workload/data=shards"], "workload.data.path is not set"),
    "bad precision": (["precision=fp8"], "precision must be one of"),
    "bad schedule fraction": (["schedule.warmup=1.5"], "warmup"),
}


def assert_clean_refusal(proc, expected: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and expected in lines[0], lines[0]
    assert "Traceback" not in proc.stdout + proc.stderr


@pytest.fixture
def populated(tmp_path):
    """A results directory with an earlier user file in it, which no refusal may touch."""
    results = tmp_path / "results"
    results.mkdir()
    (results / "earlier.txt").write_text("keep me")
    return results


def assert_untouched(results) -> None:
    assert sorted(p.name for p in results.rglob("*")) == ["earlier.txt"]
    assert (results / "earlier.txt").read_text() == "keep me"


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_refused_in_one_line(case, populated):
    overrides, expected = CASES[case]
    proc = cli([*FAST, f"results_dir={populated}", *overrides])
    assert_clean_refusal(proc, expected)
    assert_untouched(populated)


@pytest.mark.parametrize(
    "header, expected",
    [
        ((123, 1, 4096), "bad magic number 123"),
        ((20240520, 2, 4096), "unsupported version 2"),
        ((20240520, 1, 9999), "truncated"),
    ],
)
def test_malformed_shard_is_refused_by_name(tmp_path, populated, header, expected):
    write_shard(tmp_path / "data_train_000001.bin", np.arange(4096) % 50257)
    bad = tmp_path / "data_val_000000.bin"
    write_shard(bad, np.arange(4096) % 50257)
    raw = bytearray(bad.read_bytes())
    raw[:12] = np.array(header, dtype="<i4").tobytes()
    bad.write_bytes(bytes(raw))
    proc = cli([*FAST, f"results_dir={populated}", "workload/data=shards", f"workload.data.path={tmp_path}/data_*.bin"])
    assert_clean_refusal(proc, expected)
    assert str(bad) in proc.stderr
    assert_untouched(populated)


def test_unwritable_results_directory(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    proc = cli([*FAST, f"results_dir={blocker / 'results'}"])
    assert_clean_refusal(proc, "is not writable")
    assert blocker.read_text() == "not a directory"
