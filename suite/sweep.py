"""`python -m suite.sweep optimizer=a,b workload=x,y tuning=<protocol> [cluster=<preset>] [--force] [overrides]`:
one tuning study per optimizer x workload, run round by round as Hydra multiruns of `python -m suite`.

Each configuration a protocol proposes is written as a config file (`# @package optimizer`) in the study's own
`conf/trial/` and launched as `+trial=<name>` through Hydra's search path, so every trial is an ordinary Hydra job:
locally in K pinned slots, or on SLURM through hydra-submitit-launcher. Finished trials (completed or diverged,
same resolved config) are never launched again, unfinished ones resume from their checkpoints, and a study's
state lives in its `study.json`, so re-running the same command continues where it stopped."""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import yaml
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from optimizers import hyperparameters, validate_search_space
from suite import CONF_DIR
from suite.checks import check_cluster, check_group_choices
from suite.protocols import Config, Dim, dims, key, search_batch
from suite.records import FINISHED, atomic_write_json, read_json, run_dir

STUDY_LEVEL = ("tuning", "cluster", "hydra", "results_dir", "progress", "force")  # not part of a study's identity


def compose_config(overrides: list[str]) -> dict:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return OmegaConf.to_container(compose("config", overrides), resolve=True)


def with_values(optimizer_cfg: dict, config: Config) -> dict:
    """The optimizer's hyperparameters with the searched values set (`betas.1` sets element 1 of betas)."""
    hp = copy.deepcopy(hyperparameters(optimizer_cfg))
    for name, value in config.items():
        head, _, index = name.partition(".")
        if index:
            hp[head][int(index)] = value
        else:
            hp[head] = value
    return hp


