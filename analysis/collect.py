"""Collect run directories into one tidy table (one row per trial) and a long table of curves (one row per
logged step), incrementally: a run directory whose files have not changed since the last collect is not re-read.

The curves are a directory of parquet parts (`<stem>.curves.parquet/part-N.parquet`, readable as one table by
pandas and pyarrow), so an incremental collect writes a small new part instead of rewriting every curve; the index
(`<stem>.index.json`) maps each run directory to its file signature and its part."""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.json as pa_json
import pyarrow.parquet as pq
import yaml

from suite.layout import CONFIG, METRICS, RECORD_FILES, SUMMARY, is_record_dir_name
from suite.schema import process_gone

SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's loader is about 10x faster
JSON_READ = pa_json.ReadOptions(block_size=1 << 24)  # rows of many runs parsed in large multi-threaded blocks
RUNS_PER_PART = 1000  # run directories read, parsed and written as one curve part at a time


@dataclass(frozen=True)
class Run:
    row: dict
    metrics: bytes  # the whole lines of metrics.jsonl
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


def read_metrics(path: Path) -> tuple[bytes, str | None]:
    """The whole lines of metrics.jsonl; a half-written last line (a kill mid-append) is dropped with a note."""
    data = path.read_bytes() if path.is_file() else b""
    if data and not data.endswith(b"\n"):
        return data[: data.rfind(b"\n") + 1], "truncated last line of metrics.jsonl dropped"
    return data, None


def parse_lines(data: bytes, where: str) -> tuple[pa.Table, str | None]:
    """One run's metrics rows with Python's JSON parser (the fallback when a batch does not parse); an unparseable
    last line is dropped with a note, an unparseable earlier line makes the run unusable."""
    lines = data.splitlines()
    rows, note = [], None
    for i, line in enumerate(lines):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            if i != len(lines) - 1:
                raise ValueError(f"{where}: metrics.jsonl line {i + 1} is not JSON") from e
            note = "truncated last line of metrics.jsonl dropped"
    return pa.Table.from_pylist(rows), note


def curves_table(runs: list[tuple[str, bytes]]) -> tuple[pa.Table, list[tuple[str, str]], set[str]]:
    """The metrics rows of many runs in one multi-threaded pyarrow parse, with a run_dir column; if the batch does
    not parse (a damaged line), run by run. Returns the table, the problems (reasons by run) and the runs left out
    because a line before their last is damaged (a damaged last line is only dropped)."""
    counts = [data.count(b"\n") for _, data in runs]
    try:
        table = pa_json.read_json(io.BytesIO(b"".join(data for _, data in runs)), read_options=JSON_READ)
        names = np.repeat(np.array([d for d, _ in runs], dtype=object), counts)
        return table.add_column(0, "run_dir", pa.array(names, pa.string())), [], set()
    except pa.ArrowInvalid:
        tables, problems, skipped = [], [], set()
        for directory, data in runs:
            try:
                table, note = parse_lines(data, directory)
            except ValueError as e:
                problems.append((directory, str(e)))
                skipped.add(directory)
                continue
            if note:
                problems.append((directory, note))
            tables.append(table.add_column(0, "run_dir", pa.array([directory] * len(table), pa.string())))
        if not tables:  # every run of the batch damaged
            return pa.table({"run_dir": pa.array([], pa.string())}), problems, skipped
        return pa.concat_tables(tables, promote_options="permissive"), problems, skipped


