"""The records' schema (suite/schema.py): status words, records that validate on load and save, a PBT member's
origin, the one selection rule, and the harness modules `analysis/` may import."""

from __future__ import annotations

import ast
import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from suite import SHARED
from suite.schema import (
    FINISHED,
    SEARCH_SEED,
    Origin,
    RecordError,
    TrialStatus,
    best_of,
    load_study,
    load_summary,
    mark_stopped,
    save_summary,
    scoring_seeds,
    summary_or_empty,
)
from tests.conftest import ROOT, summary_record


def test_a_status_is_its_plain_word_in_json_sets_formats_and_tables():
    assert json.dumps({"s": TrialStatus.DIVERGED}) == '{"s": "diverged"}'
    assert f"{TrialStatus.PAUSED}" == str(TrialStatus.PAUSED) == "paused"
    assert "completed" in set(FINISHED) and TrialStatus.FAILED in {"failed"}
    column = pd.Series(["completed", "failed", "diverged", "stopped_early"])
    assert column.isin(FINISHED).tolist() == [True, False, True, False]


def test_summaries_are_checked_when_read_and_written(tmp_path):
    path = tmp_path / "summary.json"
    assert load_summary(path) is None
    save_summary(path, summary_record())
    assert load_summary(path)["final"] == {"loss": 1.5}
    for damaged in ('{"status": "completed"}', "[1, 2]", "{not json", json.dumps(summary_record(status="done"))):
        path.write_text(damaged)
        with pytest.raises(RecordError, match="summary.json is damaged; move it away"):
            load_summary(path)
        assert summary_or_empty(path) == {}
    with pytest.raises(RecordError):
        save_summary(path, summary_record(status="refused"))  # (a study's word for a trial, never a run's)
    assert path.read_text() == json.dumps(summary_record(status="done"))  # nothing written


def test_a_study_decision_marks_a_paused_run_stopped_early(tmp_path):
    path = tmp_path / "summary.json"
    save_summary(path, summary_record(status="paused"))
    mark_stopped(path, "halving", 0.25, tmp_path / "study-x", current=2.0, stop=True)
    summary = load_summary(path)
    assert summary["status"] == "stopped_early"
    assert summary["early_stop"] == {
        "rule": "halving",
        "rung": 0.25,
        "study": str(tmp_path / "study-x"),
        "current": 2.0,
        "stop": True,
    }


def test_a_damaged_study_record_is_refused_in_one_line(tmp_path):
    path = tmp_path / "study.json"
    path.write_text(json.dumps({"optimizer": "adamw", "settings": {}, "trials": []}))
    with pytest.raises(RecordError, match=r"study.json is not a study record; move it away \(lacks workload"):
        load_study(path)


@pytest.mark.parametrize(
    "text, origin",
    [
        ("0123456789/seed0@40", Origin(trial="0123456789", seed=0, step=40)),
        ("abcdef0123/seed3@7", Origin(trial="abcdef0123", seed=3, step=7)),
        ("population-pbt.v2@0", Origin(population="pbt.v2")),
    ],
)
def test_init_from_parses_and_formats_back(text, origin):
    assert Origin.parse(text) == origin
    assert str(origin) == text
    assert origin.run == (None if origin.population else text.partition("@")[0])


@pytest.mark.parametrize("text", ["0123456789/seed0", "population-x@5", "../x/seed0@1", "", 3, None])
def test_a_malformed_init_from_is_refused(text):
    with pytest.raises(ValueError, match="init_from must be"):
        Origin.parse(text)


