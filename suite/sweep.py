"""`python -m suite.sweep optimizer=a,b workload=x,y tuning=<protocol> [cluster=<preset>] [--force] [overrides]`:
one tuning study per optimizer x workload, run round by round as Hydra multiruns of `python -m suite`.

Each configuration a protocol proposes is written as a config file (`# @package optimizer`) in the study's own
`conf/trial/` and launched as `+trial=<name>` through Hydra's search path, so every trial is an ordinary Hydra job:
locally in K pinned slots, or on SLURM through hydra-submitit-launcher. Finished trials (completed or diverged,
same resolved config) are never launched again, unfinished ones resume from their checkpoints, and a study's
state lives in its `study.json`, so re-running the same command continues where it stopped."""

from __future__ import annotations

import ctypes
import json
import os
import queue
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import yaml
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from optimizers import NAMES
from suite import CONF_DIR
from suite.checks import check_cluster, check_group_choices, check_overrides, check_parses
from suite.layout import STUDY, SUMMARY
from suite.progress import Progress
from suite.protocols import Config, key
from suite.schema import ENDED, SEARCH_SEED, TrialStatus, load_study, summary_or_empty
from suite.settings import refuse
from suite.study import Study


def compose_config(overrides: list[str]) -> dict:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return OmegaConf.to_container(compose("config", overrides), resolve=True)


# --- launching --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    study: Study
    trials: list[str]  # trial file names
    seeds: list[int]  # each trial runs on each seed (a Hydra multirun product)
    pause_at: float | None = None  # the rung the trials stop at (early stopping), or None: to the end

    def argv(self) -> list[str]:
        """The job as a command: `python -m suite <arguments>`."""
        return [sys.executable, "-m", "suite", *self.arguments()]

    def common(self) -> list[str]:
        """The overrides every trial of the job shares: the task, the study's overrides, and where its trial files
        are (the study's conf/trial/<name>.yaml, each `# @package optimizer`)."""
        force = ["force=true"] if self.study.force else []
        pause = [] if self.pause_at is None else [f"pause_at={self.pause_at}"]
        search = f"hydra.searchpath=[file://{self.study.directory / 'conf'}]"
        task = [f"optimizer={self.study.optimizer}", f"workload={self.study.workload}"]
        return [*task, *self.study.overrides, *force, *pause, search, "progress=false"]

    def arguments(self) -> list[str]:
        """The job as one Hydra multirun (a SLURM array): every trial file on every seed."""
        return ["-m", *self.common(), f"+trial={','.join(self.trials)}", f"seed={','.join(map(str, self.seeds))}"]

    def runs(self) -> list[list[str]]:
        """The job's runs one by one, in the multirun's order, each the overrides of one `python -m suite` (what a
        local slot's worker composes and runs)."""
        return [[*self.common(), f"+trial={t}", f"seed={s}"] for t in self.trials for s in self.seeds]


def jobs_for(study: Study, pairs: list[tuple[Config, int]], parts: int) -> list[Job]:
    """Group (configuration, seed) pairs into multirun products, split into at most `parts` jobs."""
    names = [study.write_trial_file(c) for c, _ in pairs]
    seeds = sorted({s for _, s in pairs})
    if len(seeds) == 1:  # the search: many configurations, one seed
        chunks = [names[i::parts] for i in range(parts)]
        return [Job(study, chunk, seeds, study.pause_at) for chunk in chunks if chunk]
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
    slots = (len(gpus) or 1) if setting == "auto" else setting  # (its value is declared in suite/settings.py)
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


PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies


