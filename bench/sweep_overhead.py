"""Sweep overhead: the wall time of a 32-trial random-search study of a 1-second quadratic trial through the local
launcher with 2 slots, as a ratio to the ideal 32 x (one trial's time) / 2. Target <= 1.25.

    python bench/sweep_overhead.py [--trials 32] [--slots 2] [--steps 500] [--repeats 3]

One trial's time is its marginal cost in a warm process, pinned like a slot (its share of the cores,
OMP_NUM_THREADS to match): (wall of a Hydra multirun of 9 trials - wall of one of 1 trial) / 8, so interpreter
start-up and imports count as overhead of the sweep, not as trial time. The ratio against a lone
`python -m suite` run (start-up included) is printed too. The sweep is `python -m suite.sweep` as a user runs it,
protocol bookkeeping, Hydra composition and process start-ups included.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from suite.layout import SUMMARY

ROOT = Path(__file__).resolve().parent.parent


def timed(argv: list[str], env: dict, cores: set[int] | None = None) -> float:
    start = time.perf_counter()
    pin = (lambda: os.sched_setaffinity(0, cores)) if cores else None
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, preexec_fn=pin)
    if proc.returncode:
        sys.exit(f"{' '.join(argv)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3, help="each timing is the median of this many runs")
    args = parser.parse_args()
    trial = ["workload=quadratic", f"workload.steps={args.steps}", f"eval_every={args.steps}", "progress=false"]
    cores = sorted(os.sched_getaffinity(0))
    share = max(1, len(cores) // args.slots)
    env = {**os.environ, "OMP_NUM_THREADS": str(share), "PYTHONHASHSEED": "0"}
    with tempfile.TemporaryDirectory() as tmp:
        lone = [sys.executable, "-m", "suite", *trial, "optimizer=sgd", f"results_dir={tmp}/one"]
        pinned = set(cores[:share])
        alone = statistics.median(timed([*lone, f"seed={100 + r}"], env, pinned) for r in range(args.repeats))
        multi = [sys.executable, "-m", "suite", "-m", *trial, "optimizer=sgd"]
        t1 = statistics.median(
            timed([*multi, f"seed={r}", f"results_dir={tmp}/m1-{r}"], env, pinned) for r in range(args.repeats)
        )
        nine = f"seed={','.join(str(i) for i in range(1, 10))}"
        t9 = statistics.median(
            timed([*multi, nine, f"results_dir={tmp}/m9-{r}"], env, pinned) for r in range(args.repeats)
        )
        one = (t9 - t1) / 8
        sweep = [
            sys.executable,
            "-m",
            "suite.sweep",
            *trial,
            "optimizer=sgd",
            "tuning=random",
            f"tuning.trials={args.trials}",
            f"cluster.slots={args.slots}",
        ]
        plain = {**os.environ, "PYTHONHASHSEED": "0"}
        walls = [timed([*sweep, f"results_dir={tmp}/sweep-{r}"], plain) for r in range(args.repeats)]
        wall = statistics.median(walls)
        done = len(list(Path(tmp, "sweep-0").rglob(SUMMARY)))
    ideal = args.trials * one / args.slots
    print(f"{args.trials} trials ({done} records), {args.slots} slots on {len(cores)} cores")
    print(f"one trial: {one:.2f} s in a warm process ((9-trial multirun {t9:.1f} s - 1-trial {t1:.1f} s) / 8)")
    print(f"sweep: {wall:.1f} s (median of {', '.join(f'{w:.1f}' for w in walls)})")
    print(f"ideal: {args.trials} x {one:.2f} / {args.slots} = {ideal:.1f} s")
    print(f"ratio sweep / ideal: {wall / ideal:.2f} (target <= 1.25)")
    lone_ratio = wall / (args.trials * alone / args.slots)
    print(f"against lone `python -m suite` runs ({alone:.2f} s each, start-up included): {lone_ratio:.2f}")


if __name__ == "__main__":
    main()
