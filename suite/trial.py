"""One trial: validate and build everything, train, evaluate, and write the run record."""

from __future__ import annotations

import functools
import gc
import resource
import sys
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.parallel import DistributedDataParallel

from optimizers import get_spec, schedules
from optimizers.hparams import hyperparameters, validate, validate_search_space
from optimizers.spec import BuildContext, OptimizerSpec
from suite import checkpoint, curves, declared_hyperparameters, distributed, micro_batch, refined, rng, throughput
from suite.checkpoint import Preemption
from suite.layout import (
    CHECKPOINT,
    CONFIG,
    METRICS,
    PARENT,
    SUMMARY,
    replaced_dir,
    results_dir_of,
    resume_differences,
    run_dir,
    unclassified,
)
from suite.provenance import device_name, provenance
from suite.records import MetricsLog
from suite.schema import Origin, RecordError, TrialStatus, check_facts, is_finished, load_summary, save_summary
from suite.settings import check_config, refuse
from suite.trainer import Optimization, Outcome, TrainSettings, train, train_step
from workloads import Workload, build_workload
from workloads.base import to_device
from workloads.files import atomic_write_text

AUTOCAST = {"fp32": None, "bf16": torch.bfloat16}  # each of settings.PRECISIONS: its autocast dtype


@dataclass(frozen=True)
class Plan:
    """Everything checked and built before any training, so bad input fails before a file is touched."""

    cfg: dict
    spec: OptimizerSpec
    workload: Workload
    device: torch.device
    directory: Path
    ranks: distributed.Ranks
    precision: str  # fp32 or bf16, `precision=auto` resolved
    compiled: bool  # `compile=auto` resolved
    schedule_args: dict  # what lr_multiplier needs beyond the schedule's config (a refined schedule's weights)

    @property
    def pause_step(self) -> int | None:
        """The step `pause_at` stops at (an evaluation step before the last), or None."""
        fraction = self.cfg["pause_at"]
        return None if fraction is None else curves.pause_step(fraction, self.workload.steps, self.cfg["eval_every"])


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"device={name!r} is not a device name (auto, cpu, cuda, cuda:N)") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} but CUDA is not available here; use device=auto or device=cpu")
    return device


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux's MemAvailable), or None where it cannot be read."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_memory(workload: Workload, micro: int) -> None:
    """Refuse a CPU trial whose training step cannot fit in this machine's memory (the kernel would kill it with no
    message, leaving a record that says `running`)."""
    need, free = workload.memory_bytes(micro), available_memory()
    if need is not None and free is not None and need > free:
        raise ValueError(
            f"workload {workload.name} needs at least {need / 2**30:,.1f} GiB on this CPU with micro-batches of {micro}"
            f" (parameters, gradients, optimizer state and activations), more than the {free / 2**30:,.1f} GiB "
            "available: run it on a GPU, set workload.micro_batch_size smaller, or take a smaller workload (lm_tiny)"
        )


def check_state_memory(spec: OptimizerSpec, hp: dict, workload: Workload, device: torch.device) -> None:
    """Refuse a trial whose optimizer state alone (M-FAC's window of gradients) cannot fit in the device's free
    memory. The parameters are counted on the meta device: nothing is allocated."""
    with torch.device("meta"):
        parameters = sum(p.numel() for p in workload.build_model(0).parameters())
    need = spec.state_bytes(hp, parameters, workload.steps)
    free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else available_memory()
    if free is not None and need > free:
        raise ValueError(
            f"optimizer {spec.name} needs {need / 2**30:,.1f} GiB for its state on workload {workload.name} "
            f"({parameters:,} parameters, {workload.steps:,} steps), more than the {free / 2**30:,.1f} GiB free on "
            f"{device.type}: take a smaller workload, or a smaller window where the optimizer has one"
        )