class Stop:
    """Ctrl-C on a sweep: no further job starts, and every running job is asked to stop with SIGTERM, the
    preemption signal (each running trial checkpoints at its next step boundary and exits, so rerunning the
    command resumes it); a second Ctrl-C kills them at once. Jobs run in their own sessions, so the terminal's
    Ctrl-C reaches the driver only."""

    def __init__(self):
        self.requested = threading.Event()
        self.presses = 0
        self.running: set[subprocess.Popen] = set()
        self.lock = threading.Lock()

    def handle(self, signum, frame) -> None:
        self.presses += 1
        self.requested.set()
        if self.presses == 1:
            print(
                "\nstopping: running trials checkpoint and stop (Ctrl-C again kills them)", file=sys.stderr, flush=True
            )
        self.signal_all(signal.SIGTERM if self.presses == 1 else signal.SIGKILL)

    def signal_all(self, signum: int) -> None:
        with self.lock:
            running = list(self.running)
        for proc in running:
            self.signal(proc, signum)

    @staticmethod
    def signal(proc: subprocess.Popen, signum: int) -> None:
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            pass


def start_process(argv: list[str], env_extra: dict, stop: Stop, **popen) -> subprocess.Popen:
    """A child process of its own session that dies with the driver (a killed sweep leaves no trial running
    behind it, to race the rerun), pinned to its slot's cores, and known to Ctrl-C."""
    cores = env_extra.get("CPU_CORES")

    def in_child() -> None:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if cores:
            os.sched_setaffinity(0, {int(c) for c in cores.split(",")})

    proc = subprocess.Popen(argv, env={**os.environ, **env_extra}, preexec_fn=in_child, start_new_session=True, **popen)
    with stop.lock:
        stop.running.add(proc)
    if stop.requested.is_set():  # (Ctrl-C came while it started)
        stop.signal(proc, signal.SIGTERM)
    return proc


def forget(proc: subprocess.Popen, stop: Stop) -> None:
    with stop.lock:
        stop.running.discard(proc)


def run_job(job: Job, log: Path, stop: Stop) -> int | None:
    """One job as its own `python -m suite` process (SLURM: it submits the array and waits for it); None when the
    sweep is stopping."""
    if stop.requested.is_set():
        return None
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as out:
        out.write("$ " + shlex.join(job.argv()) + "\n")
        out.flush()
        proc = start_process(job.argv(), {}, stop, stdout=out, stderr=subprocess.STDOUT)
        try:
            return proc.wait()
        finally:
            forget(proc, stop)


class Spawner:
    """Starts slot workers from one thread that lives as long as the sweep. PR_SET_PDEATHSIG fires when the
    *thread* that started a child ends, not its process: a worker started from a round's pool thread would be
    killed when that round ends."""

    def __init__(self):
        self.requests: queue.Queue = queue.Queue()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while (request := self.requests.get()) is not None:
            start, answer = request
            try:
                answer.put(start())
            except Exception as e:  # (handed to the caller, raised in its thread)
                answer.put(e)

    def start(self, start: Callable[[], subprocess.Popen]) -> subprocess.Popen:
        answer: queue.Queue = queue.Queue()
        self.requests.put((start, answer))
        result = answer.get()
        if isinstance(result, Exception):
            raise result
        return result

    def close(self) -> None:
        self.requests.put(None)


