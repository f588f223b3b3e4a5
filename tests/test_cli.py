"""End to end through the CLI: a trial of lm_tiny writes a complete, reproducible record."""

from __future__ import annotations

import pytest
import yaml

from suite import schema
from tests.conftest import FAST, cli, only_run_dir, read_metrics, read_summary

SUMMARY_KEYS = {  # what suite/schema.py requires of every record, and what a finished trial adds
    *schema.SUMMARY_KEYS,
    *schema.WORKLOAD_FACTS,
    "train_time_s",
    "tokens_per_s",
    "peak_mem_bytes",
    "params_total",
    "flops_per_token",
    "target",
}
PROVENANCE_KEYS = {
    "git_commit",
    "packages",
    "torch_version",
    "device",
    "data_fingerprint",
    "hostname",
    "pid",
    "start_time",
    "end_time",
}


def test_trial_writes_complete_record(results):
    proc = cli(["optimizer=adamw", "workload=lm_tiny", f"results_dir={results}", *FAST])
    assert proc.returncode == 0, proc.stderr
    run = only_run_dir(results)
    assert run.relative_to(results).parts[:2] == ("lm_tiny", "adamw")
    assert run.name == "seed0"
    assert str(run) in proc.stdout  # the summary screen names the record
    # ... says what a missed target means and what to run next
    assert "target 2.0482: missed" in proc.stdout and "expected to miss it" in proc.stdout
    assert f"python -m suite.sweep optimizer=adamw workload=lm_tiny tuning=random results_dir={results}" in proc.stdout

    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["optimizer"]["name"] == "adamw" and config["workload"]["tokens"] == 8192

    rows = read_metrics(run)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    for row in rows:
        assert {"step", "tokens", "train_time_s", "train_loss", "lr"} <= row.keys()
        assert row["tokens"] == row["step"] * 16 * 128
    assert [("eval/loss" in r) for r in rows] == [False, True, False, True]
    assert all(b["train_time_s"] >= a["train_time_s"] for a, b in zip(rows, rows[1:], strict=False))

    summary = read_summary(run)
    assert SUMMARY_KEYS <= summary.keys()
    assert PROVENANCE_KEYS <= summary["provenance"].keys()
    assert summary["status"] == "completed"
    assert summary["default_hyperparameters"] is True  # the YAML's defaults, untouched
    assert summary["metric"] == {"name": "loss", "lower_is_better": True}
    assert summary["steps"] == 4 and summary["tokens"] == 8192
    assert summary["final"]["loss"] == rows[-1]["eval/loss"]
    assert summary["best"]["loss"] == min(r["eval/loss"] for r in rows if "eval/loss" in r)
    assert summary["params_non_embedding"] == 1_066_368
    assert summary["params_total"] == 1_066_368 + 2 * 256 * 128
    assert summary["provenance"]["packages"]["torch"]
    assert summary["data_fingerprint"].startswith("stdlib_text:")
    assert summary["tokens_per_s"] > 0 and summary["peak_mem_bytes"] > 0


@pytest.mark.slow
def test_same_seed_is_bitwise_identical_and_seeds_differ(tmp_path):
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        proc = cli([f"results_dir={tmp_path / name}", f"seed={seed}", *FAST])
        assert proc.returncode == 0, proc.stderr
        rows = read_metrics(only_run_dir(tmp_path / name))
        runs[name] = [{k: v for k, v in r.items() if k != "train_time_s"} for r in rows]
    assert runs["a"] == runs["b"]
    assert runs["a"] != runs["c"]


@pytest.mark.slow
def test_finished_trial_is_not_run_again(results):
    assert cli([f"results_dir={results}", *FAST]).returncode == 0
    run = only_run_dir(results)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    proc = cli([f"results_dir={results}", *FAST])
    assert proc.returncode == 0
    assert "already completed" in proc.stdout
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


@pytest.mark.slow
def test_bf16_autocast_runs_on_cpu(results):
    proc = cli([f"results_dir={results}", "precision=bf16", *FAST, "workload.tokens=4096"])
    assert proc.returncode == 0, proc.stderr
    summary = read_summary(only_run_dir(results))
    assert summary["status"] == "completed" and summary["final"]["loss"] < 5.6  # below ln(256) at init
