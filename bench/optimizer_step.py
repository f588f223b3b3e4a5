"""Optimizer step time, whole training-step time and state memory on lm_20m, as ratios to AdamW, in one process.

    python bench/optimizer_step.py [--steps 10] [--workload lm_20m] [--only adamw,muon]

The optimizer step: gradients come from a cheap quadratic in the parameters (elementwise, with a graph when the
optimizer needs Hessian-vector products), so the time measured is the optimizer's own step. The whole step is
what decides wall-clock comparisons: the workload's forward and backward on a real batch, clipping and the step
(suite.trainer.train_step). Each is the mean over `--steps` steps after two warm-up steps (SOAP's and Kron's
first steps build their preconditioners): a mean, not a median, so that periodic work counts at its real share
(SOAP refreshes its eigenbases every `precondition_frequency` = 10 steps, the default `--steps`; Kron updates
its preconditioner with probability 1 for its schedule's first 500 steps, every step of the CPU budgets here).
State memory is the size of every tensor in the optimizer's state_dict, plus the averaged weights for optimizers
evaluated on an average (DoG).
AdamW is measured first (the reference) and again last, to show any drift of the machine's speed.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from optimizers import NAMES, get_spec
from suite import CONF_DIR, rng
from suite.trainer import train_step
from suite.trial import build_optimization
from workloads import build_workload

NO_AUTOCAST = torch.autocast("cpu", enabled=False)


def tensor_bytes(obj) -> int:
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def measure(name: str, workload_name: str, steps: int) -> tuple[float, float, int]:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = OmegaConf.to_container(
            compose("config", [f"optimizer={name}", f"workload={workload_name}"]), resolve=True
        )
    workload = build_workload(cfg["workload"])
    rng.seed_all(0)
    model = workload.build_model(0)
    opt = build_optimization(get_spec(name), cfg, model, workload)
    opt.train_mode()
    weights = [torch.rand_like(p) for p in model.parameters()]
    times = []
    for step in range(steps + 2):
        opt.set_lr(step)
        hessian = opt.spec.hessian_step is not None and opt.spec.hessian_step(opt.optimizer)
        loss = sum(((p - 0.1) ** 2 * w).sum() for p, w in zip(model.parameters(), weights, strict=True))
        loss.backward(create_graph=hessian)
        start = time.perf_counter()
        opt.optimizer.step()
        if opt.averager:
            opt.averager.step()
        times.append(time.perf_counter() - start)
        opt.optimizer.zero_grad(set_to_none=True)
    memory = tensor_bytes(opt.optimizer.state_dict()) + (tensor_bytes(opt.averager.state_dict()) if opt.averager else 0)
    whole = []
    for step in range(steps + 2):
        start = time.perf_counter()
        opt.set_lr(step)
        train_step(model, opt, workload, workload.train_batch(step, 0), NO_AUTOCAST, cfg["grad_clip"])
        whole.append(time.perf_counter() - start)
    return statistics.mean(times[2:]), statistics.mean(whole[2:]), memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--workload", default="lm_20m")
    parser.add_argument("--only", default="", help="comma-separated optimizers (default: all)")
    args = parser.parse_args()
    names = [n for n in sorted(NAMES) if n != "adamw" and (not args.only or n in args.only.split(","))]

    ref_time, ref_whole, ref_mem = measure("adamw", args.workload, args.steps)
    print(f"{args.workload}, {args.steps} steps each, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(
        f"adamw reference: optimizer step {ref_time * 1e3:.1f} ms, whole training step {ref_whole * 1e3:.0f} ms, "
        f"{ref_mem / 2**20:.1f} MiB state"
    )
    print("| optimizer | optimizer step / AdamW | whole training step / AdamW | state memory / AdamW |")
    print("|---|---|---|---|", flush=True)
    for name in names:  # printed as measured: the slow preconditioned methods take minutes on a CPU
        t, whole, mem = measure(name, args.workload, args.steps)
        print(f"| {name} | {t / ref_time:.2f} | {whole / ref_whole:.2f} | {mem / ref_mem:.2f} |", flush=True)
    again, again_whole, _ = measure("adamw", args.workload, args.steps)
    print(
        f"adamw measured again at the end: optimizer step {again / ref_time:.2f}, whole step "
        f"{again_whole / ref_whole:.2f} x the first measurement (machine drift)"
    )


if __name__ == "__main__":
    main()
