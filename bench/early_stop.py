"""Early stopping measured: how well the final held-out loss is predicted from a curve's prefix, and what each
rule (`tuning.early_stop=curve|halving`) saves against full random search and what it costs in the pick.

    python -m suite.sweep optimizer=adamw workload=W eval_every=E tuning=random tuning.trials=48 tuning.seeds=3 \\
        tuning.name=pool results_dir=DIR          # a pool of 48 configurations run to the end (+ seed noise)
    python bench/early_stop.py DIR/W/adamw/study-pool[-<tokens>tokens] [--searches 10] [--trials 16] \\
        [--rungs 0.25,0.5] [--eta 2]

Each search draws `trials` configurations of the pool (a seeded draw per search) and is replayed twice: in full,
and in rungs, where at each rung the rule decides on the curves' prefixes exactly as a sweep in rungs does
(suite/early_stop.decide on suite/curves.run_curve). Replaying is exact because a trial continued from a rung
is bitwise the trial run straight through. Compute is counted in training steps (a diverged trial ends where it
diverged, in both); a pick is judged by its final held-out loss (the quantity the rules predict; for cnn_digits the
leaderboard ranks by it too) and is "within the noise" of full search's pick when the two differ by less than
1.96 * sqrt(2) * sd, the range within which 95% of pairs of single-seed runs of one configuration fall (sd: that of
the pool's best configuration over seeds 0-2, the seeds a sweep with tuning.seeds=3 runs it on).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

import numpy as np
import yaml

from analysis.predict import error_summary, predictions
from suite.curves import pause_step, run_curve
from suite.early_stop import decide
from suite.layout import CONFIG, STUDY, SUMMARY
from suite.schema import FINISHED, SEARCH_SEED, TrialStatus, load_study, summary_or_empty


def pool(study: Path, rungs: list[float]) -> tuple[dict[str, dict], float]:
    """The pool study's seed-0 runs by trial (steps run, final loss, where each rung pauses it, its prefix there)
    and the seed sd of the final loss of its best configuration, run on several seeds."""
    runs, by_config = {}, {}
    for trial in load_study(study / STUDY)["trials"]:
        directory = Path(trial["run_dir"])
        summary = summary_or_empty(directory / SUMMARY)
        if summary.get("status") not in FINISHED:
            continue
        final = run_curve(directory).losses[-1] if summary["status"] == TrialStatus.COMPLETED else math.inf
        by_config.setdefault(trial["trial"], []).append(final)
        if trial["seed"] == SEARCH_SEED:
            eval_every = yaml.safe_load((directory / CONFIG).read_text())["eval_every"]
            pauses = {r: pause_step(r, summary["budget"]["steps"], eval_every) for r in rungs}
            prefixes = {r: run_curve(directory, r) for r in rungs}
            runs[trial["trial"]] = {
                "steps": summary["steps"],
                "final": final,
                "pauses": pauses,
                "prefixes": prefixes,
                "directory": directory,
            }
    repeated = [v for v in by_config.values() if len(v) > 1 and all(map(math.isfinite, v))]
    best = min(repeated, key=statistics.mean, default=None)
    return runs, statistics.stdev(best) if best else math.nan


def replay(runs: dict[str, dict], names: list[str], rule: str, rungs: list[float], eta: int) -> tuple[int, str]:
    """(steps trained, the pick) of one search in rungs: at each rung the trials that got there (a diverged one
    ends where it diverged) are decided on; the pick is the best final loss of those that ran to the end."""
    steps, alive = 0, list(names)
    for rung in rungs:
        paused = [n for n in alive if runs[n]["pauses"][rung] is not None]
        ended = [n for n in paused if runs[n]["steps"] <= runs[n]["pauses"][rung]]  # diverged before the rung
        reached = [n for n in paused if n not in ended]
        decisions = decide(rule, {n: runs[n]["prefixes"][rung] for n in reached}, eta)
        stopped = [n for n in reached if decisions[n]["stop"]]
        steps += sum(runs[n]["steps"] for n in ended) + sum(runs[n]["pauses"][rung] for n in stopped)
        alive = [n for n in alive if n not in ended and n not in stopped]
    steps += sum(runs[n]["steps"] for n in alive)
    return steps, min(alive, key=lambda n: (runs[n]["final"], n))


def full(runs: dict[str, dict], names: list[str]) -> tuple[int, str]:
    return sum(runs[n]["steps"] for n in names), min(names, key=lambda n: (runs[n]["final"], n))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", type=Path, help="the pool's study directory (holding study.json)")
    parser.add_argument("--searches", type=int, default=10)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--rungs", default="0.25,0.5")
    parser.add_argument("--eta", type=int, default=2)
    args = parser.parse_args()
    rungs = [float(r) for r in args.rungs.split(",")]
    runs, sd = pool(args.study, rungs)
    workload = json.loads((args.study / STUDY).read_text())["workload"]
    if len(runs) < args.trials:
        print(
            f"error: {len(runs)} finished seed-0 runs in the pool, fewer than --trials {args.trials}", file=sys.stderr
        )
        return 2
    noise = 1.96 * math.sqrt(2) * sd
    print(f"{workload}: pool of {len(runs)} configurations; seed sd of the final loss {sd:.4g} -> noise {noise:.4g}")
    for at in rungs:
        table, _ = predictions([run["directory"] for run in runs.values()], at)
        errors = error_summary(table).iloc[0]
        print(
            f"prediction from the first {at:.0%}: median |relative error| {errors.median_abs_relative_error:.4f}"
            f" over {errors.runs} runs, 95% interval held the final loss in {errors.covered:.0%}"
        )
    names = sorted(runs)
    for rule in ("curve", "halving"):
        saved, within, same = [], [], []
        for search in range(args.searches):
            drawn = sorted(np.random.default_rng(search).choice(names, args.trials, replace=False))
            full_steps, full_pick = full(runs, drawn)
            steps, pick = replay(runs, drawn, rule, rungs, args.eta)
            saved.append(1 - steps / full_steps)
            within.append(abs(runs[pick]["final"] - runs[full_pick]["final"]) <= noise)
            same.append(pick == full_pick)
        print(
            f"{rule:>8}: compute saved {np.mean(saved):.0%} (range {min(saved):.0%}-{max(saved):.0%}); pick within the"
            f" noise of full search's in {sum(within)}/{len(within)} searches, the same configuration in"
            f" {sum(same)}/{len(same)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