class Slot:
    """A local slot: its share of the machine (a GPU, or CPU cores) and its worker process (suite/slot.py), started
    on first use and kept for the whole sweep, so that torch and the optimizers are imported once per slot; a
    worker that dies (killed, out of memory) is replaced for the next job."""

    def __init__(self, index: int, env: dict, stop: Stop, spawner: Spawner):
        self.index, self.env, self.stop, self.spawner = index, env, stop, spawner
        self.worker: subprocess.Popen | None = None

    def start(self) -> None:
        """Start the worker if it is not running: the sweep starts every slot's before it plans its first round, so
        that the workers import torch while the driver plans."""
        if self.worker is None or self.worker.poll() is not None:
            argv = [sys.executable, "-m", "suite.slot"]
            pipes = dict(stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            self.worker = self.spawner.start(lambda: start_process(argv, self.env, self.stop, **pipes))

    def run(self, job: Job, log: Path) -> int | None:
        if self.stop.requested.is_set():
            return None
        self.start()
        try:
            self.worker.stdin.write(json.dumps([job.runs(), str(log)]) + "\n")
            self.worker.stdin.flush()
            answer = self.worker.stdout.readline()
        except (BrokenPipeError, OSError):
            answer = ""
        if answer:
            return json.loads(answer)
        code = self.worker.wait()  # (it died during the job)
        forget(self.worker, self.stop)
        self.worker = None
        return code

    def close(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.worker.stdin.close()
            self.worker.wait()
            forget(self.worker, self.stop)
        self.worker = None


def launch(
    batches: list[tuple[Study, list[tuple[Config, int]]]], cluster: dict, slots: list[Slot], round_no: int, stop: Stop
) -> None:
    """Run one round of every study, locally through a pool of pinned slots or one SLURM array per study,
    printing the round's progress as its trials finish."""
    progress = Progress([study.run_dir(c, seed) for study, pairs in batches for c, seed in pairs])
    finished = threading.Event()
    watcher = threading.Thread(target=progress.watch, args=(finished, lambda line: print(line, flush=True)))
    watcher.start()
    try:
        run_round(batches, cluster, slots, round_no, stop)
    finally:
        finished.set()
        watcher.join()


def run_round(
    batches: list[tuple[Study, list[tuple[Config, int]]]], cluster: dict, slots: list[Slot], round_no: int, stop: Stop
) -> None:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    if cluster["kind"] == "slurm":
        work = [job for study, pairs in batches for job in jobs_for(study, pairs, 1)]
        with ThreadPoolExecutor(max_workers=max(1, len(work))) as pool:
            logs = [job.study.directory / "logs" / f"{stamp}-r{round_no}.log" for job in work]
            list(pool.map(run_job, work, logs, [stop] * len(work)))
        return
    free: list[Slot] = list(slots)
    guard = threading.Condition()
    work = [job for study, pairs in batches for job in jobs_for(study, pairs, len(slots))]

    def run_on_a_slot(job: Job) -> None:
        with guard:
            guard.wait_for(lambda: free)
            slot = free.pop()
        try:
            slot.run(job, job.study.directory / "logs" / f"{stamp}-r{round_no}-slot{slot.index}.log")
        finally:
            with guard:
                free.append(slot)
                guard.notify()

    with ThreadPoolExecutor(max_workers=len(slots)) as pool:
        list(pool.map(run_on_a_slot, work))


# --- the command ------------------------------------------------------------------------------------------------


Task = tuple[str, list[str]]  # a workload and the overrides that set its budget


def conf_file(group: str, name: str) -> tuple[Path, dict]:
    """conf/<group>/<name>.yaml (or a file given by path) as a mapping."""
    path = Path(name) if name.endswith(".yaml") else CONF_DIR / group / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"no {group} file {path}")
    try:
        content = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"{path} is not YAML") from e
    if not isinstance(content, dict):
        raise ValueError(f"{path} is not a {group} file (a mapping with a list `tasks`)")
    return path, content


def tasks_of(path: Path, listed) -> list[Task]:
    """`workload` or `workload@tokens` entries, as `python -m analysis subset` writes them: the latter runs with
    workload.tokens set."""
    try:
        tasks = [str(task).partition("@") for task in listed]
        budgets = [int(float(t)) if t else None for _, _, t in tasks]
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: `tasks` is a list of workload or workload@tokens") from e
    known = sorted(p.stem for p in (CONF_DIR / "workload").glob("*.yaml"))
    unknown = [w for w, _, _ in tasks if w not in known]
    if unknown:
        raise ValueError(f"{path} names unknown workload(s) {', '.join(unknown)}; valid: {', '.join(known)}")
    return [(w, [f"workload.tokens={b}"] if b else []) for (w, _, _), b in zip(tasks, budgets, strict=True)]


def subset_tasks(name: str) -> list[Task]:
    """The tasks of conf/subset/<name>.yaml (or of a subset file given by path)."""
    path, content = conf_file("subset", name)
    return tasks_of(path, content.get("tasks"))