def test_the_selection_rule_takes_the_lowest_score_and_breaks_ties_by_values_as_numbers():
    def key(**values):
        return tuple(sorted(values.items()))

    scores = {key(lr=4.17e-05): 1.0, key(lr=5.57e-07): 1.0, key(lr=0.1): 2.0}
    assert best_of(scores) == (key(lr=5.57e-07), 1.0)  # (as text, '4.17e-05' < '5.57e-07')
    assert best_of({key(lr=0.1): math.inf, key(lr=0.2): 3.0}) == (key(lr=0.2), 3.0)
    assert best_of({}) is None
    # the analysis's keys are the hyperparameters as JSON text: the same rule through `values`
    text = {
        json.dumps({"lr": 4.17e-05, "betas": [0.9, 0.95]}): 1.0,
        json.dumps({"lr": 5.57e-07, "betas": [0.9, 0.95]}): 1.0,
    }
    assert json.loads(best_of(text, json.loads)[0])["lr"] == 5.57e-07
    assert list(scoring_seeds(3)) == [1, 2] and SEARCH_SEED not in scoring_seeds(5)


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names]
            found.update(names if node.module == "suite" else [node.module])  # (`from suite import x`: suite.x)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_analysis_imports_from_the_harness_only_its_shared_modules():
    for path in sorted((ROOT / "analysis").glob("*.py")):
        harness = {m for m in imported_modules(path) if m.split(".")[0] == "suite"}
        outside = {m for m in harness if m not in SHARED and not any(m.startswith(f"{s}.") for s in SHARED)}
        assert outside == set(), path.name


def test_workloads_and_optimizers_import_nothing_of_the_harness():
    """The dependencies run one way (docs/architecture.md): suite imports workloads and optimizers, never back."""
    for package in ("workloads", "optimizers"):
        for path in sorted((ROOT / package).rglob("*.py")):
            assert {m for m in imported_modules(path) if m.split(".")[0] in ("suite", "analysis")} == set(), path
    files = {m.split(".")[0] for m in imported_modules(ROOT / "workloads" / "files.py")}
    assert files.isdisjoint({"suite", "analysis", "workloads", "optimizers", "torch"})


def test_the_shared_modules_and_the_analysis_load_without_torch():
    code = f"import sys, analysis.__main__; [__import__(m) for m in {SHARED!r}]; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.strip() == "False"


def compared_words(tree: ast.AST) -> list[ast.Constant]:
    """String constants a status could be compared with: either side of a comparison (or the tuple it tests
    membership in), an `isin(...)` argument, a `"status":` value or a `status=` keyword."""
    places = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            places += [node.left, *node.comparators]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "isin":
            places += node.args
        elif isinstance(node, ast.Dict):
            places += [v for k, v in zip(node.keys, node.values, strict=True) if getattr(k, "value", None) == "status"]
        if isinstance(node, ast.Call):
            places += [k.value for k in node.keywords if k.arg == "status"]
    return [c for place in places for c in ast.walk(place) if isinstance(c, ast.Constant) and isinstance(c.value, str)]


def test_no_module_spells_a_status_word_but_the_schema():
    words = {s.value for s in TrialStatus}
    spelled = []
    for package in ("suite", "analysis", "workloads", "optimizers", "bench"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name != "schema.py":
                found = compared_words(ast.parse(path.read_text()))
                spelled += [f"{path.relative_to(ROOT)}:{c.lineno} {c.value!r}" for c in found if c.value in words]
    assert spelled == []
    assert compared_words(ast.parse('x == "completed"; f(status="failed"); d = {"status": "paused"}')) != []


def test_a_running_record_whose_process_is_gone_is_told_and_collect_says_so(tmp_path):
    import os
    import socket

    import yaml

    from analysis.collect import collect
    from suite.schema import process_gone

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # (its pid names no process now)
    here = {"hostname": socket.gethostname()}
    assert process_gone(summary_record(status="running", provenance={**here, "pid": dead.pid}))
    assert not process_gone(summary_record(status="running", provenance={**here, "pid": os.getpid()}))
    assert not process_gone(summary_record(status="running", provenance={"hostname": "elsewhere", "pid": dead.pid}))
    assert not process_gone(summary_record(status="completed", provenance={**here, "pid": dead.pid}))
    run = tmp_path / "results" / "quadratic" / "adamw" / "0123456789" / "seed0"
    run.mkdir(parents=True)
    save_summary(run / "summary.json", summary_record(status="running", provenance={**here, "pid": dead.pid}))
    (run / "config.yaml").write_text(yaml.safe_dump({"optimizer": {"name": "adamw", "lr": 1e-3}}))
    trials, problems, _ = collect([tmp_path / "results"], tmp_path / "t.parquet")
    assert [reason for _, reason in problems] == [
        f"status running, but killed: its process (pid {dead.pid} on this host) is gone; rerun it to resume"
    ]
    assert trials.status.tolist() == ["running"] and "is gone" in trials.error.iloc[0]
