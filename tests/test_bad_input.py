"""Bad input: one line on stderr, exit code 2, before anything runs, and the results directory byte-identical.

CASES is the table docs/bad-input.md shows (a test checks the two agree): what a user can type or
meet, for `python -m suite`, `python -m suite.sweep` and `python -m analysis`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from suite.layout import run_dir
from tests.conftest import FAST, ROOT, compose_config, summary_record
from workloads.lm.data import write_shard
from workloads.vision.data import write_cifar_file

SWEEP = ["workload=quadratic", "workload.steps=20", "eval_every=10", "log_every=5"]  # the sweep's fast study


def record_of(results: Path, args: list[str]) -> Path:
    """The run directory `python -m suite ARGS` would write."""
    return run_dir(OmegaConf.to_container(compose_config([*args, f"results_dir={results}"]), resolve=True))


def damaged_summary(results: Path, tmp: Path) -> None:
    directory = record_of(results, FAST)
    directory.mkdir(parents=True)
    (directory / "summary.json").write_text('{"status": "compl')  # a disk filled up mid-write, by another tool


def damaged_checkpoint(results: Path, tmp: Path) -> None:
    directory = record_of(results, FAST)
    directory.mkdir(parents=True)
    (directory / "checkpoint.pt").write_bytes(b"PK\x03\x04 not a checkpoint")


def foreign_checkpoint(results: Path, tmp: Path) -> None:
    import torch

    directory = record_of(results, FAST)
    directory.mkdir(parents=True)
    torch.save({"weights": torch.zeros(3)}, directory / "checkpoint.pt")


def damaged_study(results: Path, tmp: Path) -> None:
    study = results / "quadratic" / "adamw" / "study-default"
    study.mkdir(parents=True)
    (study / "study.json").write_text("[1, 2")


def other_study(results: Path, tmp: Path) -> None:
    study = results / "quadratic" / "adamw" / "study-default"
    study.mkdir(parents=True)
    settings = {"protocol": "default", "seeds": 5}
    other = {"optimizer": "adamw", "workload": "quadratic", "protocol": "default", "settings": settings, "budget": {}}
    (study / "study.json").write_text(json.dumps({**other, "trials": [], "best": None, "status": "completed"}))


def truncated_shard(results: Path, tmp: Path) -> None:
    write_shard(tmp / "data_train_000001.bin", np.arange(4096) % 50257)
    write_shard(tmp / "data_val_000000.bin", np.arange(4096) % 50257)
    path = tmp / "data_val_000000.bin"
    path.write_bytes(path.read_bytes()[:-100])


def shard_with_bad_magic(results: Path, tmp: Path) -> None:
    write_shard(tmp / "data_train_000001.bin", np.arange(4096) % 50257)
    write_shard(tmp / "data_val_000000.bin", np.arange(4096) % 50257)
    raw = bytearray((tmp / "data_val_000000.bin").read_bytes())
    raw[:4] = np.array([123], dtype="<i4").tobytes()
    (tmp / "data_val_000000.bin").write_bytes(bytes(raw))


def truncated_cifar(results: Path, tmp: Path) -> None:
    rng = np.random.default_rng(0)
    (tmp / "cifar").mkdir()
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        write_cifar_file(tmp / "cifar" / name, rng.integers(0, 256, (4, 3, 32, 32)), rng.integers(0, 10, 4))
    path = tmp / "cifar" / "test_batch.bin"
    path.write_bytes(path.read_bytes()[:-7])


def unknown_subset_workload(results: Path, tmp: Path) -> None:
    (tmp / "chosen.yaml").write_text("name: chosen\ntasks: [quadratic@2560, imagenet_1k]\n")


def results_is_a_file(results: Path, tmp: Path) -> None:
    (tmp / "a-file").write_text("not a directory")


def study_without_n(results: Path, tmp: Path) -> None:
    """A finished grid study whose runs record no parameter count (written by an older version, say)."""
    for workload in ("quadratic", "quadratic_400"):
        run = tmp / workload / "adamw" / "t0" / "seed0"
        run.mkdir(parents=True)
        (run / "summary.json").write_text(json.dumps(summary_record(budget={"steps": 20})))  # (no N)
        study = {
            "optimizer": "adamw",
            "workload": workload,
            "protocol": "grid",
            "status": "completed",
            "settings": {"search_space": {"lr": {"low": 0.001, "high": 1.0, "scale": "log"}}},
            "budget": {},
            "trials": [
                {
                    "trial": "t0",
                    "config": {"lr": 0.1},
                    "seed": 0,
                    "status": "completed",
                    "score": 1.0,
                    "run_dir": str(run),
                }
            ],
            "best": {"trial": "t0", "config": {"lr": 0.1}},
        }
        study["trials"][0]["run_dir"] = str(run)
        (tmp / workload / "adamw" / "study-grid").mkdir(parents=True)
        (tmp / workload / "adamw" / "study-grid" / "study.json").write_text(json.dumps(study))


def a_table_of_two_optimizers(results: Path, tmp: Path) -> None:
    (tmp / "t.csv").write_text("optimizer,workload,final_metric\nadamw,w,1.0\nmuon,w,0.9\n")


def a_file(results: Path, tmp: Path) -> None:
    (tmp / "a-file").write_text("not a directory")


def foreign_directory(results: Path, tmp: Path) -> None:
    (results / "photos").mkdir()
    (results / "photos" / "cat.jpg").write_bytes(b"\xff\xd8")


@dataclass(frozen=True)
class Case:
    command: str  # suite, sweep or analysis
    args: tuple[str, ...]  # {results} and {tmp} are filled in
    message: str  # part of the one line on stderr
    setup: Callable[[Path, Path], None] | None = None
    fast: bool = True  # suite: with tests.conftest.FAST (lm_tiny's few steps)


CASES = {
    # wrong names
    "unknown optimizer": Case("suite", ("optimizer=adamz",), "valid: adam_mini, adamw, ademamix"),
    "unknown workload": Case("suite", ("workload=lm_huge",), "unknown workload 'lm_huge'"),
    "unknown schedule": Case("suite", ("schedule=cosin",), "valid: constant, cosine, linear, power, refined, rex, wsd"),
    "unknown data source": Case("suite", ("workload/data=fineweb",), "shards, stdlib_text, synthetic"),
    "unknown hyperparameter": Case("suite", ("optimizer.lrr=0.01",), "unknown key 'optimizer.lrr'; optimizer (adamw)"),
    "unknown top-level key": Case("suite", ("epochs=5",), "unknown key 'epochs'; top-level keys: checkpoint_every"),
    "unknown workload key": Case("suite", ("workload.layers=2",), "unknown key 'workload.layers'; workload (lm_tiny)"),
    "key appended with +": Case("suite", ("+epochs=5",), "unknown top-level key(s) epochs"),
    "several values without -m": Case("suite", ("optimizer=adamw,sgd",), "lists several values: add -m"),
    "an override with no key": Case("suite", ("=5",), "names no key"),
    "an unclosed list": Case("suite", ("optimizer.betas=[0.9",), "no viable alternative"),
    "an override with a colon": Case("suite", ("optimizer:adamw",), "is not a key=value override (missing EQUAL at"),
    "an override with a colon, to a sweep": Case("sweep", ("optimizer:adamw",), "(missing EQUAL at ':')"),
    "hyperparameter deleted": Case("suite", ("~optimizer.lr",), "optimizer adamw: lr missing"),
    # wrong types and ranges of hyperparameters
    "lr not a number": Case("suite", ("optimizer.lr=abc",), "optimizer adamw: lr must be a finite number, got 'abc'"),
    "negative lr": Case("suite", ("optimizer.lr=-0.001",), "optimizer adamw: lr must be positive"),
    "zero lr": Case("suite", ("optimizer.lr=0",), "lr must be positive"),
    "betas not a list": Case("suite", ("optimizer.betas=0.9",), "betas must be a list of 2 values"),
    "beta outside [0,1)": Case("suite", ("optimizer.betas=[0.9,1.0]",), "every value of betas must be in [0, 1)"),
    "weight decay a list": Case("suite", ("optimizer.weight_decay=[1]",), "weight_decay must be a finite number"),
    "unknown parameter role": Case("suite", ("optimizer.no_decay_roles=[embeding]",), "must be parameter roles"),
    "bad choice": Case("suite", ("optimizer=muon", "optimizer.adjust_lr_fn=rms"), "adjust_lr_fn must be one of"),
    "search range upside down": Case("suite", ("optimizer.search_space.lr.low=1",), "low 1 must be below high"),
    # wrong types and ranges of the workload, schedule and run settings
    "zero token budget": Case("suite", ("workload.tokens=0",), "workload.tokens must be a positive number"),
    "token budget a word": Case("suite", ("workload.tokens=many",), "workload.tokens must be a positive number"),
    "a language model too large for this CPU's memory": Case(
        "suite", ("optimizer=muon", "workload=lm_125m", "workload/data=synthetic"), "more than the", fast=False
    ),
    "an optimizer state too large for this machine": Case(
        "suite",
        ("optimizer=mfac", "workload=lm_125m", "workload/data=synthetic", "workload.micro_batch_size=1"),
        "optimizer mfac needs 325.9 GiB for its state",
        fast=False,
    ),
    "infinite token budget": Case("suite", ("workload.tokens=inf",), "workload.tokens must be a positive number (fin"),
    "token budget beyond a float": Case(
        "suite",
        ("workload=quadratic", "workload.tokens=1e400"),
        "workload.tokens must be a positive number (finite)",
        fast=False,
    ),
    "budget below one step": Case("suite", ("workload.tokens=100",), "less than one step"),
    "negative chinchilla": Case("suite", ("workload.chinchilla=-1",), "workload.chinchilla must be a positive number"),
    "batch not a multiple of micro-batch": Case("suite", ("workload.micro_batch_size=5",), "not a multiple"),
    "zero batch on the quadratic": Case(
        "suite",
        ("workload=quadratic", "workload.batch_size=0"),
        "workload.batch_size must be a positive integer",
        fast=False,
    ),
    "batch size a word": Case("suite", ("workload.batch_size=abc",), "workload.batch_size must be an integer"),
    "no shards fetched": Case("suite", ("workload/data=shards",), "python -m workloads.lm.fetch fineweb10B"),
    "bad precision": Case("suite", ("precision=fp8",), "precision must be one of auto, fp32, bf16"),
    "bad schedule fraction": Case("suite", ("schedule.warmup=1.5",), "warmup"),
    "seed not an integer": Case("suite", ("seed=1.5",), "seed must be a non-negative integer"),
    "zero eval interval": Case("suite", ("eval_every=0",), "eval_every must be a positive integer"),
    "divergence factor at most 1": Case("suite", ("divergence_factor=1",), "divergence_factor must be a number > 1"),
    "grad clip a word": Case("suite", ("grad_clip=abc",), "grad_clip must be a finite number"),
    "not a device": Case("suite", ("device=gpu",), "device='gpu' is not a device name"),
    "pause point outside the budget": Case("suite", ("pause_at=1.5",), "pause_at must be a fraction of the budget"),
    # names that become paths
    "optimizer name escaping": Case("suite", ("optimizer.name=../../x",), "unknown optimizer '../../x'"),
    "workload name escaping": Case("suite", ("workload.name=../x",), "workload name '../x' cannot be a directory"),
    "study name escaping": Case("sweep", (*SWEEP, "tuning.name=../../x"), "tuning name '../../x' cannot be a direc"),
    # data and records on disk
    "truncated token shard": Case(
        "suite", ("workload/data=shards", "workload.data.path={tmp}/data_*.bin"), "truncated", truncated_shard
    ),
    "token shard with a bad header": Case(
        "suite", ("workload/data=shards", "workload.data.path={tmp}/data_*.bin"), "bad magic", shard_with_bad_magic
    ),
    "truncated CIFAR-10 file": Case(
        "suite",
        ("workload=vit_tiny_cifar10", "workload.data.path={tmp}/cifar"),
        "not a whole number",
        truncated_cifar,
        False,
    ),
    "damaged summary.json": Case("suite", (), "summary.json is damaged; move it away", damaged_summary),
    "damaged checkpoint.pt": Case("suite", (), "checkpoint.pt is damaged or not a checkpoint", damaged_checkpoint),
    "checkpoint.pt of another program": Case("suite", (), "is damaged or not a checkpoint", foreign_checkpoint),
    "results directory is a file": Case("suite", ("results_dir={tmp}/a-file/r",), "is not writable", results_is_a_file),
    "read-only results directory": Case("suite", ("results_dir=/proc/optbench-results",), "is not writable"),
    # sweeps
    "read-only results directory for a sweep": Case(
        "sweep", (*SWEEP, "results_dir=/proc/optbench-results"), "is not writable"
    ),
    "damaged study.json": Case("sweep", SWEEP, "is not a study record", damaged_study),
    "study directory of another command": Case("sweep", SWEEP, "holds a study with other settings", other_study),
    "subset naming an unknown workload": Case(
        "sweep", ("subset={tmp}/chosen.yaml",), "names unknown workload(s) imagenet_1k", unknown_subset_workload
    ),
    "unknown subset": Case("sweep", ("subset=nothing",), "unknown subset 'nothing'"),
    "unknown named study": Case("sweep", ("study=nothing",), "unknown study 'nothing'"),
    "unknown sweep option": Case("sweep", (*SWEEP, "--fast"), "unknown option --fast"),
    "zero seeds": Case("sweep", (*SWEEP, "tuning.seeds=0"), "tuning.seeds must be an integer >= 1"),
    "zero local slots": Case("sweep", (*SWEEP, "cluster.slots=0"), "cluster.slots must be >= 1 or auto"),
    "trials a word": Case("sweep", (*SWEEP, "tuning=random", "tuning.trials=many"), "tuning.trials must be an integer"),
    "a key another protocol has": Case(
        "sweep", (*SWEEP, "tuning=pbt", "tuning.trials=8"), "unknown key 'tuning.trials'"
    ),
    "unknown early-stopping rule": Case(
        "sweep", (*SWEEP, "tuning=random", "tuning.early_stop=often"), "tuning.early_stop must be one of"
    ),
    "early stopping of a grid search": Case(
        "sweep", (*SWEEP, "tuning=grid", "+tuning.early_stop=curve"), "works with tuning=random only"
    ),
    "rungs out of order": Case(
        "sweep", (*SWEEP, "tuning=random", "tuning.early_stop=curve", "tuning.rungs=[0.5,0.25]"), "increasing fractions"
    ),
    "--force on a study in rungs": Case(
        "sweep", (*SWEEP, "tuning=random", "tuning.early_stop=halving", "--force"), "--force cannot rerun a study"
    ),
    "step_law for another optimizer": Case(
        "sweep", ("workload=lm_tiny", "optimizer=muon", "tuning=step_law"), "predicts AdamW's hyperparameters only"
    ),
    "step_law on a workload that is not a language model": Case(
        "sweep", (*SWEEP, "tuning=step_law"), "needs a language-model workload"
    ),
    "step_law with a batch size given": Case(
        "sweep", ("workload=lm_tiny", "tuning=step_law", "workload.batch_size=8"), "sets the batch size from the law"
    ),
    "transfer without tuning.from": Case("sweep", (*SWEEP, "tuning=transfer"), "needs tuning.from"),
    "transfer from a directory without studies": Case(
        "sweep", (*SWEEP, "tuning=transfer", "tuning.from=[{tmp}]"), "finished search studies of adamw found"
    ),
    "transfer from studies whose runs record no N": Case(
        "sweep", (*SWEEP, "tuning=transfer", "tuning.from=[{tmp}]"), "no non-embedding parameter count", study_without_n
    ),
    "refined schedule without a source run": Case("suite", ("schedule=refined",), "needs schedule.from=<run dir>"),
    "refined schedule from a missing run": Case(
        "suite", ("schedule=refined", "schedule.from={tmp}/nowhere"), "is not a run directory"
    ),
    # analysis
    "collect from a missing directory": Case("analysis", ("collect", "{tmp}/nowhere"), "no such results directory"),
    "publish from a missing directory": Case(
        "analysis", ("publish", "{tmp}/nowhere", "--out", "{tmp}/board"), "no such results directory"
    ),
    "report on an empty directory": Case("analysis", ("report", "{results}", "--out", "{tmp}/rep"), "no trials"),
    "report against a baseline that never ran": Case(
        "analysis",
        ("report", "{tmp}/t.csv", "--out", "{tmp}/rep", "--baseline", "adamz"),
        "--baseline adamz ran in none",
        a_table_of_two_optimizers,
    ),
    "report into a file": Case("analysis", ("report", "{results}", "--out", "{tmp}/a-file"), "is a file", a_file),
    "ranking by a metric that is not a loss": Case(
        "analysis", ("report", "{results}", "--out", "{tmp}/rep", "--rank-by", "cnn_digits=accuracy"), "--rank-by takes"
    ),
    "time to target in hours": Case(
        "analysis", ("report", "{results}", "--out", "{tmp}/rep", "--time", "hours"), "--time is seconds or tokens"
    ),
    "report on a foreign directory": Case(
        "analysis", ("report", "{results}", "--out", "{tmp}/rep"), "no trials", foreign_directory
    ),
    "table that is not a table": Case("analysis", ("speedup", "--table", "{tmp}/x.txt"), "no such table"),
    "prediction point outside the budget": Case("analysis", ("predict", "{results}", "--at", "1.5"), "--at is a fract"),
    "protocols of a directory without studies": Case("analysis", ("protocols", "{results}"), "no finished study.json"),
    "transfer fit of a directory without studies": Case("analysis", ("transfer", "{results}"), "a fit needs two"),
}


def snapshot(root: Path) -> dict:
    """Every path under root with its bytes (directories as None)."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


