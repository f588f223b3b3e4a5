"""A published leaderboard: the report and the collected tables it was computed from, with where they came from
(the sweep commands, code versions, machines and compute) and the one command that regenerates the report from
the committed tables; and the check that the committed report is what the current code computes from them."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from analysis.collect import collect, companion_paths
from analysis.report import report
from suite.schema import studies

PROVENANCE = "provenance.json"
TRIALS = "trials.parquet"


def report_command(out: Path, baseline: str, time: str, rank_by: str) -> list[str]:
    command = ["python", "-m", "analysis", "report", str(out / TRIALS), "--out", str(out), "--baseline", baseline]
    return command + ["--time", time] + (["--rank-by", rank_by] if rank_by else [])


def counts(trials: pd.DataFrame, column: str) -> dict[str, int]:
    return {str(k): int(v) for k, v in trials[column].value_counts().items()} if column in trials else {}


def provenance(trials: pd.DataFrame, results: Path, command: list[str]) -> dict:
    """Where the published numbers come from: what ran them, on which code and machines, at what cost."""
    sweeps = sorted({study.get("command", "") for _, study in studies([results])} - {""})
    seconds = pd.to_numeric(trials.get("train_time_s"), errors="coerce")
    return {
        "regenerate": " ".join(command),
        "sweep_commands": sweeps,
        "code_versions": counts(trials, "provenance.git_commit"),
        "machines": counts(trials, "provenance.hostname"),
        "devices": counts(trials, "provenance.device"),
        "compute": {
            "trials": len(trials),
            "statuses": counts(trials, "status"),
            "timed_training_hours": round(float(seconds.sum()) / 3600, 3),
            "first_start": str(trials.get("provenance.start_time", pd.Series(dtype=str)).dropna().min()),
            "last_end": str(trials.get("provenance.end_time", pd.Series(dtype=str)).dropna().max()),
        },
    }


def publish(results: Path, out: Path, baseline: str, time: str, rank_by: str, rank_map: dict) -> Path:
    """Collect `results` into `out` (the trials table and its curves, no run directories), write the report there
    and provenance.json; returns provenance.json's path."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as scratch:
        trials, _, _ = collect([results], Path(scratch) / TRIALS)
        if trials.empty:
            raise ValueError(f"{results}: no trials to publish")
        shutil.copy2(Path(scratch) / TRIALS, out / TRIALS)
        curves = companion_paths(out / TRIALS)[0]
        shutil.rmtree(curves, ignore_errors=True)
        shutil.copytree(companion_paths(Path(scratch) / TRIALS)[0], curves)
    command = report_command(out, baseline, time, rank_by)
    report(pd.read_parquet(out / TRIALS), curves, out, str(out / TRIALS), baseline, time, rank_map)
    path = out / PROVENANCE
    path.write_text(json.dumps(provenance(trials, results, command), indent=1) + "\n")
    return path


def regenerated_differences(out: Path, main: Callable[[list[str]], int]) -> list[str]:
    """Regenerate the report's tables from the published trials (with the recorded command's options, run by `main`,
    analysis.__main__.main: the command line the provenance records) in a scratch directory and name every table
    that differs from the published one."""
    command = json.loads((out / PROVENANCE).read_text())["regenerate"].split()
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "copy"
        copy.mkdir()
        shutil.copy2(out / TRIALS, copy / TRIALS)
        shutil.copytree(companion_paths(out / TRIALS)[0], companion_paths(copy / TRIALS)[0])
        recorded = command[command.index("--out") + 1]  # (as published: relative to the repository's root)
        args = [a.replace(recorded, str(copy)) for a in command[3:]]  # after `python -m analysis`
        if main(args) != 0:
            return ["the report could not be regenerated"]
        differences = []
        for table in sorted((out / "tables").glob("*.csv")):
            fresh = copy / "tables" / table.name
            if not fresh.is_file():
                differences.append(f"{table.name}: no longer produced")
                continue
            try:
                pd.testing.assert_frame_equal(pd.read_csv(table), pd.read_csv(fresh), check_exact=False, rtol=1e-9)
            except AssertionError as e:
                differences.append(f"{table.name}: {str(e).splitlines()[0]}")
        produced = {p.name for p in (copy / "tables").glob("*.csv")} - {p.name for p in (out / "tables").glob("*.csv")}
        differences += [f"{name}: new, not published" for name in sorted(produced)]
        return differences
