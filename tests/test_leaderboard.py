"""The committed reference leaderboard (leaderboard/) is what the current analysis code computes from its committed
data, and holds what it claims: every optimizer on every task of the reference study, with its provenance."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from analysis.__main__ import main
from analysis.publish import PROVENANCE, TRIALS, regenerated_differences
from optimizers import NAMES
from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # (pytest -m "not slow" leaves this file out)

LEADERBOARD = ROOT / "leaderboard"


def test_the_published_leaderboard_is_what_the_current_code_computes():
    """Regenerates every table from leaderboard/trials.parquet with the recorded command (no training): a change to
    the analysis that changes a published number fails here until the leaderboard is regenerated and committed."""
    assert regenerated_differences(LEADERBOARD, main) == []


def test_the_leaderboard_holds_every_optimizer_it_ran_on_every_task_with_its_provenance():
    """An optimizer added since the leaderboard was made is "not in the leaderboard yet", not a failure: the check is
    that every optimizer the leaderboard holds is one the suite has, on every task of the study."""
    trials = pd.read_parquet(LEADERBOARD / TRIALS)
    assert set(trials.optimizer) <= set(NAMES) and trials.optimizer.nunique() == 18
    tasks = trials.groupby("workload").budget_tokens.nunique()
    assert dict(tasks) == {"quadratic": 3, "cnn_digits": 3, "lm_tiny": 3}
    finished = trials[trials.status.isin(["completed", "diverged"])]
    assert (finished.groupby("optimizer").apply(lambda g: g.groupby(["workload", "budget_tokens"]).ngroups) == 9).all()
    record = json.loads((LEADERBOARD / PROVENANCE).read_text())
    assert record["regenerate"].startswith("python -m analysis report leaderboard/trials.parquet --out leaderboard")
    assert record["sweep_commands"] == ["python -m suite.sweep study=reference_cpu cluster.slots=2"]
    assert record["compute"]["trials"] == len(trials)
    assert not list(LEADERBOARD.rglob("summary.json")) and not list(LEADERBOARD.rglob("*.pt"))  # no run directories