# Run as real subprocesses, to prove each entry point's wiring gives the same line; the rest run in this process,
# through the very functions `python -m ...` calls.
WIRING = ("unknown optimizer", "damaged summary.json", "an override with a colon, to a sweep", "report into a file")


def invoke(command: str, args: list[str]) -> subprocess.CompletedProcess:
    module = {"suite": "suite", "sweep": "suite.sweep", "analysis": "analysis"}[command]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=300, cwd=ROOT, env=env
    )


def invoke_in_process(command: str, args: list[str], capfd) -> subprocess.CompletedProcess:
    from analysis.__main__ import main as analysis
    from suite.__main__ import command as suite
    from suite.sweep import main as sweep

    capfd.readouterr()
    code = {"suite": suite, "sweep": sweep, "analysis": analysis}[command](list(args))
    out, err = capfd.readouterr()
    return subprocess.CompletedProcess(args, code, out, err)


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_refused_in_one_line_and_changes_nothing(name, tmp_path, capfd):
    case = CASES[name]
    results, tmp = tmp_path / "results", tmp_path / "tmp"
    results.mkdir()
    tmp.mkdir()
    (results / "earlier.txt").write_text("keep me")  # a user's earlier file, which no refusal may touch
    if case.setup:
        case.setup(results, tmp)
    args = [a.format(results=results, tmp=tmp) for a in case.args]
    if case.command != "analysis" and not any(a.startswith("results_dir=") for a in args):
        args.append(f"results_dir={results}")
    if case.command == "suite" and case.fast:
        args = [*FAST, *args]
    before = snapshot(results)
    proc = invoke(case.command, args) if name in WIRING else invoke_in_process(case.command, args, capfd)
    assert proc.returncode == 2, (proc.stdout[-2000:], proc.stderr[-2000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and case.message in lines[0], lines[0]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert snapshot(results) == before


def test_the_readme_lists_every_case():
    section = (ROOT / "docs" / "bad-input.md").read_text()
    listed = set(re.findall(r"^\| ([^|]+?) \|", section, flags=re.M)) - {"case"}
    assert listed >= set(CASES), sorted(set(CASES) - listed)
    assert set(WIRING) <= set(CASES) and {CASES[name].command for name in WIRING} == {"suite", "sweep", "analysis"}
