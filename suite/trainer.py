"""The training loop: timed steps (data + update), periodic held-out evaluation off the clock, divergence checks."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from optimizers.spec import Averager, OptimizerSpec
from suite import distributed
from suite.checkpoint import Preemption
from suite.distributed import SINGLE, Ranks
from suite.records import MetricsLog
from suite.schema import TrialStatus
from workloads.base import Batch, Workload, to_device


@dataclass(frozen=True)
class TrainSettings:
    steps: int
    data_seed: int
    grad_clip: float  # 0 = off
    eval_every: int
    log_every: int
    divergence_factor: float
    target: float | None
    progress: bool
    checkpoint_every: int = 0  # steps; 0 = only when preempted
    ranks: Ranks = SINGLE  # data-parallel ranks (one without DDP)
    pause_step: int | None = None  # checkpoint after this step and stop with status "paused"


@dataclass
class Outcome:
    status: str = TrialStatus.COMPLETED.value  # or DIVERGED, or PAUSED (at settings.pause_step); plain text, as a
    # checkpoint (loaded with weights_only=True) holds it
    reason: str | None = None
    steps: int = 0
    tokens: int = 0
    train_time_s: float = 0.0
    final: dict | None = None
    best: dict | None = None
    time_to_target: dict | None = None
    untimed_steps: int = 0  # the first step of each process (start and every resume), off the clock
    untimed_s: float = 0.0  # their wall time: torch.compile, CUDA and cuDNN warm-up, allocator growth


class Clock:
    """Wall time of the timed region only (AlgoPerf: data selection + update); pause it around evaluation and
    checkpoints. A resumed trial's clock starts from the checkpoint's total."""

    def __init__(self, device: torch.device, total: float = 0.0, now: Callable[[], float] = time.perf_counter):
        self._sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        self._total, self._now = total, now
        self._since: float | None = None

    def start(self) -> None:
        self._sync()
        self._since = self._now()

    def pause(self) -> None:
        self._total = self.elapsed()
        self._since = None

    def elapsed(self) -> float:
        if self._since is None:
            return self._total
        self._sync()
        return self._total + self._now() - self._since


@dataclass
class Optimization:
    """An optimizer with what its spec asks of the harness: the lr multiplier per step and an optional averager."""

    optimizer: Any
    spec: OptimizerSpec
    lr_multiplier: Callable[[int], float]
    averager: Averager | None = None

    def set_lr(self, step: int) -> float:
        """Set every group's lr to its peak lr times the schedule's multiplier for `step`; returns group 0's."""
        multiplier = self.lr_multiplier(step) if self.spec.external_schedule else 1.0
        for group in self.optimizer.param_groups:
            group["lr"] = group.setdefault("initial_lr", group["lr"]) * multiplier
        return self.optimizer.param_groups[0]["lr"]

    def train_mode(self) -> None:
        if self.spec.train_eval_modes:
            self.optimizer.train()

    def eval_mode(self) -> None:
        if self.spec.train_eval_modes:
            self.optimizer.eval()

    def eval_model(self, model: nn.Module) -> nn.Module:
        return self.averager.averaged_model if self.averager else model