def check_writable(directory: Path) -> None:
    """Create the run directory's parents and prove we can write there, before any training."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_text(directory / ".write-test", "")
        (directory / ".write-test").unlink()
    except OSError as e:
        raise ValueError(f"results directory {directory} is not writable: {e.strerror or e}") from e


def prepare(cfg: dict) -> Plan:
    """Validate the resolved config and build the workload; raises ValueError/OSError for bad input."""
    if unclassified(cfg):  # (e.g. `+epochs=5`: appended by Hydra, unknown to the suite)
        keys = ", ".join(unclassified(cfg))
        raise ValueError(f"unknown top-level key(s) {keys} (docs/usage.md: Results lists the keys)")
    check_config(cfg)
    name = cfg["optimizer"]["name"]
    spec = get_spec(name)
    declared = declared_hyperparameters(name)
    validate(name, hyperparameters(cfg["optimizer"]), declared)
    validate_search_space(name, cfg["optimizer"].get("search_space") or {}, declared)
    schedules.validate(cfg["schedule"])
    device = resolve_device(cfg["device"])
    workload = build_workload(cfg["workload"])
    ranks = distributed.init(device.type)
    if workload.micro_batch_size is not None and workload.micro_batches % ranks.world:
        raise ValueError(
            f"{ranks.world} data-parallel ranks cannot share {workload.micro_batches} micro-batches per step equally; "
            "make batch_size / micro_batch_size a multiple of the number of ranks"
        )
    if workload.micro_batch_size is None and workload.examples_per_step % ranks.world:
        raise ValueError(f"{ranks.world} data-parallel ranks cannot share a batch of {workload.examples_per_step}")
    if device.type == "cpu":
        check_memory(workload, workload.micro_batch_size or workload.examples_per_step // ranks.world)
    if ranks.active and device.type == "cuda":
        device = torch.device("cuda", ranks.local)
    if spec.state_bytes:
        check_state_memory(spec, hyperparameters(cfg["optimizer"]), workload, device)
    cuda = device.type == "cuda"
    precision = (workload.cuda_precision if cuda else "fp32") if cfg["precision"] == "auto" else cfg["precision"]
    compiled = cuda if cfg["compile"] == "auto" else cfg["compile"]
    warmup = schedules.warmup_steps(workload.steps, cfg["schedule"])
    schedule_args = refined.schedule_arguments(cfg, workload.steps, warmup)  # (a refined schedule's source, checked)
    return Plan(cfg, spec, workload, device, run_dir(cfg), ranks, precision, compiled, schedule_args)


def step_fits(plan: Plan, micro: int) -> bool:
    """Whether one training step with micro-batches of `micro` examples runs without exhausting GPU memory (a
    fresh model and optimizer, thrown away after: the trial itself starts from its seeds as if never probed)."""
    cfg, workload, device = plan.cfg, plan.workload, plan.device
    workload.set_micro_batch_size(micro)
    dtype = AUTOCAST[plan.precision]
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)
    model = opt = None
    try:
        model = workload.build_model(cfg["seed"]).to(device)
        opt = build_optimization(plan.spec, cfg, model, workload, plan.schedule_args)
        batch = to_device(workload.train_batch(0, cfg["data_seed"]), device)
        train_step(model, opt, workload, batch, autocast, cfg["grad_clip"])
        return True
    except torch.OutOfMemoryError:
        return False
    finally:
        del model, opt
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)


def choose_micro_batch(plan: Plan) -> list[dict] | None:
    """Resolve `workload.micro_batch_size: auto` (suite/micro_batch.py): on CUDA by probing, the same size on
    every rank; elsewhere each rank's whole share of the batch. Returns the probes made (None: nothing to do)."""
    workload, ranks = plan.workload, plan.ranks
    if workload.micro_batch_size is not None:
        return None
    if plan.device.type != "cuda":
        workload.set_micro_batch_size(workload.examples_per_step // ranks.world)
        return []
    micro, probes = micro_batch.choose(workload.examples_per_step, ranks.world, functools.partial(step_fits, plan))
    workload.set_micro_batch_size(distributed.smallest(micro, ranks, plan.device))
    return probes


def peak_memory_bytes(device: torch.device) -> int:
    """Peak CUDA memory allocated, or the process's peak resident set size on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def attention_kernel(plan: Plan) -> str | None:
    """On CUDA, for a model with attention: whether scaled_dot_product_attention takes the flash kernel at the
    trial's precision and head size ('flash'), or falls back ('fallback: <reason>'); None elsewhere."""
    head_dim = plan.workload.facts().get("head_dim")
    if plan.device.type != "cuda" or head_dim is None:
        return None
    dtype = AUTOCAST[plan.precision] or torch.float32
    q = torch.randn(1, 1, 128, head_dim, device=plan.device, dtype=dtype)
    try:
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            torch.nn.functional.scaled_dot_product_attention(q, q, q, is_causal=True)
    except RuntimeError as e:
        print(f"warning: attention will not use the flash kernel here ({e})", file=sys.stderr)
        return f"fallback: {str(e).splitlines()[0]}"
    return "flash"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def build_optimization(
    spec: OptimizerSpec, cfg: dict, model, workload: Workload, schedule_args: dict | None = None
) -> Optimization:
    """The optimizer over the model's role-tagged parameters, its schedule and (if the spec asks) its averager."""
    warmup_steps = schedules.warmup_steps(workload.steps, cfg["schedule"])
    batch_norm = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    ctx = BuildContext(workload.steps, warmup_steps, model_facts=workload.facts(), batch_norm=batch_norm)
    params, roles = dict(model.named_parameters()), workload.param_roles(model)
    optimizer = spec.build(params, roles, hyperparameters(cfg["optimizer"]), ctx)
    return Optimization(
        optimizer=optimizer,
        spec=spec,
        lr_multiplier=functools.partial(
            schedules.lr_multiplier,
            total_steps=workload.steps,
            cfg=cfg["schedule"],
            tokens_per_step=workload.tokens_per_step,
            peak_lr=optimizer.param_groups[0]["lr"],
            **(schedule_args or {}),
        ),
        averager=spec.averager(model) if spec.averager else None,
    )


def uses_defaults(optimizer_cfg: dict) -> bool:
    """Whether the hyperparameters are the authors' defaults of conf/optimizer/<name>.yaml (the untuned trial)."""
    return declared_hyperparameters(optimizer_cfg["name"]) == hyperparameters(optimizer_cfg)


def start_summary(plan: Plan) -> dict:
    """The 'running' summary written before training: identity, budget, workload facts and provenance."""
    cfg, workload = plan.cfg, plan.workload
    facts = check_facts(workload.name, workload.facts())
    return {
        "status": TrialStatus.RUNNING,
        "workload": workload.name,
        "optimizer": cfg["optimizer"]["name"],
        "seed": cfg["seed"],
        "default_hyperparameters": uses_defaults(cfg["optimizer"]),
        "metric": {"name": workload.primary_metric.name, "lower_is_better": workload.primary_metric.lower_is_better},
        "budget": {"steps": workload.steps, "tokens": workload.steps * workload.tokens_per_step},
        **facts,
        "precision_used": plan.precision,
        "compiled": plan.compiled,
        "attention_kernel": attention_kernel(plan),
        "peak_flops": throughput.peak_flops(device_name(plan.device), plan.device.type, cfg["peak_flops"]),
        "target": workload.target,
        "steps": 0,
        "tokens": 0,
        "train_time_s": 0.0,
        "tokens_per_s": None,
        "mfu": None,
        "untimed_steps": 0,
        "untimed_s": 0.0,
        "final": None,
        "best": None,
        "time_to_target": None,
        "divergence": None,
        "error": None,
        "provenance": {
            **provenance(plan.device, plan.spec.packages, facts["data_fingerprint"]),
            "start_time": now(),
        },
    }


def execute(plan: Plan, summary: dict, resume: dict | None, preemption: Preemption) -> Outcome:
    """Build model, optimizer and schedule (restored from `resume` when given), then train, checkpointing every
    `checkpoint_every` steps and on preemption; records the parameter count in `summary`."""
    cfg, workload, device = plan.cfg, plan.workload, plan.device
    rng.seed_all(cfg["seed"])  # generators some optimizers draw from (numpy's for PSGD Kron)
    model = workload.build_model(cfg["seed"]).to(device)
    summary["params_total"] = sum(p.numel() for p in model.parameters())
    opt = build_optimization(plan.spec, cfg, model, workload, plan.schedule_args)
    if resume:
        model.load_state_dict(resume["model"])
        own = [{k: v for k, v in g.items() if k != "params"} for g in opt.optimizer.param_groups]
        opt.optimizer.load_state_dict(resume["optimizer"])
        if resume.get("from_parent"):  # a PBT member: the parent's state, this trial's hyperparameters
            for group, values in zip(opt.optimizer.param_groups, own, strict=True):
                group.pop("initial_lr", None)  # (the schedule's peak: set again from this trial's lr)
                group.update(values)
        if opt.averager:
            opt.averager.load_state_dict(resume["averager"])
        rng.restore(resume["rng"])

    def save_checkpoint(loop_state: dict) -> None:
        if not plan.ranks.main:
            return
        state = {**loop_state, "config": cfg, "model": model.state_dict(), "optimizer": opt.optimizer.state_dict()}
        if opt.averager:
            state["averager"] = opt.averager.state_dict()
        checkpoint.save(plan.directory / CHECKPOINT, {**state, "rng": rng.capture()})

    settings = TrainSettings(
        steps=workload.steps,
        data_seed=cfg["data_seed"],
        grad_clip=cfg["grad_clip"],
        eval_every=cfg["eval_every"],
        log_every=cfg["log_every"],
        divergence_factor=cfg["divergence_factor"],
        target=workload.target,
        progress=cfg["progress"],
        checkpoint_every=cfg["checkpoint_every"],
        ranks=plan.ranks,
        pause_step=plan.pause_step,
    )
    dtype = AUTOCAST[plan.precision]
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)
    if device.type == "cuda":  # TF32 tensor cores for the fp32 matmuls and convolutions left outside autocast
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    trained = torch.compile(model) if plan.compiled else model
    if plan.ranks.active:
        trained = DistributedDataParallel(trained, device_ids=[device.index] if device.type == "cuda" else None)
    log = MetricsLog(plan.directory / METRICS if plan.ranks.main else None, resume["metrics"] if resume else [])
    try:
        return train(trained, opt, workload, settings, device, autocast, log, resume, save_checkpoint, preemption)
    finally:
        log.close()


