"""Property-based tests (hypothesis): random overrides of every config group and random damage to every record file
end either in a clean refusal (exit code 2, one line on stderr, the results directory byte-identical) or in a valid
run; never in a traceback. Trials run in-process on the quadratic (a few steps), as `python -m suite` runs them."""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from analysis.collect import collect
from suite import CONF_DIR
from suite.checks import check_group_choices, check_overrides
from suite.layout import CHECKPOINT, CONFIG, METRICS, STUDY, SUMMARY
from suite.study import Study
from suite.trial import run
from tests.test_bad_input import snapshot

QUICK = ["workload=quadratic", "workload.steps=6", "eval_every=3", "log_every=1", "progress=false"]
GROUP_OPTIONS = {g: sorted(p.stem for p in (CONF_DIR / g).glob("*.yaml")) for g in ("optimizer", "schedule")}
# The same examples on every run (derandomize), and no shrinking (it can take minutes): a failure prints the
# example as generated.
SETTINGS = settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


def leaf_keys(prefix: str, node) -> list[str]:
    if isinstance(node, dict):
        return [k for key, value in node.items() for k in leaf_keys(f"{prefix}.{key}" if prefix else key, value)]
    return [prefix]


def composed(overrides: list[str]) -> dict:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return OmegaConf.to_container(compose("config", overrides))


KEYS = sorted(
    {
        k
        for option in GROUP_OPTIONS["optimizer"]
        for k in leaf_keys("", composed([*QUICK, f"optimizer={option}"]))
        if not k.startswith(("tuning", "cluster", "results_dir", "progress"))
    }
)
VALUES = st.one_of(
    st.integers(-3, 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda f: repr(f).replace("inf", "Infinity")),
    st.sampled_from(["abc", "null", "true", "false", "[]", "[1]", "[0.9,0.99]", "[embedding]", "{a:1}", "''"]),
)


def suite_in_process(argv: list[str], results: Path) -> tuple[int, str]:
    """What `python -m suite ARGV` does (its pre-Hydra checks, then the trial), in this process: exit code, stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        problem = check_group_choices(argv) or check_overrides(argv)
        if problem:
            return 2, f"error: {problem}\n"
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("config", [*argv, f"results_dir={results}"])
        code = run(cfg)
    return code, err.getvalue()


def assert_refused_cleanly_or_ran(code: int, stderr: str, before: dict, results: Path) -> None:
    assert "Traceback" not in stderr, stderr
    assert code in (0, 2), stderr
    if code == 2:
        assert len(stderr.strip().splitlines()) == 1 and stderr.startswith("error: "), stderr
        assert snapshot(results) == before


@SETTINGS
@given(
    optimizer=st.sampled_from(GROUP_OPTIONS["optimizer"]),
    schedule=st.sampled_from(GROUP_OPTIONS["schedule"]),
    changes=st.lists(st.tuples(st.sampled_from(KEYS), VALUES), min_size=1, max_size=2),
)
def test_random_overrides_are_refused_cleanly_or_run(optimizer, schedule, changes):
    argv = [*QUICK, f"optimizer={optimizer}", f"schedule={schedule}", *(f"{k}={v}" for k, v in changes)]
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results"
        results.mkdir()
        (results / "earlier.txt").write_text("keep me")
        before = snapshot(results)
        code, stderr = suite_in_process(argv, results)
        assert_refused_cleanly_or_ran(code, stderr, before, results)


def damage(data: bytes, how: str, at: float, junk: bytes) -> bytes:
    cut = int(len(data) * at)
    return {
        "truncate": data[:cut],
        "flip": data[:cut] + bytes([data[cut] ^ 0xFF]) + data[cut + 1 :] if cut < len(data) else junk,
        "replace": junk,
        "empty": b"",
    }[how]


DAMAGE = dict(
    how=st.sampled_from(["truncate", "flip", "replace", "empty"]),
    at=st.floats(0, 0.999),
    junk=st.binary(max_size=64),
)


@pytest.mark.slow
@SETTINGS
@given(name=st.sampled_from([SUMMARY, METRICS, CONFIG, CHECKPOINT]), finished=st.booleans(), **DAMAGE)
def test_damaged_records_are_refused_cleanly_or_resumed_and_collect_never_fails(name, finished, how, at, junk):
    with tempfile.TemporaryDirectory() as tmp:
        assume(not (finished and name == CHECKPOINT))  # (a finished trial keeps no checkpoint to damage)
        results = Path(tmp) / "results"
        stop = [] if finished else ["checkpoint_every=2"]
        assert suite_in_process([*QUICK, *stop], results)[0] == 0
        run_dir = next(results.rglob(SUMMARY)).parent
        if not finished:  # an unfinished trial, as a kill after its checkpoint at step 4 leaves it
            import torch

            from suite import checkpoint

            # (a stand-in state: every damage below makes it unloadable, so its contents are never used)
            state = {"config": {}, "step": 4, "model": {}, "optimizer": {}, "rng": {}, "weights": torch.zeros(64)}
            checkpoint.save(run_dir / CHECKPOINT, state)
            summary = json.loads((run_dir / SUMMARY).read_text())
            (run_dir / SUMMARY).write_text(json.dumps({**summary, "status": "running"}))
        path = run_dir / name
        assert path.exists()
        if name == CHECKPOINT and how == "flip":
            how = "truncate"  # a flipped byte inside a zip member may still load: the checkpoint stands in, above
        path.write_bytes(damage(path.read_bytes(), how, at, junk))
        before = snapshot(results)
        code, stderr = suite_in_process([*QUICK, *stop], results)
        assert_refused_cleanly_or_ran(code, stderr, before, results)
        trials, problems, _ = collect([results], Path(tmp) / "t.parquet")  # skips or notes, never raises
        assert str(run_dir) in {*trials.get("run_dir", []), *(directory for directory, _ in problems)}


@SETTINGS
@given(**DAMAGE)
def test_a_damaged_study_json_is_refused_cleanly_or_read(how, at, junk):
    with tempfile.TemporaryDirectory() as tmp:
        cfg = composed([*QUICK, f"results_dir={tmp}"])
        cfg = OmegaConf.to_container(OmegaConf.create(cfg), resolve=True)
        study = Study("adamw", "quadratic", cfg, QUICK, force=False)
        study.record("python -m suite.sweep", done=False)
        path = study.directory / STUDY
        path.write_bytes(damage(path.read_bytes(), how, at, junk))
        before = snapshot(Path(tmp))
        try:
            Study("adamw", "quadratic", cfg, QUICK, force=False)
        except ValueError as e:
            assert str(path.parent) in str(e) or str(path) in str(e)
        assert snapshot(Path(tmp)) == before
