"""Hyperparameters that transfer, measured on the CPU ladders (docs/sweeps.md: Hyperparameters that transfer).

    python bench/transfer.py RESULTS_DIR [--ladders quadratic,cnn_digits,lm_tiny] [--slots 2] [--out DIR]

Per ladder, AdamW with its other hyperparameters at their defaults: an lr-only grid search (`tuning=grid`, 7 points
log-spaced over the ladder's range, the best and the defaults rerun on the scoring seeds: 1-3 for the quadratic and
cnn_digits, 1 for lm_tiny) at every scale, the last one included; then `tuning=transfer` at the last scale, fitted
on the others only, with `tuning.check=2` (×½, ×2) and the same scoring seeds; on lm_tiny also `tuning=step_law`
at the last scale. Prints, per prediction, the fitted law, the predicted lr with its interval, the optimum found by
the target's own grid (the vertex of its final held-out loss against log lr, with its interval) and their ratio,
and the metric lost by running the prediction instead of the grid's best (paired by scoring seed, t 95% interval;
positive is worse); draws OUT/transfer_<ladder>.png. Every sweep resumes where it stopped, so a killed run
continues.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analysis.figures import save, transfer_plot  # noqa: E402
from analysis.transfer import optima_table, predictions_table  # noqa: E402
from suite import transfer  # noqa: E402
from suite.layout import study_dir  # noqa: E402

# ladder -> (the tasks fitted on, the task predicted, the lr range of every grid, seeds: 0 selects, the rest
# score); a task is (workload, tokens)
LADDERS = {
    "quadratic": ([("quadratic", None), ("quadratic_400", None)], ("quadratic_1600", None), (0.01, 1.0), 4),
    "cnn_digits": ([("cnn_digits", None), ("cnn_digits_w32", None)], ("cnn_digits_w64", None), (0.001, 0.3), 4),
    "lm_tiny": (
        [("lm_tiny", 53248), ("lm_tiny", 106496), ("lm_tiny", 212992)],  # 26, 52 and 104 steps of 16 x 128
        ("lm_tiny", 425984),  # 208 steps: the default budget
        (0.001, 0.1),
        2,
    ),
}


def sweep(results: Path, task: tuple, lr: tuple, seeds: int, slots: int, *protocol: str) -> None:
    workload, tokens = task
    space = [
        "~optimizer.search_space",
        f"+optimizer.search_space={{lr:{{low:{lr[0]},high:{lr[1]},scale:log}}}}",
    ]
    budget = [f"workload.tokens={tokens}"] if tokens else []
    args = ["optimizer=adamw", f"workload={workload}", *budget, *space, *protocol, f"tuning.seeds={seeds}"]
    command = [sys.executable, "-m", "suite.sweep", *args, f"results_dir={results}", f"cluster.slots={slots}"]
    print("$", " ".join(command[1:]), flush=True)
    subprocess.run(command, cwd=ROOT, check=True)


def directory(results: Path, task: tuple, name: str) -> Path:
    return study_dir(results, task[0], "adamw", name, str(task[1]) if task[1] else None)


def measure(results: Path, ladder: str, slots: int, out: Path) -> pd.DataFrame:
    fitted, target, lr, seeds = LADDERS[ladder]
    grid = ["tuning=grid", "tuning.grid_points=7", "tuning.name=ladder"]
    for task in [*fitted, target]:
        sweep(results, task, lr, seeds, slots, *grid)
    sources = ",".join(str(directory(results, t, "ladder")) for t in fitted)
    sweep(results, target, lr, seeds, slots, "tuning=transfer", f"tuning.from=[{sources}]", "tuning.check=2")
    studies = [directory(results, target, "ladder"), directory(results, target, "transfer")]
    if ladder == "lm_tiny":  # the Step Law at the same task (its own batch size, the grid's other defaults)
        sweep(results, target, lr, seeds, slots, "tuning=step_law")
        studies.append(directory(results, target, "step_law"))
    tasks = transfer.load_tasks([str(directory(results, t, "ladder")) for t in fitted], "adamw")
    found = transfer.study_optimum(directory(results, target, "ladder"))
    rows = predictions_table(studies)
    prediction = transfer.predict(tasks, found["N"], found["D"])
    law = prediction["laws"]["lr"]
    shown = {term: f"{v:.3f} [{lo:.3f}, {hi:.3f}]" for term, (v, lo, hi) in law["exponents"].items()}
    optima = optima_table([*tasks, found])
    save(transfer_plot(optima, law, rows[rows.protocol == "transfer"]), out / f"transfer_{ladder}.png")
    table = []
    for row in rows.itertuples():
        low, high = prediction["intervals"]["lr"] if row.protocol == "transfer" else (math.nan, math.nan)
        table.append(
            {
                "ladder": ladder,
                "protocol": row.protocol,
                "fitted on": ", ".join(f"{t['workload']}@{t['D']}" for t in tasks)
                if row.protocol == "transfer"
                else "",
                "predicted": f"{found['workload']}@{found['D']}",
                "law (log lr)": ", ".join(f"{k}: {v}" for k, v in shown.items()) if row.protocol == "transfer" else "",
                "predicted lr": f"{row.predicted_lr:.4g} [{low:.3g}, {high:.3g}]",
                "found lr": f"{found['lr']:.4g} [{found['low']:.3g}, {found['high']:.3g}] ({found['method']})",
                "ratio": row.predicted_lr / found["lr"],
                "local optimum lr (checks)": row.local_optimum_lr,
                "metric": row.metric,
                "predicted's metric": f"{row.predicted:.5g} [{row.predicted_low:.5g}, {row.predicted_high:.5g}]",
                "grid best's metric": row.tuned,
                "lost": f"{row.lost:.4g} [{row.lost_low:.3g}, {row.lost_high:.3g}] (n={row.lost_seeds})",
                "in range": row.in_range,
            }
        )
    return pd.DataFrame(table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results")
    parser.add_argument("--ladders", default=",".join(LADDERS))
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--out", default=".")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = pd.concat([measure(Path(args.results), name, args.slots, out) for name in args.ladders.split(",")])
    pd.set_option("display.width", 250)
    pd.set_option("display.max_colwidth", 80)
    print(table.T.to_string(header=False))
    table.to_csv(out / "transfer.csv", index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