def finish(plan: Plan, summary: dict, outcome: Outcome | None, error: str | None, write: bool = True) -> dict:
    """Write the final summary: status, metrics, timing and end time."""
    summary["provenance"]["end_time"] = now()
    summary["peak_mem_bytes"] = peak_memory_bytes(plan.device)
    if outcome is None:
        summary.update(status=TrialStatus.FAILED, error=error)
    else:
        summary.update(
            status=outcome.status,
            divergence=outcome.reason,
            final=outcome.final,
            best=outcome.best,
            steps=outcome.steps,
            tokens=outcome.tokens,
            train_time_s=outcome.train_time_s,
            untimed_steps=outcome.untimed_steps,
            untimed_s=outcome.untimed_s,
            time_to_target=outcome.time_to_target,
        )
        workload, timed_steps = plan.workload, outcome.steps - outcome.untimed_steps
        seconds = outcome.train_time_s
        summary["tokens_per_s"] = timed_steps * workload.tokens_per_step / seconds if seconds > 0 else None
        examples = timed_steps * workload.examples_per_step
        summary["mfu"] = throughput.mfu(summary["flops_per_example"], examples, seconds, summary["peak_flops"])
    if write:
        save_summary(plan.directory / SUMMARY, summary)
    return summary


def print_summary(summary: dict, directory: Path) -> None:
    """A one-screen report of the trial."""
    s = summary
    lines = [f"trial    {s['workload']} / {s['optimizer']} / seed {s['seed']}  ->  {s['status']}"]
    if s["status"] == TrialStatus.FAILED:
        lines.append(f"error    {s['error']}")
    else:
        lines.append(
            f"trained  {s['steps']} of {s['budget']['steps']} steps, {s['tokens']:,} tokens in "
            f"{s['train_time_s']:.1f} s timed ({s['tokens_per_s'] or 0:,.0f} tokens/s)"
        )
        if s["status"] == TrialStatus.DIVERGED:
            lines.append(f"diverged {s['divergence']}")
        final = ", ".join(f"{k} {v:.4f}" for k, v in (s["final"] or {}).items()) or "none"
        best = s["best"] or {}
        lines.append(f"eval     final {final}; best {', '.join(f'{k} {v:.4g}' for k, v in best.items()) or 'none'}")
        if s.get("irreducible_loss") is not None:
            lines.append(f"         irreducible loss {s['irreducible_loss']:.4f} (entropy rate of the source)")
        if s.get("optimal_loss") is not None:
            lines.append(f"         optimal loss {s['optimal_loss']:.4f} (at the analytic optimum)")
        ttt = s["time_to_target"]
        target = (
            "no target set"
            if s["target"] is None
            else (
                f"target {s['target']}: "
                + (f"reached at step {ttt['steps']} ({ttt['seconds']:.1f} s)" if ttt else "missed")
            )
        )
        lines.append(f"target   {target}")
        if s["target"] is not None and not ttt:
            lines.append(
                "         (set by AdamW tuned by random search at the workload's default budget: a run at an\n"
                "         optimizer's default hyperparameters is expected to miss it; compare tuned optimizers)"
            )
    total = f"{s['params_total']:,}" if "params_total" in s else "?"
    lines.append(
        f"model    {s['params_non_embedding']:,} non-embedding / {total} total parameters; "
        f"peak memory {s['peak_mem_bytes'] / 2**20:,.0f} MiB"
    )
    lines.append(f"record   {directory}")
    results = results_dir_of(directory)
    lines.append(
        f"next     tune it: python -m suite.sweep optimizer={s['optimizer']} workload={s['workload']} tuning=random"
        f" results_dir={results}\n         compare: python -m analysis report {results} --out report"
    )
    print("\n".join(lines))


