"""Throughput of the suite's trainer relative to a bare training loop, measured side by side in one process.

    python bench/trainer_overhead.py [--steps 20] [--rounds 3] [--workload lm_tiny]

Both loops train the same model (same initial weights) with the same optimizer for the same number of steps;
the bare loop reads pre-built batch tensors, the suite reads its workload's stream and does everything a trial
does (setting the scheduled lr, clipping, logging rows to metrics.jsonl, divergence checks, a final
evaluation on one window).
Rounds alternate suite/bare so drifts in machine speed hit both; the ratio of the medians is printed.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from optimizers import get_spec
from suite import CONF_DIR
from suite.records import MetricsLog
from suite.trainer import TrainSettings, train
from suite.trial import build_optimization
from workloads import build_workload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workload", default="lm_tiny")
    args = parser.parse_args()

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = OmegaConf.to_container(
            compose("config", [f"workload={args.workload}", "workload.eval_tokens=1", "progress=false"]), resolve=True
        )
    workload = build_workload(cfg["workload"])
    model0 = workload.build_model(seed=0)
    spec = get_spec(cfg["optimizer"]["name"])
    batches = [workload.train_batch(step, 0) for step in range(args.steps)]
    cpu = torch.device("cpu")
    no_autocast = torch.autocast("cpu", enabled=False)
    settings = TrainSettings(
        steps=args.steps,
        data_seed=0,
        grad_clip=cfg["grad_clip"],
        eval_every=args.steps,
        log_every=cfg["log_every"],
        divergence_factor=cfg["divergence_factor"],
        target=None,
        progress=False,
    )

    def fresh():
        model = copy.deepcopy(model0)
        return model, build_optimization(spec, cfg, model, workload)

    def suite_loop() -> float:
        model, opt = fresh()
        with tempfile.TemporaryDirectory() as tmp:
            log = MetricsLog(Path(tmp) / "metrics.jsonl")
            start = time.perf_counter()
            train(model, opt, workload, settings, cpu, no_autocast, log)
            elapsed = time.perf_counter() - start
            log.close()
        return elapsed

    def bare_loop() -> float:
        model, opt = fresh()
        optimizer = opt.optimizer
        start = time.perf_counter()
        for batch in batches:
            logits = model(batch[:, :-1])
            F.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten()).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"])
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    suite_loop(), bare_loop()  # warm-up: allocator, thread pools
    suite_times, bare_times = [], []
    for _ in range(args.rounds):
        suite_times.append(suite_loop())
        bare_times.append(bare_loop())
    tokens = args.steps * workload.tokens_per_step
    suite_tps, bare_tps = tokens / statistics.median(suite_times), tokens / statistics.median(bare_times)
    print(
        f"workload {args.workload}, {args.steps} steps x {args.rounds} rounds, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    print(f"suite trainer  {suite_tps:10,.0f} tokens/s")
    print(f"bare loop      {bare_tps:10,.0f} tokens/s")
    print(f"ratio suite/bare = {suite_tps / bare_tps:.3f}  (target >= 0.97)")
    sys.exit(0)


if __name__ == "__main__":
    main()
