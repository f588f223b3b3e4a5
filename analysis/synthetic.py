"""Synthetic run records with known answers, in the format the suite writes (config.yaml, metrics.jsonl,
summary.json): for the analysis tests and `bench/analysis_scale.py`.

The baseline's final loss at D tokens is L(D) = ALPHA * (D / 1e8)^(-B) + BETA (shifted down by `shift` per scale);
an optimizer with speedup s reaches at D tokens what the baseline reaches at s * D. A learning rate away from the
optimizer's best costs LR_PENALTY * log10(lr / best_lr)^2, so the best configuration is known exactly."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from suite.layout import CONFIG, METRICS, SUMMARY, run_dir
from suite.schema import TrialStatus, save_summary

ALPHA, B, BETA = 2.0, 0.3, 3.0
LR_PENALTY = 0.1


@dataclass(frozen=True)
class Optimizer:
    name: str
    speedup: float
    best_lr: float
    default_lr: float


@dataclass(frozen=True)
class Scale:
    workload: str
    params: int
    shift: float  # larger models reach lower losses


def law(tokens: float, shift: float = 0.0) -> float:
    return ALPHA * (tokens / 1e8) ** (-B) + BETA - shift


def final_loss(opt: Optimizer, scale: Scale, tokens: float, lr: float) -> float:
    return law(opt.speedup * tokens, scale.shift) + LR_PENALTY * np.log10(lr / opt.best_lr) ** 2


def target(scale: Scale, budgets: list[float]) -> float:
    """The baseline's loss at the middle budget: some trials reach it, some do not."""
    return law(sorted(budgets)[len(budgets) // 2], scale.shift)


def write_trial(
    root: Path,
    opt: Optimizer,
    scale: Scale,
    tokens: float,
    lr: float,
    seed: int,
    rows: int,
    goal: float,
    noise: float = 0.0,
    provenance: dict | None = None,
) -> Path:
    """One completed trial whose eval loss falls to final_loss (+ seeded noise) over `rows` logged steps."""
    rng = np.random.default_rng([seed, int(tokens), int(lr * 1e9), len(opt.name)])
    final = final_loss(opt, scale, tokens, lr) + noise * rng.standard_normal()
    eval_every = max(rows // 10, 1)
    config = {
        "optimizer": {"name": opt.name, "lr": lr, "weight_decay": 0.1},
        "workload": {"name": scale.workload, "tokens": tokens},
        "schedule": {"name": "cosine"},
        **{"grad_clip": 1.0, "precision": "fp32", "compile": False, "data_seed": 0, "divergence_factor": 3.0},
        **{"eval_every": eval_every, "log_every": 1, "seed": seed, "results_dir": str(root)},
    }
    run = run_dir(config)
    run.mkdir(parents=True, exist_ok=True)
    (run / CONFIG).write_text(yaml.safe_dump(config))
    steps = np.arange(1, rows + 1)
    loss = final + (10.0 - final) * (1 - steps / rows) ** 2
    seconds = steps * tokens / rows * 1e-6
    reached = None
    lines = []
    for s, value, t in zip(steps, loss, seconds, strict=True):
        row = {"step": int(s), "tokens": int(s * tokens / rows), "train_time_s": float(t), "train_loss": float(value)}
        if s % eval_every == 0 or s == rows:
            row["eval/loss"] = float(value)
            if reached is None and value <= goal:
                reached = {"steps": int(s), "tokens": row["tokens"], "seconds": float(t)}
        lines.append(json.dumps(row))
    (run / METRICS).write_text("\n".join(lines) + "\n")
    summary = {
        "status": TrialStatus.COMPLETED,
        "workload": scale.workload,
        "optimizer": opt.name,
        "seed": seed,
        "default_hyperparameters": lr == opt.default_lr,
        "metric": {"name": "loss", "lower_is_better": True},
        "budget": {"steps": rows, "tokens": tokens},
        "params_non_embedding": scale.params,
        "final": {"loss": float(loss[-1])},
        "best": {"loss": float(loss.min())},
        "steps": rows,
        "tokens": tokens,
        "train_time_s": float(seconds[-1]),
        "target": goal,
        "time_to_target": reached,
        "error": None,
        "provenance": provenance
        or {"data_fingerprint": f"synthetic:{scale.workload}", "device": "cpu", "packages": {"torch": "2.13.0"}},
    }
    save_summary(run / SUMMARY, summary)
    return run


def write_sweep(
    root: Path,
    optimizers: list[Optimizer],
    scales: list[Scale],
    budgets: list[float],
    lrs: list[float],
    seeds: int,
    rows: int,
    noise: float = 0.0,
) -> list[Path]:
    """Every optimizer x scale x budget x lr x seed; each optimizer's default lr is added to `lrs`."""
    runs = []
    for scale in scales:
        goal = target(scale, budgets)
        for opt in optimizers:
            for lr in sorted(set(lrs) | {opt.default_lr}):
                for tokens in budgets:
                    for seed in range(seeds):
                        runs.append(write_trial(root, opt, scale, tokens, lr, seed, rows, goal, noise))
    return runs
