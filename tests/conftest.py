"""Shared helpers: compose configs in-process, run the CLI in a subprocess, read run records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from suite import CONF_DIR

ROOT = Path(__file__).resolve().parent.parent
# Fetched datasets are looked up under $OPTBENCH_DATA: tests never see (or write to) the user's own cache.
os.environ["OPTBENCH_DATA"] = tempfile.mkdtemp(prefix="optbench-data-")

# lm_tiny for 4 steps of 16 x 128 tokens, a small held-out set, a row and an eval every 2 steps.
FAST = [
    "progress=false",
    "workload.tokens=8192",
    "workload.eval_tokens=1024",
    "eval_every=2",
    "log_every=1",
]


def compose_config(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def cli(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m suite ARGS` in a subprocess, as a user would run it."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    return subprocess.run(
        [sys.executable, "-m", "suite", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env
    )


def only_run_dir(results: Path) -> Path:
    """The single run directory under a results root."""
    dirs = [p.parent for p in results.rglob("summary.json")]
    assert len(dirs) == 1, dirs
    return dirs[0]


def read_metrics(directory: Path) -> list[dict]:
    return [json.loads(line) for line in (directory / "metrics.jsonl").read_text().splitlines()]


def without_time(rows: list[dict]) -> list[dict]:
    """Metrics rows less the wall clock, which no two runs share: what a resumed run must reproduce bitwise."""
    return [{k: v for k, v in r.items() if k != "train_time_s"} for r in rows]


def read_summary(directory: Path) -> dict:
    return json.loads((directory / "summary.json").read_text())


def summary_record(**fields) -> dict:
    """A run record with every key suite/schema.py requires (a completed quadratic run), `fields` set over it: for
    tests that write records by hand."""
    summary = {
        "status": "completed",
        "workload": "quadratic",
        "optimizer": "adamw",
        "seed": 0,
        "default_hyperparameters": True,
        "metric": {"name": "loss", "lower_is_better": True},
        "budget": {"steps": 10, "tokens": 10},
        "steps": 10,
        "tokens": 10,
        "final": {"loss": 1.5},
        "best": {"loss": 1.5},
        "time_to_target": None,
        "error": None,
        "provenance": {},
    }
    return {**summary, **fields}


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return tmp_path / "results"
