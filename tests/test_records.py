"""Record plumbing: the run-directory layout, atomic JSON, the timed clock."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from suite.layout import run_dir, trial_id
from suite.trainer import Clock
from tests.conftest import compose_config
from workloads.files import atomic_write_json


def resolved(overrides):
    return OmegaConf.to_container(compose_config(overrides), resolve=True)


def test_run_dir_layout():
    cfg = resolved(["results_dir=/r", "seed=4"])
    assert str(run_dir(cfg)) == f"/r/lm_tiny/adamw/{trial_id(cfg)}/seed4"


def test_atomic_write_leaves_old_or_new_and_no_temp_files(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    atomic_write_json(path, {"status": "running", "x": float("nan")})
    assert json.loads(path.read_text()) == {"status": "running", "x": None}

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", crash)
    with pytest.raises(OSError):
        atomic_write_json(path, {"status": "completed"})
    assert json.loads(path.read_text())["status"] == "running"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_clock_excludes_paused_time():
    import torch

    now = [100.0]
    clock = Clock(torch.device("cpu"), total=2.0, now=lambda: now[0])  # (a resumed trial's 2 s so far)
    clock.start()
    now[0] += 0.5
    clock.pause()
    now[0] += 30.0  # evaluation, off the clock
    assert clock.elapsed() == 2.5
    clock.start()
    now[0] += 0.25
    assert clock.elapsed() == 2.75


def test_rng_capture_restores_every_generator_through_weights_only_load():
    import io
    import random

    import numpy as np
    import torch

    from suite import rng

    rng.seed_all(3)
    blob = io.BytesIO()
    torch.save(rng.capture(), blob)
    first = (random.random(), np.random.random(), torch.rand(1).item())
    rng.restore(torch.load(io.BytesIO(blob.getvalue()), weights_only=True))
    assert (random.random(), np.random.random(), torch.rand(1).item()) == first