def train_step(
    model: nn.Module,
    opt: Optimization,
    workload: Workload,
    batch: Batch,
    autocast: torch.autocast,
    grad_clip: float,
    ranks: Ranks = SINGLE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step with gradient accumulation over the workload's micro-batches; returns the mean loss (of
    this rank's slice of the batch under DDP, which averages the gradients over the ranks) and the gradient's l2
    and l1 norms before clipping (on the device: read at logged steps only, refined schedules use them)."""
    hessian = opt.spec.hessian_step is not None and opt.spec.hessian_step(opt.optimizer)
    # Hessian-vector products differentiate the backward pass; only the math attention kernel supports that.
    kernel = sdpa_kernel(SDPBackend.MATH) if hessian else contextlib.nullcontext()
    total = torch.zeros((), device=next(model.parameters()).device)
    parts = workload.micro_batches // ranks.world
    if ranks.active:
        batch = list(workload.micro_batch_split(batch, ranks.world))[ranks.rank]
    with kernel:
        for micro in workload.micro_batch_split(batch, parts):
            with autocast:
                loss = workload.loss(model, micro)
            (loss / parts).backward(create_graph=hessian)
            total += loss.detach()
    with torch.no_grad():
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        l2 = nn.utils.get_total_norm(grads, 2.0)
        norms = torch.stack([l2, nn.utils.get_total_norm(grads, 1.0)])
        if grad_clip > 0:
            nn.utils.clip_grads_with_norm_(model.parameters(), grad_clip, l2)
    opt.optimizer.step()
    opt.optimizer.zero_grad(set_to_none=True)
    if opt.averager:
        opt.averager.step()
    return total / parts, norms


@torch.no_grad()
def recompute_batch_norm(model: nn.Module, workload: Workload, device, autocast) -> None:
    """Batch-norm running statistics for weights they were not gathered with (Schedule-Free's x, an average), as
    the Schedule-Free authors advise: reset, then a cumulative average over the first train batches of the
    data_seed=0 stream in train mode (the same batches for every trial), off the clock."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    model.train()
    for step in range(workload.bn_recompute_batches):
        with autocast:
            workload.loss(model, to_device(workload.train_batch(step, 0), device))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum


def evaluate(model: nn.Module, opt: Optimization, workload: Workload, device, autocast) -> dict[str, float]:
    """Held-out metrics of the weights the optimizer says to evaluate, in eval mode; back to train mode after."""
    opt.eval_mode()
    eval_model = opt.eval_model(model)
    if workload.bn_recompute_batches and (opt.spec.train_eval_modes or opt.averager):
        recompute_batch_norm(eval_model, workload, device, autocast)
    eval_model.eval()
    metrics = workload.evaluate(eval_model, device, autocast)
    model.train()
    opt.train_mode()
    return metrics


def train(
    model: nn.Module,
    opt: Optimization,
    workload: Workload,
    settings: TrainSettings,
    device: torch.device,
    autocast: torch.autocast,
    log: MetricsLog,
    resume: dict | None = None,
    save_checkpoint: Callable[[dict], None] | None = None,
    preemption: Preemption | None = None,
) -> Outcome:
    """Train for the step budget, log rows every `log_every` steps and evaluate every `eval_every` and at the end.

    Every `checkpoint_every` steps, and at the first step boundary after a preemption signal, the loop state
    (with the rows logged so far) goes to `save_checkpoint`, which adds model, optimizer and RNG states; a
    preempted trial then hands the signal over. `resume` is such a state: training continues after its step."""
    out = Outcome(**resume["outcome"]) if resume else Outcome()
    first_loss: float | None = resume["first_loss"] if resume else None
    rows: list[dict] = list(resume["metrics"]) if resume else []
    # the (l2, l1) gradient norms of each step since the last logged row, logged with it
    norms: list[torch.Tensor] = [torch.tensor(n, device=device) for n in (resume or {}).get("norms", [])]
    metric = workload.primary_metric
    clock = Clock(device, resume["train_time_s"] if resume else 0.0)
    start = resume["step"] if resume else 0
    bar = tqdm(total=settings.steps, initial=start, disable=not settings.progress, unit="step", mininterval=1.0)
    model.train()
    opt.train_mode()
    for step in range(start, settings.steps):
        if step == start:  # the clock starts after this process's first step (docs/usage.md: Running a trial)
            warmup = Clock(device)
            warmup.start()
        lr = opt.set_lr(step)
        batch = to_device(workload.train_batch(step, settings.data_seed), device)
        loss, step_norms = train_step(model, opt, workload, batch, autocast, settings.grad_clip, settings.ranks)
        norms.append(step_norms)
        done = step + 1
        if step == start:
            out.untimed_steps += 1
            out.untimed_s += warmup.elapsed()
            clock.start()
        out.steps, out.tokens = done, done * workload.tokens_per_step
        is_eval = done % settings.eval_every == 0 or done == settings.steps
        if is_eval or step == 0 or done % settings.log_every == 0:
            loss_value = distributed.mean(loss, settings.ranks).item()
            out.train_time_s = clock.elapsed()
            row = {"step": done, "tokens": out.tokens, "train_time_s": out.train_time_s}
            row.update(train_loss=loss_value, lr=lr)
            logged = torch.stack(norms).tolist()
            row.update(grad_norms=[n[0] for n in logged], grad_norms_l1=[n[1] for n in logged])
            norms.clear()
            first_loss = loss_value if first_loss is None else first_loss
            if not math.isfinite(loss_value) or loss_value > settings.divergence_factor * first_loss:
                out.status = TrialStatus.DIVERGED.value
                out.reason = f"train loss {loss_value:.4g} at step {done} (first loss {first_loss:.4g})"
                log.append(row)
                break
            if is_eval:
                clock.pause()
                plain = model.module if isinstance(model, DistributedDataParallel) else model
                metrics = evaluate(plain, opt, workload, device, autocast)
                clock.start()
                row.update({f"eval/{k}": v for k, v in metrics.items()})
                out.final = metrics
                value = metrics[metric.name]
                if out.best is None or metric.reached(value, out.best[metric.name]):
                    out.best = {metric.name: value, "step": done}
                if settings.target is not None and out.time_to_target is None:
                    if metric.reached(value, settings.target):
                        out.time_to_target = {"steps": done, "tokens": out.tokens, "seconds": out.train_time_s}
            log.append(row)
            rows.append(row)
            timed_tokens = (done - out.untimed_steps) * workload.tokens_per_step  # (the first step is off the clock)
            rate = f"{timed_tokens / out.train_time_s:,.0f}" if timed_tokens and out.train_time_s > 0 else "-"
            bar.set_postfix(loss=f"{loss_value:.4f}", tok_s=rate)
            bar.update(done - bar.n)
        # Under DDP the ranks agree on a preemption at logged steps only: no host sync in the other steps' path.
        agree = not settings.ranks.active or done % settings.log_every == 0
        preempted = agree and distributed.any_rank(
            preemption is not None and preemption.requested, settings.ranks, device
        )
        periodic = settings.checkpoint_every > 0 and done % settings.checkpoint_every == 0
        pause = done == settings.pause_step
        if save_checkpoint and done < settings.steps and (periodic or preempted or pause):
            clock.pause()
            opt.eval_mode()  # Schedule-Free: checkpoint the evaluation weights, as its authors advise
            pending = torch.stack(norms).tolist() if norms else []
            state = {"step": done, "outcome": asdict(out), "first_loss": first_loss, "metrics": rows, "norms": pending}
            save_checkpoint({**state, "train_time_s": clock.elapsed()})
            opt.train_mode()
            clock.start()
            if preempted:
                bar.close()
                preemption.hand_over()
        if pause:
            out.status = TrialStatus.PAUSED.value
            break
    bar.close()
    if out.status == TrialStatus.DIVERGED:
        out.final = None
    return out
