"""Tuning studies: the protocols' proposals, and `python -m suite.sweep` end to end on the quadratic (local slots),
including re-runs that launch nothing, refusals of bad input and a table of failed trials."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from optimizers import NAMES
from suite import CONF_DIR
from suite.progress import Progress
from suite.protocols import grid_configs, key, neighbours, next_trials, random_configs, search_batch
from suite.search_space import Dim, dims
from suite.study import Study
from suite.sweep import expand_aliases, parse, rerun_may_help
from tests.conftest import ROOT, summary_record
from tests.test_chaos import children

LR = Dim("lr", 1e-4, 1e-1, log=True)
WD = Dim("weight_decay", 0.0, 0.2, log=False)
QUICK = ["workload=quadratic", "workload.steps=20", "eval_every=10", "log_every=5"]


def sweep(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "suite.sweep", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_random_configs_are_seeded_quasi_random_points_in_range():
    points = random_configs([LR, WD], 16, seed=3)
    assert points == random_configs([LR, WD], 16, seed=3) != random_configs([LR, WD], 16, seed=4)
    assert all(1e-4 <= p["lr"] <= 1e-1 and 0 <= p["weight_decay"] <= 0.2 for p in points)
    logs = sorted(math.log10(p["lr"]) for p in points)  # low discrepancy: every eighth of the log range is hit
    assert all(any(-4 + 3 * i / 8 <= v < -4 + 3 * (i + 1) / 8 for v in logs) for i in range(8))


def test_grid_and_neighbours():
    assert LR.grid(4) == [1e-4, 1e-3, 1e-2, 1e-1] and WD.grid(3) == [0.0, 0.1, 0.2]
    assert len(grid_configs([LR, WD], 3)) == 9
    near = neighbours({"lr": 1e-3, "weight_decay": 0.1}, [LR, WD], 3)
    assert {"lr": 1e-3, "weight_decay": 0.1} not in near
    assert all(sum(n[k] != v for k, v in {"lr": 1e-3, "weight_decay": 0.1}.items()) == 1 for n in near)


def test_coordinate_descent_walks_to_the_grid_optimum_and_stops():
    space = [LR, WD]

    def loss(c):  # best at lr 1e-2 and weight decay 0.2 on a 4-point grid
        return (math.log10(c["lr"]) + 2) ** 2 + (c["weight_decay"] - 0.2) ** 2

    start = {"lr": 3e-4, "weight_decay": 0.05}  # off the grid, as the authors' defaults usually are
    results, rounds = {}, 0
    while batch := search_batch("coordinate_descent", start, results, space, {"grid_points": 4}):
        rounds += 1
        results.update({key(c): loss(c) for c in batch})
    best = dict(min(results, key=results.get))
    assert best == {"lr": 1e-2, "weight_decay": 0.2} and 2 <= rounds <= 5
    assert len(results) < 16 + 2  # fewer than the full grid (and the start) plus the one step past wd's top edge
    assert {"lr": 1e-2, "weight_decay": 0.266667} in [dict(k) for k in results]  # that step was tried


def test_coordinate_descent_extends_a_range_whose_edge_is_best_one_step_at_a_time():
    space = [LR, WD]

    def loss(c):  # best at lr 10 (three grid steps past the top, 1e-1) and weight decay 0
        return (math.log10(c["lr"]) - 1) ** 2 + c["weight_decay"]

    start, results = {"lr": 1e-3, "weight_decay": 0.1}, {}
    while batch := search_batch("coordinate_descent", start, results, space, {"grid_points": 4}):
        results.update({key(c): loss(c) for c in batch})
    best = dict(min(results, key=results.get))
    assert best["lr"] == pytest.approx(10.0) and best["weight_decay"] == 0.0
    tried = sorted({c[0][1] for c in results if c[0][0] == "lr"})
    assert tried[-1] == pytest.approx(100.0)  # one step past the best, then it stopped
    assert all(dict(c)["weight_decay"] >= 0 for c in results)  # never past what weight decay allows (>= 0)
    capped = search_batch("coordinate_descent", start, {}, space, {"grid_points": 4, "max_trials": 0})
    assert capped == []


def test_grid_under_a_cap_keeps_a_uniform_subsample_of_the_grid():
    space = [LR, WD, Dim("momentum", 0.8, 0.98, log=False)]  # 4^3 = 64 configurations
    results = {}
    batch = search_batch("grid", {}, results, space, {"grid_points": 4, "seed": 0, "max_trials": 16})
    assert len(batch) == 16 and len({key(c) for c in batch}) == 16
    assert {c["lr"] for c in batch} == set(LR.grid(4))  # every lr value appears, not only the first rows'
    results.update({key(c): 1.0 for c in batch})
    assert search_batch("grid", {}, results, space, {"grid_points": 4, "seed": 0, "max_trials": 16}) == []


def test_planner_searches_then_reruns_the_best_and_the_defaults_on_the_other_seeds_without_any_process():
    settings = {"trials": 3, "seed": 0, "sampler": "halton", "seeds": 3}
    start = {"lr": 1e-3, "weight_decay": 0.1}
    results: dict = {}
    search = next_trials("random", start, [LR, WD], settings, results)
    assert len(search) == 3 and {seed for _, seed in search} == {0}
    results.update({(key(c), 0): abs(math.log10(c["lr"]) + 2) for c, _ in search})  # best: lr nearest 1e-2
    best = min(search, key=lambda pair: results[(key(pair[0]), 0)])[0]
    # then the best and the defaults on the scoring seeds 1, 2 (the selection was made on seed 0 alone)
    assert next_trials("random", start, [LR, WD], settings, results) == [(best, 1), (best, 2), (start, 1), (start, 2)]
    results.update({(key(c), s): 0.0 for c in (best, start) for s in (1, 2)})
    assert next_trials("random", start, [LR, WD], settings, results) == []  # done
    failed = {k: math.inf for k in results}  # every configuration failed: no seeds of a 'best'
    killed = {**{k: v for k, v in results.items() if k[1] == 0}, (key(search[1][0]), 0): None}
    assert next_trials("random", start, [LR, WD], settings, killed) == []  # nothing decided on partial results
    assert next_trials("random", start, [LR, WD], settings, failed) == []
    with pytest.raises(ValueError, match="unknown protocol 'bayes'"):
        next_trials("bayes", start, [LR, WD], settings, {})


def test_aliases_name_the_whole_zoo_and_the_cpu_workloads():
    expanded = expand_aliases(["optimizer=all", "workload=cpu", "seed=all"])
    assert expanded[0] == f"optimizer={','.join(sorted(p.stem for p in (CONF_DIR / 'optimizer').glob('*.yaml')))}"
    assert expanded[1:] == ["workload=quadratic,cnn_digits,lm_tiny", "seed=all"]  # (only those two keys)


def study_with_one_record(tmp_path, summary: dict) -> Study:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = OmegaConf.to_container(
            compose("config", ["workload=cnn_digits", f"results_dir={tmp_path}"]), resolve=True
        )
    study = Study("adamw", "cnn_digits", cfg, [], force=False)
    (config, _), *_ = study.next_trials()  # the default protocol: the defaults, once
    directory = study.run_dir(config, 0)
    directory.mkdir(parents=True)
    (directory / "summary.json").write_text(json.dumps(summary_record(**summary)))
    return study


def test_the_best_is_shown_in_the_metrics_own_sign_and_a_failed_configuration_is_never_best(tmp_path):
    accuracy = {"name": "accuracy", "lower_is_better": False}
    done = {"status": "completed", "metric": accuracy, "final": {"accuracy": 0.994, "loss": 0.03}}
    best = study_with_one_record(tmp_path / "a", done).record("python -m suite.sweep", done=True)["best"]
    assert best["metric"] == "accuracy" and best["median"] == 0.994 and best["median_score"] == -0.994
    assert best["in_sample"]  # seed 0 alone: the selection seed's own result
    failed = {"status": "failed", "metric": accuracy, "final": None, "error": "RuntimeError: boom"}
    record = study_with_one_record(tmp_path / "f", failed).record("python -m suite.sweep", done=True)
    assert record["best"] is None and record["status"] == "incomplete"


@pytest.mark.slow
def test_sweep_runs_studies_and_a_rerun_launches_nothing(tmp_path):
    args = [*QUICK, "optimizer=adamw,sgd", "tuning=random", "tuning.trials=3", "tuning.seeds=2", "cluster.slots=2"]
    proc = sweep(*args, f"results_dir={tmp_path}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for optimizer in ("adamw", "sgd"):
        study = json.loads((tmp_path / "quadratic" / optimizer / "study-random" / "study.json").read_text())
        assert study["status"] == "completed" and study["budget"]["configurations"] == 3
        trials = study["trials"]
        # the search on seed 0, then the best and the defaults on the scoring seed 1 (tuned versus default is
        # measured on a seed that played no part in the selection)
        assert len(trials) == 3 + 2 and all(t["status"] == "completed" for t in trials)
        finished = [t for t in trials if t["seed"] == 0]
        assert study["best"]["config"] == min(finished, key=lambda t: t["score"])["config"]  # selection at the end
        assert study["best"]["seeds"] == 1 and not study["best"]["in_sample"]  # scored on seed 1 alone
        scored = [t["config"] for t in trials if t["seed"] == 1]
        assert scored == sorted([study["best"]["config"], study["settings"]["start"]], key=lambda c: sorted(c.items()))
        assert study["budget"]["configurations"] == 3  # the defaults' scoring runs are not search configurations
    summaries = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("summary.json")}
    assert len(summaries) == 2 * 5

    again = sweep(*args, f"results_dir={tmp_path}")
    assert again.returncode == 0, again.stderr
    assert "round" not in again.stdout  # nothing launched, nothing run twice
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("summary.json")} == summaries

    grown = sweep(
        *[a if a != "optimizer=adamw,sgd" else "optimizer=adamw,sgd,lion" for a in args], f"results_dir={tmp_path}"
    )
    assert grown.returncode == 0, grown.stderr
    assert "round 1: 3 trial(s) in 1 study(ies); 10 finished in an earlier run are kept" in grown.stdout


@pytest.mark.slow
def test_coordinate_descent_study_and_refusal_of_other_settings(tmp_path):
    args = [*QUICK, "optimizer=sgd", "tuning=coordinate_descent", "tuning.grid_points=2", "tuning.max_trials=null"]
    args.append(f"results_dir={tmp_path}")
    proc = sweep(*args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    path = tmp_path / "quadratic" / "sgd" / "study-coordinate_descent" / "study.json"
    study = json.loads(path.read_text())
    logs = sorted((path.parent / "logs").glob("*.log"))
    workers = {
        line.rsplit("slot worker ", 1)[1]
        for log in logs
        for line in log.read_text().splitlines()
        if "# slot worker" in line
    }
    assert len(logs) >= 3 and len(workers) == 1  # every round ran in the slot's one worker process
    tried = [t["config"] for t in study["trials"] if t["seed"] == 0]
    assert study["settings"]["start"] in tried  # from the defaults
    space = dims(study["settings"]["search_space"])
    best = study["best"]["config"]
    assert all(n in tried for n in neighbours(best, space, 2))  # stopped: no single change of the best is untried
    assert all(t == study["settings"]["start"] or any(t in neighbours(o, space, 2) for o in tried) for t in tried)
    before = path.read_text()
    changed = sweep(*args, "optimizer.search_space.lr.high=3.0")
    assert changed.returncode == 2 and "differs: search_space" in changed.stderr
    assert len(changed.stderr.strip().splitlines()) == 1 and path.read_text() == before


@pytest.mark.slow
def test_refused_configurations_are_never_launched_and_the_table_says_rerunning_repeats_them(tmp_path):
    space = "optimizer.search_space={betas.1:{low:0.9,high:1.5,scale:linear}}"  # with lr, weight decay: 2 x 2 x 2
    args = [*QUICK, "optimizer=adamw", "tuning=grid", "tuning.grid_points=2", space, f"results_dir={tmp_path}"]
    proc = sweep(*args)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "4 trial(s) did not finish" in proc.stdout  # beta2 = 1.5 is refused by AdamW; the other four ran
    assert "every value of betas must be in [0, 1)" in proc.stdout  # the refusal, in the table
    assert "4 of them were refused or raised an error" in proc.stdout and "rerunning continues" not in proc.stdout
    study = json.loads((tmp_path / "quadratic" / "adamw" / "study-grid" / "study.json").read_text())
    statuses = {t["config"]["betas.1"]: t["status"] for t in study["trials"]}
    assert statuses == {0.9: "completed", 1.5: "refused"} and len(study["trials"]) == 8
    assert study["status"] == "incomplete"
    assert len(list(tmp_path.rglob("summary.json"))) == 4  # the refused four were never launched


def test_failure_table_offers_a_rerun_only_for_trials_a_rerun_can_finish():
    def row(status, reason):
        return {"status": status, "reason": reason}

    assert rerun_may_help(row(None, "never started"))  # the sweep stopped before it
    assert rerun_may_help(row("running", "running"))  # killed mid-way: resumes from its checkpoint
    assert rerun_may_help(row("failed", "MemoryError: out of memory"))
    assert not rerun_may_help(row("failed", "RuntimeError: shapes do not match"))  # deterministic
    assert not rerun_may_help(row("refused", "optimizer adamw: every value of betas must be in [0, 1)"))


@pytest.mark.parametrize(
    "args, message",
    [
        (["tuning=bayes"], "unknown tuning 'bayes'"),
        (["optimizer.search_space.lr.low=1"], "low 1 must be below high"),
        (["optimizer.search_space.lr.low=-1"], "a log scale needs positive values"),
        (["--fast"], "unknown option --fast"),
        (["optimizer.search_space.betas.1.high=1.5"], "unknown key 'optimizer.search_space.betas.1.high'"),
    ],
)
def test_bad_sweep_input_is_one_line(tmp_path, args, message):
    proc = sweep(*QUICK, *args, f"results_dir={tmp_path}")
    assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(shutil.which("sbatch") is not None, reason="this machine has sbatch")
def test_slurm_preset_without_sbatch_is_refused(tmp_path):
    proc = sweep(*QUICK, "cluster=slurm", f"results_dir={tmp_path}")
    assert proc.returncode == 2 and "sbatch" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_sweep_runs_the_tasks_of_a_representative_subset(tmp_path):
    subset = tmp_path / "chosen.yaml"  # as `python -m analysis subset` writes it: a workload at a budget
    subset.write_text("name: chosen\ntasks: [quadratic@2560.0, quadratic_400@1280.0]\n")
    proc = sweep("subset=" + str(subset), "optimizer=sgd", "tuning=default", "eval_every=5", f"results_dir={tmp_path}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    done = {p.parent.parent.name: json.loads(p.read_text())["budget"]["steps"] for p in tmp_path.rglob("summary.json")}
    assert sorted(done.values()) == [10, 20]  # 2560 and 1280 examples in batches of 128
    assert (tmp_path / "quadratic" / "sgd" / "study-default-2560tokens" / "study.json").is_file()
    missing = sweep("subset=nothing", f"results_dir={tmp_path}")
    assert missing.returncode == 2 and "unknown subset 'nothing'" in missing.stderr


@pytest.mark.slow
def test_a_named_study_brings_its_optimizers_tasks_and_overrides_and_the_command_line_wins(tmp_path):
    study = tmp_path / "mine.yaml"  # as conf/study/reference_cpu.yaml, smaller
    study.write_text(
        "optimizers: [sgd, adamw]\ntasks: [quadratic@1280, quadratic@2560]\n"
        f"overrides: [tuning=default, eval_every=5, results_dir={tmp_path}/elsewhere]\n"
    )
    proc = sweep(f"study={study}", "optimizer=sgd", f"results_dir={tmp_path}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    studies = sorted(p.parent.name for p in tmp_path.rglob("study.json"))
    assert studies == ["study-default-1280tokens", "study-default-2560tokens"]  # sgd only, here, at both budgets
    assert not (tmp_path / "elsewhere").exists()
    assert parse(["study=reference_cpu"])[0] == sorted(NAMES) and len(parse(["study=reference_cpu"])[1]) == 9


def test_progress_counts_the_rounds_trials_as_they_end_and_estimates_what_is_left(tmp_path):
    clock = [1000.0]
    dirs = [tmp_path / f"t{i}" for i in range(4)]
    for d in dirs:
        d.mkdir()
    old = dirs[3] / "summary.json"  # a failed record from an earlier invocation, relaunched in this round
    old.write_text(json.dumps(summary_record(status="failed")))
    os.utime(old, (900.0, 900.0))
    progress = Progress(dirs, clock=lambda: clock[0])
    assert progress.line() == "  0/4 trials done · 0 failed · 0 diverged · 0m00s elapsed"
    for d, status in zip(dirs, ("completed", "diverged", "running"), strict=False):
        (d / "summary.json").write_text(json.dumps(summary_record(status=status)))
        os.utime(d / "summary.json", (1010.0, 1010.0))
    clock[0] = 1060.0
    assert progress.line() == "  2/4 trials done · 0 failed · 1 diverged · 1m00s elapsed · about 1m00s left"
    old.write_text(json.dumps(summary_record(status="failed")))
    os.utime(old, (1070.0, 1070.0))
    clock[0] = 1090.0
    assert "3/4 trials done · 1 failed" in progress.line()


def alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


@pytest.mark.slow
def test_ctrl_c_stops_every_slot_checkpoints_running_trials_and_the_rerun_resumes_them(tmp_path):
    """Two slots each running a long trial; Ctrl-C (SIGINT to the driver) stops the sweep without a traceback,
    leaves no process behind, launches none of the queued trials, and each running trial is checkpointed, so the
    rerun resumes it."""
    args = [
        "workload=quadratic",
        "workload.steps=400000",
        "eval_every=400000",
        "log_every=1000",
        "optimizer=sgd",
        "tuning=random",
        "tuning.trials=4",
        "cluster.slots=2",
        f"results_dir={tmp_path}",
    ]

    def start() -> subprocess.Popen:
        argv = [sys.executable, "-m", "suite.sweep", *args]
        return subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def statuses() -> list[dict]:
        return [json.loads(p.read_text()) for p in tmp_path.rglob("summary.json")]

    proc = start()
    wait_for(lambda: len([s for s in statuses() if s["status"] == "running"]) == 2)
    time.sleep(1.0)
    slots = children(proc.pid)
    assert len(slots) == 2  # one worker per slot
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "Traceback" not in err and "stopped" in out, out + err
    time.sleep(0.5)
    assert not [pid for pid in slots if alive(pid)]  # no slot or trial runs on
    assert [s["status"] for s in statuses()] == ["running", "running"]  # the two queued ones never started
    checkpoints = list(tmp_path.rglob("checkpoint.pt"))
    assert len(checkpoints) == 2

    again = start()  # resumes both from their checkpoints
    wait_for(lambda: sum(bool(s.get("resumed_from_steps")) for s in statuses()) == 2)
    slots = children(again.pid)
    again.send_signal(signal.SIGINT)
    out, err = again.communicate(timeout=60)
    assert again.returncode == 130 and "Traceback" not in err, out + err
    assert all(s["resumed_from_steps"][0] > 0 for s in statuses())
    time.sleep(0.5)
    assert not [pid for pid in slots if alive(pid)]