def check_resumable(saved: dict, cfg: dict, directory: Path) -> None:
    """A checkpoint only continues the trial it was written by: every key but where and how it is watched."""
    differing = resume_differences(saved, cfg)
    if differing:
        raise ValueError(
            f"{directory / CHECKPOINT} was written with a different config (differs: {', '.join(differing)}); "
            "run with the same settings to resume, or force=true to start the trial over"
        )


def start_from_parent(cfg: dict, directory: Path) -> dict:
    """A PBT member's starting state: the checkpoint its `init_from` names, copied by the sweep to parent.pt, of a
    run of the same trial in all but the optimizer's hyperparameters, at the step named."""
    if cfg["force"]:
        raise ValueError("force=true cannot restart a PBT member (init_from): its parent.pt would be set aside")
    parent = checkpoint.load(directory / PARENT)
    if parent is None:
        raise ValueError(
            f"init_from={cfg['init_from']} but {directory / PARENT} is missing (the sweep copies it there)"
        )
    differing = [k for k in resume_differences(parent["config"], cfg) if k not in ("optimizer", "init_from")]
    if parent["config"]["optimizer"]["name"] != cfg["optimizer"]["name"]:
        differing.insert(0, "optimizer.name")
    step = Origin.parse(cfg["init_from"]).step
    if differing or parent["step"] != step:
        why = f"differs: {', '.join(differing)}" if differing else f"its step is {parent['step']}, not {step}"
        raise ValueError(f"{directory / PARENT} is not the start init_from={cfg['init_from']} names ({why})")
    return {**parent, "from_parent": True}