def read_run(directory: Path) -> Run:
    """One run directory; raises ValueError naming the problem when it cannot be used."""
    for name in (SUMMARY, CONFIG):
        if not (directory / name).is_file():
            raise ValueError(f"missing {name}")
    try:
        summary = json.loads((directory / SUMMARY).read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{SUMMARY} is not JSON") from e
    config = yaml.load((directory / CONFIG).read_text(), Loader=SafeLoader)
    if not isinstance(summary, dict) or not isinstance(config, dict):
        raise ValueError(f"{SUMMARY} or {CONFIG} does not hold a mapping (not a run record)")
    metrics, note = read_metrics(directory / METRICS)
    if process_gone(summary):
        pid = summary["provenance"]["pid"]
        summary = {**summary, "error": f"killed: its process (pid {pid} on this host) is gone; rerun it to resume"}
        note = "; ".join(filter(None, [note, f"status running, but {summary['error']}"]))
    row = {"run_dir": str(directory), "trial_id": directory.parent.name}  # (layout: <trial_id>/seed<seed>/)
    row.update(flatten(summary))
    row.update(flatten(config, "config."))
    # The columns the analyses read (docs/analysis.md: Analysis columns), one name per quantity.
    metric = summary.get("metric") or {"name": "loss", "lower_is_better": True}
    final = summary.get("final") or {}
    optimizer = {k: v for k, v in (config.get("optimizer") or {}).items() if k not in ("name", "search_space")}
    row["final_metric"] = final.get(metric["name"])
    row["metric_name"] = metric["name"]
    row["lower_is_better"] = metric["lower_is_better"]
    row["hparams"] = json.dumps(optimizer, sort_keys=True)
    row["default"] = summary.get("default_hyperparameters")
    row["lr"] = optimizer.get("lr")
    row["budget_tokens"] = (summary.get("budget") or {}).get("tokens")
    row["time_to_target"] = (summary.get("time_to_target") or {}).get("seconds")
    row["tokens_to_target"] = (summary.get("time_to_target") or {}).get("tokens")
    return Run(row, metrics, note)


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
        for directory, subdirectories, files in os.walk(root):
            subdirectories[:] = [d for d in subdirectories if is_record_dir_name(d)]  # not .replaced/, .multirun/
            if any(name in files for name in RECORD_FILES):
                found.add(Path(directory))
    return sorted(found)


def companion_paths(out: Path) -> tuple[Path, Path]:
    return out.with_name(out.stem + ".curves.parquet"), out.with_name(out.stem + ".index.json")


def write_atomic(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def drop_runs(curves_dir: Path, parts: set[str], stale: set[str]) -> None:
    """Remove the rows of `stale` run directories from the given parts (a part left empty is deleted)."""
    for part in parts:
        path = curves_dir / part
        if not path.exists():
            continue
        table = pq.read_table(path)
        kept = table.filter(pc.invert(pc.is_in(table["run_dir"], pa.array(sorted(stale), pa.string()))))
        if len(kept):
            write_atomic(kept, path)
        else:
            path.unlink()


def read_curves(path: Path, run_dirs: set[str] | None = None, columns=None) -> pd.DataFrame:
    """The curves of the given runs (all when None), with the columns `columns(name)` accepts (all when None);
    parts whose columns differ (other metrics) are read under one unified schema."""
    parts = sorted(path.glob("part-*.parquet")) if path.is_dir() else []
    if not parts:
        return pd.DataFrame(columns=["run_dir"])
    schema = pa.unify_schemas([pq.read_schema(p) for p in parts], promote_options="permissive")
    names = [n for n in schema.names if columns is None or columns(n)]
    where = None if run_dirs is None else ds.field("run_dir").isin(sorted(run_dirs))
    return ds.dataset(parts, schema=schema).to_table(columns=names, filter=where).to_pandas()


def uniform_types(trials: pd.DataFrame) -> pd.DataFrame:
    """Columns whose values mix types (`cluster.slots` is `auto` in one record and 2 in another) stored as text, so
    that any mix of records loads; columns of one type keep it."""
    for column in [c for c in trials.columns if pd.api.types.is_object_dtype(trials[c])]:
        kinds = {type(v) for v in trials[column] if v is not None and not (isinstance(v, float) and np.isnan(v))}
        if len(kinds - {int, float}) and len(kinds) > 1:
            trials[column] = trials[column].map(lambda v: None if v is None or v != v else str(v))
    return trials


def write_trials(trials: pd.DataFrame, path: Path) -> None:
    """The trials table, atomically; a value that cannot be stored is reported with its column and record."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        trials.to_parquet(tmp, index=False)
    except (pa.ArrowException, ValueError, TypeError) as e:
        tmp.unlink(missing_ok=True)
        for column in trials.columns:
            for run, value in zip(trials.run_dir, trials[column], strict=True):
                try:
                    pa.array([value])
                except (pa.ArrowException, ValueError, TypeError):
                    raise ValueError(f"{run}: {column} = {value!r} cannot be stored ({e})") from e
        raise ValueError(f"the trials table cannot be stored: {e}") from e
    os.replace(tmp, path)


def collect(roots: list[Path], out: Path) -> tuple[pd.DataFrame, list[tuple[str, str]], int]:
    """Write `out` (trials), the curve parts and the index; returns the trials, the skipped or noted directories
    with reasons, and how many directories were (re-)read. Atomic: the new curve parts are written first under
    new names, then the trials table, then the stale rows are dropped and the index replaced; a failure removes
    what this collect wrote and leaves the previous outputs as they were."""
    curves_dir, index_path = companion_paths(out)
    index = json.loads(index_path.read_text()) if index_path.exists() and out.exists() else {}
    if not all(isinstance(entry, list) and len(entry) == 2 for entry in index.values()):
        index = {}  # not this version's index: collect from scratch
    old_trials = pd.read_parquet(out) if index else pd.DataFrame(columns=["run_dir"])
    curves_dir.mkdir(parents=True, exist_ok=True)
    referenced = {part for _, part in index.values()}
    for orphan in curves_dir.glob("part-*"):  # parts of an interrupted or earlier collect, not indexed
        if orphan.name not in referenced:
            orphan.unlink()

    directories = run_directories(roots)
    current = {str(d): signature(d) for d in directories}
    unchanged = {d for d, sig in current.items() if d in index and index[d][0] == sig}
    stale = set(index) - unchanged
    written: list[Path] = []
    try:
        trials, new_index, problems = read_new(directories, unchanged, index, current, old_trials, curves_dir, written)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_trials(uniform_types(trials), out)
    except BaseException:
        for part in written:
            part.unlink(missing_ok=True)
        raise
    drop_runs(curves_dir, {index[d][1] for d in stale}, stale)
    index_path.with_name(index_path.name + ".tmp").write_text(json.dumps(new_index, indent=0))
    os.replace(index_path.with_name(index_path.name + ".tmp"), index_path)
    return trials, problems, len(directories) - len(unchanged)


def read_new(directories, unchanged, index, current, old_trials, curves_dir, written):
    """Read the new or changed run directories a part at a time, writing each part's curves (recorded in
    `written`); returns the trials table, the new index and the problems."""
    new_index = {d: index[d] for d in unchanged}
    next_part = max([int(p.split("-")[1].split(".")[0]) for _, p in new_index.values()] + [-1]) + 1
    todo = [d for d in directories if str(d) not in unchanged]
    rows, problems = [], []
    for first in range(0, len(todo), RUNS_PER_PART):  # a part at a time: memory stays bounded
        runs = []
        for directory in todo[first : first + RUNS_PER_PART]:
            try:
                runs.append(read_run(directory))
            except (ValueError, OSError, yaml.YAMLError) as e:
                problems.append((str(directory), str(e)))
                continue
            if runs[-1].note:
                problems.append((str(directory), runs[-1].note))
        if not runs:
            continue
        curves, damaged, skipped = curves_table([(run.row["run_dir"], run.metrics) for run in runs])
        problems += damaged
        kept = [run.row for run in runs if run.row["run_dir"] not in skipped]
        part = f"part-{next_part:06d}.parquet"
        next_part += 1
        written.append(curves_dir / part)
        write_atomic(curves, curves_dir / part)
        new_index.update({row["run_dir"]: [current[row["run_dir"]], part] for row in kept})
        rows += kept
    old = old_trials[old_trials.run_dir.isin(unchanged)]
    trials = pd.concat([old, pd.DataFrame(rows)], ignore_index=True) if len(old) else pd.DataFrame(rows)
    return trials, new_index, problems