def named_study(name: str) -> tuple[list[str], list[Task], list[str]]:
    """conf/study/<name>.yaml: the optimizers (a list or `all`), the tasks and the overrides of a named study."""
    path, content = conf_file("study", name)
    optimizers = content.get("optimizers")
    if optimizers == "all":
        optimizers = sorted(NAMES)
    overrides = content.get("overrides") or []
    if not isinstance(optimizers, list) or not isinstance(overrides, list):
        raise ValueError(f"{path}: `optimizers` is a list or `all`, `overrides` a list of key=value")
    return [str(o) for o in optimizers], tasks_of(path, content.get("tasks")), [str(o) for o in overrides]


# `optimizer=all` and `workload=cpu` on a sweep's command line: the whole zoo, and the workloads whose trials take
# seconds to minutes on a CPU (the reference leaderboard's)
ALIASES = {"optimizer": {"all": ",".join(sorted(NAMES))}, "workload": {"cpu": "quadratic,cnn_digits,lm_tiny"}}


def expand_aliases(argv: list[str]) -> list[str]:
    expanded = []
    for arg in argv:
        name, sep, value = arg.partition("=")
        expanded.append(f"{name}={ALIASES[name][value]}" if sep and value in ALIASES.get(name, {}) else arg)
    return expanded


def parse(argv: list[str]) -> tuple[list[str], list[Task], list[str], bool]:
    """optimizer list, tasks (from workload=a,b, each at every budget of workload.tokens=x,y,z, from subset=<name>,
    or from study=<name>, which also brings its optimizers and overrides: the command line's win), the other
    overrides, and --force."""
    force = "--force" in argv
    rest = [a for a in argv if a != "--force"]
    lists = {"optimizer": ["adamw"], "workload": ["lm_tiny"], "workload.tokens": []}
    tasks = None
    overrides = []
    for arg in rest:
        name, sep, value = arg.partition("=")
        if name == "study" and sep:
            optimizers, tasks, defaults = named_study(value)
            given = {a.partition("=")[0] for a in rest}
            lists["optimizer"] = lists["optimizer"] if "optimizer" in given else optimizers
            overrides = [o for o in defaults if o.partition("=")[0] not in given] + overrides
        elif name == "subset" and sep:
            tasks = subset_tasks(value)
        elif name in lists and sep:
            lists[name] = value.split(",")
        elif arg.startswith("-"):
            raise ValueError(f"unknown option {arg} (the only option is --force; the rest are key=value overrides)")
        else:
            overrides.append(arg)
    budgets = [[f"workload.tokens={b}"] for b in lists["workload.tokens"]] or [[]]
    return lists["optimizer"], tasks or [(w, b) for w in lists["workload"] for b in budgets], overrides, force


def failure_table(studies: list[Study]) -> list[dict]:
    rows = []
    for study in studies:
        for trial in load_study(study.directory / STUDY)["trials"]:
            if trial["status"] not in ENDED:
                summary = summary_or_empty(Path(trial["run_dir"]) / SUMMARY)
                reason = (
                    study.refused.get(key(trial["config"]))
                    or summary.get("error")
                    or ("never started" if trial["status"] is None else trial["status"])
                )
                rows.append({"study": f"{study.workload}/{study.optimizer}", **trial, "reason": reason})
    return rows


def rerun_may_help(row: dict) -> bool:
    """A trial that never started, was stopped or killed mid-way, or ran out of memory or disk may finish when
    run again; one that raised an error in training raises it again (trials are deterministic)."""
    return row["status"] in (None, TrialStatus.RUNNING) or row["reason"].split(":")[0] in (
        "interrupted",
        "MemoryError",
        "OSError",
    )


