"""Collect run directories into one tidy table (one row per trial) and a long table of curves (one row per
logged step), incrementally: a run directory whose files have not changed since the last collect is not re-read."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

RECORD_FILES = ("config.yaml", "summary.json", "metrics.jsonl")


@dataclass(frozen=True)
class Run:
    row: dict
    curve: pd.DataFrame
    note: str | None  # a recoverable problem, e.g. a truncated last line


def flatten(obj: dict, prefix: str = "") -> dict:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists are kept as JSON strings so every cell is a scalar."""
    flat = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        elif isinstance(value, list):
            flat[name] = json.dumps(value)
        else:
            flat[name] = value
    return flat


def read_metrics(path: Path) -> tuple[list[dict], str | None]:
    """Rows of metrics.jsonl; a half-written last line (a kill mid-append) is dropped with a note."""
    lines = path.read_text().splitlines()
    rows = []
    for i, line in enumerate(lines):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            if i == len(lines) - 1:
                return rows, "truncated last line of metrics.jsonl dropped"
            raise ValueError(f"metrics.jsonl line {i + 1} is not JSON") from e
    return rows, None


def read_run(directory: Path) -> Run:
    """One run directory; raises ValueError naming the problem when it cannot be used."""
    for name in ("summary.json", "config.yaml"):
        if not (directory / name).is_file():
            raise ValueError(f"missing {name}")
    try:
        summary = json.loads((directory / "summary.json").read_text())
    except json.JSONDecodeError as e:
        raise ValueError("summary.json is not JSON") from e
    config = yaml.safe_load((directory / "config.yaml").read_text())
    metrics, note = read_metrics(directory / "metrics.jsonl") if (directory / "metrics.jsonl").is_file() else ([], None)
    row = {"run_dir": str(directory), "trial_id": directory.parent.name}
    row.update(flatten(summary))
    row.update(flatten(config, "config."))
    # The columns the analyses read, named as in their documented input schemas.
    row["scale"] = summary.get("workload")
    row["final_loss"] = (summary.get("final") or {}).get("loss")
    row["time_to_target"] = (summary.get("time_to_target") or {}).get("seconds")
    curve = pd.DataFrame(metrics)
    curve.insert(0, "run_dir", str(directory))
    return Run(row, curve, note)


def signature(directory: Path) -> str:
    """Size and modification time of each record file: changes whenever a trial writes."""
    parts = []
    for name in RECORD_FILES:
        path = directory / name
        stat = path.stat() if path.exists() else None
        parts.append(f"{name}:{stat.st_size}:{stat.st_mtime_ns}" if stat else f"{name}:-")
    return "|".join(parts)


def run_directories(roots: list[Path]) -> list[Path]:
    found = set()
    for root in roots:
        for name in RECORD_FILES:
            found.update(p.parent for p in root.rglob(name))
    return sorted(found)


def companion_paths(out: Path) -> tuple[Path, Path]:
    return out.with_name(out.stem + ".curves.parquet"), out.with_name(out.stem + ".index.json")


def collect(roots: list[Path], out: Path) -> tuple[pd.DataFrame, list[tuple[str, str]], int]:
    """Write `out` (trials), `<stem>.curves.parquet` and `<stem>.index.json`; returns the trials, the skipped
    or noted directories with reasons, and how many directories were (re-)read."""
    curves_path, index_path = companion_paths(out)
    index = json.loads(index_path.read_text()) if index_path.exists() and out.exists() else {}
    old_trials = pd.read_parquet(out) if index else pd.DataFrame(columns=["run_dir"])
    old_curves = pd.read_parquet(curves_path) if index and curves_path.exists() else pd.DataFrame(columns=["run_dir"])
    directories = run_directories(roots)
    current = {str(d): signature(d) for d in directories}
    unchanged = {d for d, sig in current.items() if index.get(d) == sig}
    rows, curves, problems = [], [], []
    for directory in directories:
        if str(directory) in unchanged:
            continue
        try:
            run = read_run(directory)
        except (ValueError, OSError, yaml.YAMLError) as e:
            problems.append((str(directory), str(e)))
            current.pop(str(directory))
            continue
        rows.append(run.row)
        curves.append(run.curve)
        if run.note:
            problems.append((str(directory), run.note))
    trials = pd.concat([old_trials[old_trials.run_dir.isin(unchanged)], pd.DataFrame(rows)], ignore_index=True)
    curve_table = pd.concat([old_curves[old_curves.run_dir.isin(unchanged)], *curves], ignore_index=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    trials.to_parquet(out, index=False)
    curve_table.to_parquet(curves_path, index=False)
    index_path.write_text(json.dumps(current, indent=0))
    return trials, problems, len(directories) - len(unchanged)
