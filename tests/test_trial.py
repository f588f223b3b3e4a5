"""Trial behaviour in-process: divergence, failure, schedule in the log, time-to-target, micro-batches."""

from __future__ import annotations

import pytest

from optimizers.schedules import lr_multiplier
from suite.trial import run
from tests.conftest import FAST, cli, compose_config, only_run_dir, read_metrics, read_summary


def run_trial(results, *overrides) -> int:
    return run(compose_config([*FAST, f"results_dir={results}", *overrides]))


@pytest.mark.slow
def test_divergence_is_a_result_not_a_crash(results):
    proc = cli([*FAST, f"results_dir={results}", "optimizer.lr=1e4", "grad_clip=0", "workload.tokens=40960"])
    assert proc.returncode == 0, proc.stderr
    summary = read_summary(only_run_dir(results))
    assert summary["status"] == "diverged", summary
    assert summary["default_hyperparameters"] is False  # lr overridden
    assert summary["final"] is None and summary["steps"] < 20
    assert "first loss" in summary["divergence"]
    assert "diverged" in proc.stdout


def test_failure_mid_training_leaves_a_failed_record(tmp_path, results):
    import numpy as np

    from workloads.lm.data import write_shard

    for name in ("d_train_000001.bin", "d_val_000000.bin"):
        write_shard(tmp_path / name, np.arange(20000) % 1000)  # tokens up to 999 ...
    proc = cli(
        [
            *FAST,
            f"results_dir={results}",
            "workload/data=shards",
            f"workload.data.path={tmp_path}/d_*.bin",
            "workload.data.vocab_size=100",
        ]
    )  # ... but an embedding of 100 rows: indexing fails in training
    assert proc.returncode == 1
    summary = read_summary(only_run_dir(results))
    assert summary["status"] == "failed" and "IndexError" in summary["error"]
    assert "failed" in proc.stdout


def test_logged_lr_follows_the_schedule(results):
    assert run_trial(results, "schedule=wsd", "workload.tokens=20480", "schedule.warmup=0.2") == 0
    run = only_run_dir(results)
    rows = read_metrics(run)
    cfg = {"name": "wsd", "warmup": 0.2, "min_lr_ratio": 0.0, "decay_fraction": 0.2}
    assert [r["lr"] for r in rows] == pytest.approx([1e-3 * lr_multiplier(r["step"] - 1, 10, cfg) for r in rows])


@pytest.mark.parametrize("target, reached", [(100.0, True), (0.5, False)])
def test_time_to_target(results, target, reached):
    assert run_trial(results, f"workload.target={target}") == 0
    summary = read_summary(only_run_dir(results))
    assert summary["target"] == target
    if reached:
        rows = read_metrics(only_run_dir(results))
        first_eval = next(r for r in rows if "eval/loss" in r)
        assert summary["time_to_target"] == {
            "steps": first_eval["step"],
            "tokens": first_eval["tokens"],
            "seconds": first_eval["train_time_s"],
        }
    else:
        assert summary["time_to_target"] is None


def test_gradient_accumulation_matches_one_big_batch(tmp_path):
    losses = {}
    for micro in (16, 4):
        results = tmp_path / f"m{micro}"
        assert run_trial(results, f"workload.micro_batch_size={micro}") == 0
        losses[micro] = [r["train_loss"] for r in read_metrics(only_run_dir(results))]
    assert losses[16] == pytest.approx(losses[4], rel=1e-4)


def test_synthetic_source_reports_irreducible_loss(results):
    assert (
        run_trial(
            results, "workload/data=synthetic", "workload.data.train_tokens=50000", "workload.data.val_tokens=5000"
        )
        == 0
    )
    summary = read_summary(only_run_dir(results))
    assert 0 < summary["irreducible_loss"] < summary["final"]["loss"]
    assert summary["data_fingerprint"].startswith("synthetic:")


@pytest.mark.slow
def test_compiled_model_trains_like_the_eager_one(tmp_path):
    small = ["workload.n_layer=1", "workload.d_model=32", "workload.n_head=2", "workload.tokens=4096"]
    losses = {}
    for compiled in (False, True):
        results = tmp_path / str(compiled)
        assert run_trial(results, f"compile={str(compiled).lower()}", *small) == 0
        losses[compiled] = [r["train_loss"] for r in read_metrics(only_run_dir(results))]
    assert losses[True] == pytest.approx(losses[False], rel=1e-4)