def report_failures(failures: list[dict], command: str) -> None:
    print(f"\n{len(failures)} trial(s) did not finish:")
    print(f"{'study':<28} {'trial':<12} {'seed':>4}  reason")
    for f in failures:
        print(f"{f['study']:<28} {f['trial']:<12} {f['seed']:>4}  {f['reason']}")
    retry = [f for f in failures if rerun_may_help(f)]
    errors = len(failures) - len(retry)
    if errors:
        print(
            f"\n{errors} of them were refused or raised an error in training, which rerunning repeats (trials are "
            "deterministic): the reason is above, the whole error in the run directory's summary.json and the slot "
            "log under the study's logs/; fix its cause (a search range, a setting) before rerunning"
        )
    if retry:
        print(
            f"\n{len(retry)} stopped or never started; rerunning continues them (finished trials are skipped):"
            f" {command}"
        )


def main(argv: list[str]) -> int:
    try:
        argv = expand_aliases(argv)
        problem = check_parses(argv) or check_group_choices(argv) or check_overrides(argv) or check_cluster(argv)
        if problem:
            raise ValueError(problem)
        optimizers, tasks, overrides, force = parse(argv)
        studies = []
        for workload, budget in tasks:
            for optimizer in optimizers:
                cfg = compose_config([f"optimizer={optimizer}", f"workload={workload}", *overrides, *budget])
                studies.append(Study(optimizer, workload, cfg, [*overrides, *budget], force))
        cluster = studies[0].cfg["cluster"]
        shares = local_slots(cluster["slots"]) if cluster["kind"] == "local" else []  # (a bad count is refused now)
        for study in studies:
            try:
                study.directory.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise ValueError(f"results directory {study.directory} is not writable: {e.strerror or e}") from e
    except (ValueError, OSError, HydraException, OmegaConfBaseException) as e:
        return refuse(e)
    command = shlex.join(["python", "-m", "suite.sweep", *argv])
    stop = Stop()
    signal.signal(signal.SIGINT, stop.handle)
    spawner = Spawner()
    slots = [Slot(i, env, stop, spawner) for i, env in enumerate(shares)]
    try:
        for slot in slots:
            slot.start()
        return sweep(studies, cluster, slots, command, stop)
    finally:
        for slot in slots:
            slot.close()
        spawner.close()


def sweep(studies: list[Study], cluster: dict, slots: list[Slot], command: str, stop: Stop) -> int:
    """Round after round until every study is done (or Ctrl-C), then the studies' bests and the failure table."""
    round_no = 0
    while True:
        batches = [(s, pairs) for s in studies if (pairs := s.next_trials())]
        for study in studies:
            study.record(command, done=all(s is not study for s, _ in batches))
        if not batches:
            break
        round_no += 1
        count = sum(len(p) for _, p in batches)
        kept = [v for s in studies for (k, _), v in s.results().items() if k not in s.refused] if round_no == 1 else []
        done = sum(v is not None for v in kept)
        earlier = f"; {done} finished in an earlier run are kept" if done else ""
        print(f"round {round_no}: {count} trial(s) in {len(batches)} study(ies){earlier}", flush=True)
        launch(batches, cluster, slots, round_no, stop)
        if stop.requested.is_set():
            for study in studies:
                study.record(command, done=False)
            print(
                "stopped: finished trials are kept, and stopped ones resume from their checkpoints when you rerun:"
                f" {command}"
            )
            return 130
        for study, pairs in batches:
            study.launched(pairs)
    for study in studies:
        record = load_study(study.directory / STUDY)
        best = record["best"]
        shown = (
            f"best {best['config']}: {best['metric']} {best['median']:.6g} "
            + (
                f"(seed {SEARCH_SEED}, the selection seed: in-sample)"
                if best.get("in_sample")
                else f"(median of {best['seeds']} scoring seed(s); selected on seed {SEARCH_SEED})"
            )
            if best
            else "no configuration finished without failing or diverging"
        )
        name = f"{study.workload}/{study.optimizer} [{record['protocol']}]"
        print(f"{name}: {record['budget']['configurations']} configurations, {shown} -> {study.directory}/study.json")
    failures = failure_table(studies)
    if failures:
        report_failures(failures, command)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