@dataclass
class Study:
    optimizer: str
    workload: str
    cfg: dict  # the resolved config of the defaults (with the user's overrides)
    overrides: list[str]  # the user's overrides, passed to every trial
    force: bool
    attempted: set = field(default_factory=set)  # (config key, seed) launched by this invocation

    def __post_init__(self):
        space = self.cfg["optimizer"].get("search_space") or {}
        validate_search_space(self.optimizer, space, set(hyperparameters(self.cfg["optimizer"])))
        self.space: list[Dim] = dims(space)
        self.tuning = self.cfg["tuning"]
        if self.tuning["seeds"] < 1 or self.tuning["trials"] < 1 or self.tuning["grid_points"] < 2:
            raise ValueError("tuning.seeds and tuning.trials must be >= 1 and tuning.grid_points >= 2")
        base = hyperparameters(self.cfg["optimizer"])
        self.start: Config = {d.key: self.value_of(base, d.key) for d in self.space}
        budget = next((o.partition("=")[2] for o in self.overrides if o.startswith("workload.tokens=")), None)
        name = f"study-{self.tuning['name']}" + (f"-{budget}tokens" if budget else "")
        self.directory = Path(self.cfg["results_dir"]).expanduser() / self.workload / self.optimizer / name
        self.configs: dict[tuple, Config] = {}  # every configuration proposed so far
        self.check_settings()

    @staticmethod
    def value_of(hp: dict, name: str) -> float:
        head, _, index = name.partition(".")
        return float(hp[head][int(index)] if index else hp[head])

    def settings(self) -> dict:
        """What defines the study: a study directory holding other settings is refused, never overwritten."""
        tuning = {k: v for k, v in self.tuning.items() if k != "name"}
        names = {o: o.lstrip("+~").split("=")[0] for o in self.overrides}
        searched = "optimizer.search_space"  # (its overrides are in search_space already)
        defining = sorted(o for o, n in names.items() if n.split(".")[0] not in STUDY_LEVEL and searched not in n)
        return {
            **tuning,
            "search_space": self.cfg["optimizer"].get("search_space") or {},
            "start": self.start,
            "overrides": defining,
        }

    def check_settings(self) -> None:
        saved = read_json(self.directory / "study.json")
        if saved is None:
            return
        old, new = saved["settings"], self.settings()
        differing = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        if "overrides" in differing:
            changed = sorted(set(old.get("overrides", [])) ^ set(new["overrides"]))
            differing[differing.index("overrides")] = f"overrides {' '.join(changed)}"
        if differing:
            raise ValueError(
                f"{self.directory} holds a study with other settings (differs: {', '.join(differing)}); "
                "give this one its own tuning.name"
            )
        for trial in saved["trials"]:
            config = {k: float(v) for k, v in trial["config"].items()}
            self.configs[key(config)] = config

    # --- trials ---------------------------------------------------------------------------------------------
    def trial_name(self, config: Config) -> str:
        return "t" + hashlib.sha256(json.dumps(sorted(config.items())).encode()).hexdigest()[:10]

    def write_trial_file(self, config: Config) -> str:
        name = self.trial_name(config)
        path = self.directory / "conf" / "trial" / f"{name}.yaml"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            hp = with_values(self.cfg["optimizer"], config)
            values = {h: hp[h] for h in sorted({k.split(".")[0] for k in config})}
            path.write_text("# @package optimizer\n" + yaml.safe_dump(values))
        return name

    def run_dir(self, config: Config, seed: int) -> Path:
        cfg = copy.deepcopy(self.cfg)
        cfg["optimizer"].update(with_values(self.cfg["optimizer"], config))
        cfg["seed"] = seed
        return run_dir(cfg)

    def status(self, config: Config, seed: int) -> tuple[str | None, float]:
        """(status, score): score is the final metric oriented so lower is better, +inf when diverged or failed."""
        summary = read_json(self.run_dir(config, seed) / "summary.json") or {}
        status = summary.get("status")
        if status in FINISHED and self.force and (key(config), seed) not in self.attempted:
            return None, math.inf  # --force: run again once in this invocation
        if status == "completed" and summary.get("final"):
            metric = summary.get("metric") or {"name": "loss", "lower_is_better": True}
            value = summary["final"][metric["name"]]
            return status, value if metric["lower_is_better"] else -value
        return status, math.inf

    def given_up(self, config: Config, seed: int, status: str | None) -> bool:
        return status in FINISHED or (key(config), seed) in self.attempted

    def search_results(self) -> dict[tuple, float]:
        results = {}
        for k, config in self.configs.items():
            status, score = self.status(config, 0)
            if self.given_up(config, 0, status):
                results[k] = score
        return results

    def best(self) -> tuple[Config, float] | None:
        results = self.search_results()
        if not results:
            return None
        k = min(results, key=lambda k: (results[k], k))
        return dict(k), results[k]

    def next_trials(self) -> list[tuple[Config, int]]:
        """The (configuration, seed) pairs to launch now: the protocol's next search batch, then the best
        configuration's other seeds; empty when the study is done."""
        batch = search_batch(self.tuning["protocol"], self.start, self.search_results(), self.space, self.tuning)
        for config in batch:
            self.configs.setdefault(key(config), config)
        if batch:  # (the protocol only proposes configurations without a result)
            return [(c, 0) for c in batch]
        best = self.best()
        if best is None or not math.isfinite(best[1]):
            return []
        seeds = range(1, self.tuning["seeds"])
        return [(best[0], s) for s in seeds if not self.given_up(best[0], s, self.status(best[0], s)[0])]

    def record(self, command: str) -> dict:
        """study.json: protocol, budget, every trial with its outcome, the best configuration, the status."""
        trials = []
        best = self.best()
        seeds = range(self.tuning["seeds"])
        for k, config in sorted(self.configs.items()):
            for seed in seeds if best and k == key(best[0]) else (0,):
                status, score = self.status(config, seed)
                trials.append(
                    {
                        "trial": self.trial_name(config),
                        "config": config,
                        "seed": seed,
                        "status": status,
                        "score": score if math.isfinite(score) else None,
                        "run_dir": str(self.run_dir(config, seed)),
                    }
                )
        done = not self.next_trials()
        failed = [t for t in trials if t["status"] not in FINISHED]
        study = {
            "optimizer": self.optimizer,
            "workload": self.workload,
            "protocol": self.tuning["protocol"],
            "settings": self.settings(),
            "budget": {"configurations": len(self.configs), "seeds": self.tuning["seeds"], "trials": len(trials)},
            "trials": trials,
            "best": None,
            "status": ("completed" if not failed else "incomplete") if done else "running",
            "command": command,
            "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        if best:
            scores = [t["score"] for t in trials if t["trial"] == self.trial_name(best[0]) and t["score"] is not None]
            study["best"] = {
                "trial": self.trial_name(best[0]),
                "config": best[0],
                "hyperparameters": with_values(self.cfg["optimizer"], best[0]),
                "median_score": sorted(scores)[len(scores) // 2] if scores else None,
                "seeds": len(scores),
            }
        self.directory.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.directory / "study.json", study)
        return study


# --- launching --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    study: Study
    trials: list[str]  # trial file names
    seeds: list[int]  # each trial runs on each seed (a Hydra multirun product)

    def argv(self) -> list[str]:
        search = f"hydra.searchpath=[file://{self.study.directory / 'conf'}]"
        force = ["force=true"] if self.study.force else []
        return [
            sys.executable,
            "-m",
            "suite",
            "-m",
            f"optimizer={self.study.optimizer}",
            f"workload={self.study.workload}",
            *self.study.overrides,
            *force,
            search,
            f"+trial={','.join(self.trials)}",
            f"seed={','.join(map(str, self.seeds))}",
            "progress=false",
        ]


def jobs_for(study: Study, pairs: list[tuple[Config, int]], parts: int) -> list[Job]:
    """Group (configuration, seed) pairs into multirun products, split into at most `parts` jobs."""
    names = [study.write_trial_file(c) for c, _ in pairs]
    seeds = sorted({s for _, s in pairs})
    if len(seeds) == 1:  # the search: many configurations, one seed
        chunks = [names[i::parts] for i in range(parts)]
        return [Job(study, chunk, seeds) for chunk in chunks if chunk]
    chunks = [seeds[i::parts] for i in range(parts)]  # the seeds of the best configuration
    return [Job(study, sorted(set(names)), chunk) for chunk in chunks if chunk]


def visible_gpus() -> list[str]:
    """The GPU ids this process may use (CUDA_VISIBLE_DEVICES, else nvidia-smi's list), without importing torch."""
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return [d.strip() for d in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if d.strip()]
    if not shutil.which("nvidia-smi"):
        return []
    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout.splitlines()
    return [str(i) for i, line in enumerate(listed) if line.startswith("GPU ")]


def local_slots(setting) -> list[dict]:
    """Environment for each slot: its own GPU, or an equal share of this process's CPU cores."""
    gpus = visible_gpus()
    slots = (len(gpus) or 1) if setting == "auto" else int(setting)
    if slots < 1:
        raise ValueError(f"cluster.slots must be >= 1 or auto, got {setting}")
    if gpus:
        if slots > len(gpus):
            raise ValueError(f"cluster.slots={slots} but only {len(gpus)} GPU(s) are visible")
        return [{"CUDA_VISIBLE_DEVICES": gpus[i]} for i in range(slots)]
    cores = sorted(os.sched_getaffinity(0))
    share = max(1, len(cores) // slots)
    return [
        {"CPU_CORES": ",".join(map(str, cores[i * share : (i + 1) * share] or cores)), "OMP_NUM_THREADS": str(share)}
        for i in range(slots)
    ]


def run_job(job: Job, env_extra: dict, log: Path) -> int:
    env = {**os.environ, **env_extra}
    cores = env_extra.get("CPU_CORES")
    pin = (lambda: os.sched_setaffinity(0, {int(c) for c in cores.split(",")})) if cores else None
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as out:
        out.write("$ " + shlex.join(job.argv()) + "\n")
        out.flush()
        return subprocess.run(job.argv(), env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=pin).returncode


def launch(batches: list[tuple[Study, list[tuple[Config, int]]]], cluster: dict, round_no: int) -> None:
    """Run one round of every study: locally through a pool of pinned slots, or one SLURM array per study."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    if cluster["kind"] == "slurm":
        work = [job for study, pairs in batches for job in jobs_for(study, pairs, 1)]
        with ThreadPoolExecutor(max_workers=max(1, len(work))) as pool:
            logs = [job.study.directory / "logs" / f"{stamp}-r{round_no}.log" for job in work]
            list(pool.map(run_job, work, [{}] * len(work), logs))
        return
    slots = local_slots(cluster["slots"])
    free: list[dict] = list(slots)
    guard = threading.Condition()
    work = [job for study, pairs in batches for job in jobs_for(study, pairs, len(slots))]

    def run_on_a_slot(job: Job) -> None:
        with guard:
            guard.wait_for(lambda: free)
            slot = free.pop()
        try:
            log = job.study.directory / "logs" / f"{stamp}-r{round_no}-slot{slots.index(slot)}.log"
            run_job(job, slot, log)
        finally:
            with guard:
                free.append(slot)
                guard.notify()

    with ThreadPoolExecutor(max_workers=len(slots)) as pool:
        list(pool.map(run_on_a_slot, work))


# --- the command ------------------------------------------------------------------------------------------------


Task = tuple[str, list[str]]  # a workload and the overrides that set its budget


def subset_tasks(name: str) -> list[Task]:
    """The tasks of conf/subset/<name>.yaml (or of a subset file given by path), as `python -m analysis subset`
    writes them: `workload`, or `workload@tokens`, which runs with workload.tokens set."""
    path = Path(name) if name.endswith(".yaml") else CONF_DIR / "subset" / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"no subset file {path}")
    tasks = [str(task).partition("@") for task in yaml.safe_load(path.read_text())["tasks"]]
    return [(w, [f"workload.tokens={int(float(t))}"] if t else []) for w, _, t in tasks]


def parse(argv: list[str]) -> tuple[list[str], list[Task], list[str], bool]:
    """optimizer list, tasks (from workload=a,b or subset=<name>), the other overrides, and --force."""
    force = "--force" in argv
    rest = [a for a in argv if a != "--force"]
    lists = {"optimizer": ["adamw"], "workload": ["lm_tiny"]}
    tasks = None
    overrides = []
    for arg in rest:
        name, sep, value = arg.partition("=")
        if name == "subset" and sep:
            tasks = subset_tasks(value)
        elif name in lists and sep:
            lists[name] = value.split(",")
        elif arg.startswith("-"):
            raise ValueError(f"unknown option {arg} (the only option is --force; the rest are key=value overrides)")
        else:
            overrides.append(arg)
    return lists["optimizer"], tasks or [(w, []) for w in lists["workload"]], overrides, force


def failure_table(studies: list[Study]) -> list[dict]:
    rows = []
    for study in studies:
        for trial in read_json(study.directory / "study.json")["trials"]:
            if trial["status"] not in FINISHED:
                summary = read_json(Path(trial["run_dir"]) / "summary.json") or {}
                reason = summary.get("error") or ("never started" if trial["status"] is None else trial["status"])
                rows.append({"study": f"{study.workload}/{study.optimizer}", **trial, "reason": reason})
    return rows


def main(argv: list[str]) -> int:
    try:
        problem = check_group_choices(argv) or check_cluster(argv)
        if problem:
            raise ValueError(problem)
        optimizers, tasks, overrides, force = parse(argv)
        studies = []
        for workload, budget in tasks:
            for optimizer in optimizers:
                cfg = compose_config([f"optimizer={optimizer}", f"workload={workload}", *overrides, *budget])
                studies.append(Study(optimizer, workload, cfg, [*overrides, *budget], force))
    except (ValueError, OSError, HydraException, OmegaConfBaseException) as e:
        print(f"error: {str(e).strip().splitlines()[0]}", file=sys.stderr)
        return 2
    cluster = studies[0].cfg["cluster"]
    command = shlex.join(["python", "-m", "suite.sweep", *argv])
    round_no = 0
    while True:
        batches = [(s, pairs) for s in studies if (pairs := s.next_trials())]
        for study in studies:
            study.record(command)
        if not batches:
            break
        round_no += 1
        count = sum(len(p) for _, p in batches)
        print(f"round {round_no}: {count} trial(s) in {len(batches)} study(ies)", flush=True)
        launch(batches, cluster, round_no)
        for study, pairs in batches:
            study.attempted.update((key(c), s) for c, s in pairs)
    for study in studies:
        record = read_json(study.directory / "study.json")
        best = record["best"]
        shown = f"best {best['config']} score {best['median_score']} ({best['seeds']} seed(s))" if best else "no result"
        name = f"{study.workload}/{study.optimizer} [{record['protocol']}]"
        print(f"{name}: {record['budget']['configurations']} configurations, {shown} -> {study.directory}/study.json")
    failures = failure_table(studies)
    if failures:
        print(f"\n{len(failures)} trial(s) did not finish:")
        print(f"{'study':<28} {'trial':<12} {'seed':>4}  reason")
        for f in failures:
            print(f"{f['study']:<28} {f['trial']:<12} {f['seed']:>4}  {f['reason']}")
        print(f"\nrelaunch only these (finished trials are skipped): {command}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