def set_aside(directory: Path) -> Path:
    """Move a trial's old record to <trial>/.replaced/<seed>-<time>/ (hidden from collect), never deleting it."""
    target = replaced_dir(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    directory.rename(target)
    return target


def run(cfg) -> int:
    """Run one trial from a composed Hydra config; returns the process exit code. A finished trial is skipped
    (unless force=true), an unfinished one with a checkpoint resumes from it."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    try:
        plan = prepare(resolved)
        try:
            previous = load_summary(plan.directory / SUMMARY)
        except RecordError as e:
            if not resolved["force"]:
                raise ValueError(f"{e.path} is damaged; move it away, or force=true sets it aside ({e.why})") from None
            previous = None
        if is_finished(previous) and not resolved["force"]:
            print(f"trial already {previous['status']}: {plan.directory} (nothing to do; force=true reruns it)")
            return 0
        resume = None if resolved["force"] else checkpoint.load(plan.directory / CHECKPOINT)
        if resume is None and resolved["init_from"] and Origin.parse(resolved["init_from"]).run:
            resume = start_from_parent(resolved, plan.directory)
        elif resume:
            check_resumable(resume["config"], resolved, plan.directory)
            if plan.pause_step is not None and resume["step"] >= plan.pause_step:
                print(f"trial already paused at step {resume['step']}: {plan.directory} (nothing to do)")
                return 0
        if resolved["force"] and plan.directory.exists() and plan.ranks.main:
            print(f"force=true: the old record moved to {set_aside(plan.directory)}")
        if plan.ranks.main:
            check_writable(plan.directory)
        probes = choose_micro_batch(plan)
    except (ValueError, OSError, TypeError) as e:  # (TypeError: a value of a type no check foresaw)
        return refuse(e)
    summary = start_summary(plan)
    summary.update(micro_batch_size=plan.workload.micro_batch_size, micro_batch_probes=probes)
    if resume and resume.get("from_parent"):
        summary["parent"] = {"init_from": resolved["init_from"], "config": resume["config"]["optimizer"]}
        print(f"starting {plan.directory} from its parent {resolved['init_from']}")
    elif resume:
        summary["resumed_from_steps"] = [*((previous or {}).get("resumed_from_steps") or []), resume["step"]]
        print(f"resuming {plan.directory} from its checkpoint at step {resume['step']}")
        if (previous or {}).get("parent"):  # (a PBT member resumed keeps the record of where it started)
            summary["parent"] = previous["parent"]
    write = plan.ranks.main  # the other data-parallel ranks train and evaluate, rank 0 keeps the record
    if write:
        atomic_write_text(plan.directory / CONFIG, OmegaConf.to_yaml(cfg, resolve=True))
        save_summary(plan.directory / SUMMARY, summary)
    with Preemption() as preemption:
        try:
            summary = finish(plan, summary, execute(plan, summary, resume, preemption), None, write)
        except (Exception, KeyboardInterrupt) as e:
            interrupted = isinstance(e, KeyboardInterrupt)
            if not interrupted:  # (Ctrl-C is the user's choice, not an error to debug)
                traceback.print_exc()
            error = "interrupted" if interrupted else f"{type(e).__name__}: {e}"
            print_summary(finish(plan, summary, None, error, write), plan.directory)
            if interrupted:
                saved = (plan.directory / CHECKPOINT).is_file()
                print(
                    "rerun the same command to "
                    + ("continue from its last checkpoint" if saved else "start it again (checkpoint_every=N saves)")
                )
            return 130 if interrupted else 1
    if not write:
        return 0
    if summary["status"] == TrialStatus.PAUSED:
        print(f"paused at step {summary['steps']} of {summary['budget']['steps']} with a checkpoint: {plan.directory}")
        return 0
    (plan.directory / CHECKPOINT).unlink(missing_ok=True)
    print_summary(summary, plan.directory)
    return 0
