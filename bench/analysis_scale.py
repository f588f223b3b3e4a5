"""Analysis at sweep scale: collect + report over 10,000 synthetic trials of 1,000 metric rows each, then an
incremental collect after 10 new trials. Targets: collect + report <= 60 s and <= 4 GB peak memory; incremental
collect <= 5 s.

    python bench/analysis_scale.py [--trials 10000] [--rows 1000] [--dir /tmp/analysis_scale]

Each command runs as `python -m analysis ...` in its own process, as a user would run it; wall time and peak
resident memory (of that process) are measured around it, interpreter start-up and imports included. The records
are generated once into --dir (about 1.5 GB for the defaults) and reused by later runs.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from analysis.synthetic import Optimizer, Scale, target, write_trial

OPTIMIZERS = [
    Optimizer("adamw", 1.0, 1e-3, 1e-3),
    Optimizer("muon", 1.4, 2e-2, 2e-2),
    Optimizer("soap", 1.3, 3e-3, 3e-3),
    Optimizer("lion", 0.9, 3e-4, 1e-4),
    Optimizer("sgd", 0.6, 1e-1, 1e-1),
]
SCALES = [Scale(f"lm_{i}", 10 ** (6 + i), 0.2 * i) for i in range(4)]
BUDGETS = [1e8, 2e8, 4e8, 8e8, 1.6e9]
SEEDS = 5


def plan(n_trials: int) -> list[tuple]:
    """optimizer x scale x budget x lr x seed, with as many learning rates as it takes to reach n_trials."""
    cells = len(OPTIMIZERS) * len(SCALES) * len(BUDGETS) * SEEDS
    lrs = np.logspace(-4, -1, max(1, -(-n_trials // cells)))
    jobs = [
        (opt, scale, tokens, float(lr), seed)
        for scale in SCALES
        for opt in OPTIMIZERS
        for lr in lrs
        for tokens in BUDGETS
        for seed in range(SEEDS)
    ]
    return jobs[:n_trials]


def write_chunk(root: Path, jobs: list[tuple], rows: int) -> None:
    for opt, scale, tokens, lr, seed in jobs:
        write_trial(root, opt, scale, tokens, lr, seed, rows, target(scale, BUDGETS), noise=0.01)


def generate(root: Path, jobs: list[tuple], rows: int) -> None:
    chunks = [jobs[i::8] for i in range(8)]
    with ProcessPoolExecutor(max_workers=2) as pool:
        list(pool.map(write_chunk, [root] * len(chunks), chunks, [rows] * len(chunks)))


def timed(*args: str) -> tuple[float, float]:
    """Wall seconds of `python -m analysis ARGS` in a fresh process, and the peak RSS (GiB) of the largest child
    process so far (getrusage keeps the maximum over all children)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "analysis", *args], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"analysis {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--rows", type=int, default=1_000)
    parser.add_argument("--dir", default="/tmp/analysis_scale")
    args = parser.parse_args()
    base = Path(args.dir)
    results, out = base / f"results_{args.trials}x{args.rows}", base / "out"
    jobs = plan(args.trials + 10)
    if not results.is_dir():
        start = time.perf_counter()
        generate(results, jobs[: args.trials], args.rows)
        print(f"generated {args.trials} trials x {args.rows} rows in {time.perf_counter() - start:.0f} s")
    extra = base / "extra"
    shutil.rmtree(extra, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    table = out / "trials.parquet"

    t_collect, m_collect = timed("collect", str(results), "--out", str(table))
    t_report, m_report = timed("report", str(table), "--out", str(out / "report"))
    generate(extra, jobs[args.trials :], args.rows)  # 10 new trials arrive
    t_incr, _ = timed("collect", str(results), str(extra), "--out", str(table))

    print(f"{args.trials} trials x {args.rows} metric rows, python {sys.version.split()[0]}")
    print("| step | wall time | target |")
    print("|---|---|---|")
    print(f"| collect (from scratch) | {t_collect:.1f} s | |")
    print(f"| report | {t_report:.1f} s | |")
    print(f"| collect + report | {t_collect + t_report:.1f} s | <= 60 s |")
    print(f"| incremental collect, 10 new trials | {t_incr:.1f} s | <= 5 s |")
    print(f"peak resident memory: collect {m_collect:.2f} GiB, collect or report {m_report:.2f} GiB (target <= 4 GB)")


if __name__ == "__main__":
    main()
