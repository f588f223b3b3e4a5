"""`python -m analysis <command>`: collect run records, data-equivalent speedups, performance profiles,
representative subsets, the leaderboard report, and final losses predicted from a curve's prefix."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import yaml

from analysis.collect import collect, companion_paths
from analysis.fairness import fairness_table, verdict
from analysis.figures import prediction_plot, save, transfer_plot
from analysis.predict import error_summary, predictions
from analysis.profile import median_times, performance_ratios, profile, score_cap, scores, study_times
from analysis.protocols import comparison, study_table
from analysis.publish import TRIALS, publish
from analysis.report import report
from analysis.speedup import REQUIRED as SPEEDUP_COLUMNS
from analysis.speedup import speedup_label, speedups
from analysis.subset import select
from analysis.tables import read_table, write_csv
from analysis.transfer import fit as transfer_fit
from analysis.transfer import predictions_table
from analysis.tuning import TIME_COLUMNS, parse_rank_by, trials_frame, tuned_trials
from suite.layout import is_record_dir_name
from suite.settings import refuse


def cmd_collect(args) -> None:
    roots = [Path(r) for r in args.results]
    for root in roots:
        if not root.is_dir():
            raise ValueError(f"no such results directory: {root}")
    trials, problems, reread = collect(roots, Path(args.out))
    print(f"{len(trials)} trials ({reread} run directories read, the rest unchanged) -> {args.out}")
    if len(trials):
        cols = [c for c in ("workload", "optimizer", "seed", "status", "steps", "final_metric") if c in trials]
        print(trials[cols].to_string(index=False, max_rows=40))
    for directory, reason in problems:
        print(f"skipped or noted: {directory}: {reason}")


def cmd_speedup(args) -> None:
    # each optimizer's tuned configuration on its scoring seeds, as in the report (a table of one configuration per
    # point, as published results are, is taken as it is)
    trials = trials_frame(read_table(args.table), required=SPEEDUP_COLUMNS)
    tuned = tuned_trials(trials).assign(final_metric=lambda d: d.score)  # (a loss; a diverged run: +inf)
    result = speedups(tuned, baseline=args.baseline)
    labels = [speedup_label(r.speedup, r.low, r.high, r.cap, r.floor) for r in result.points.itertuples()]
    shown = result.points.assign(speedup=labels)
    print(shown[["workload", "optimizer", "budget_tokens", "seeds", "final_metric", "speedup"]].to_string(index=False))
    summary = result.summary.assign(
        speedup=[speedup_label(r.speedup, r.low, r.high, r.cap, r.floor) for r in result.summary.itertuples()]
    )
    print("\nper scale (median over budgets, interval from its own bootstrap):")
    print(summary[["workload", "optimizer", "budgets", "seeds", "speedup"]].to_string(index=False))
    out = Path(args.out)
    write_csv(result.summary, out.with_name(out.stem + ".summary.csv"))
    print(f"-> {write_csv(result.points, out)}, {out.with_name(out.stem + '.summary.csv')}")


def cmd_profile(args) -> None:
    trials = trials_frame(read_table(args.table), required=("optimizer", "workload", "time_to_target"), time=args.time)
    times = study_times(trials)
    ratios = performance_ratios(median_times(times))
    table = scores(times)
    print("performance ratios (AlgoPerf: per study the fastest trial to reach the target, median over studies;")
    print("time to target / fastest; inf = missed, NaN = not run):")
    print(ratios.to_string())
    print("\nbenchmark score (area under the profile for tau in [1, 4], / 3), 95% bootstrap interval over studies:")
    print(table.to_string())
    unreached, tasks = score_cap(ratios)
    if unreached:
        print(
            f"no optimizer reached the target on {unreached} of {tasks} task(s): every score is at most "
            f"{1 - unreached / tasks:.2f}"
        )
    out = Path(args.out)
    write_csv(table.reset_index(), out)
    write_csv(profile(ratios), out.with_name(out.stem + ".curve.csv"))
    print(f"-> {out}, {out.with_name(out.stem + '.curve.csv')}")


def cmd_subset(args) -> None:
    k = None if args.k == "auto" else int(args.k)
    references = args.reference.split(",") if args.reference else None
    chosen = select(read_table(args.table), k, references, restarts=args.restarts, seed=args.seed)
    print(f"k = {chosen.k}; reference optimizers (the embedding): {', '.join(chosen.references)}")
    print(f"subset:     {', '.join(chosen.tasks)}")
    print(f"second set: {', '.join(chosen.second)}")
    print(f"both sets reproduce the full-set ranking of the references: {chosen.reproduces}")
    print(f"Kendall's tau, held-out optimizers, subset vs full set: {chosen.validation_tau:.3f}")
    print(f"against random {chosen.k}-task subsets: {chosen.verdict()}")
    entry = Path(args.conf_dir) / f"{args.name}.yaml"
    entry.parent.mkdir(parents=True, exist_ok=True)
    entry.write_text(
        f"# Written by `python -m analysis subset --table {args.table} --k {args.k}` (seed {args.seed}).\n"
        + yaml.safe_dump(
            {
                "name": args.name,
                "tasks": chosen.tasks,
                "second_set": chosen.second,
                "references": chosen.references,
                "reproduces_ranking": chosen.reproduces,
                "validation_kendall_tau": chosen.validation_tau,
                "random_subsets_reaching_tau": chosen.random_share,
            },
            sort_keys=False,
        )
    )
    rows = [{"set": "subset", "task": t} for t in chosen.tasks] + [{"set": "second", "task": t} for t in chosen.second]
    print(f"-> {entry}, {write_csv(pd.DataFrame(rows), args.out)}")


def check_destination(out: Path) -> None:
    """A report's `--out` is a directory, or nothing yet (checked before anything is read or written)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; a report goes into a directory")


def run_optimizers(results: Path) -> set[str]:
    """The optimizers a results directory holds runs of: its <workload>/<optimizer>/ folders."""
    return {d.name for d in results.glob("*/*") if d.is_dir() and is_record_dir_name(d.name)}


def baseline_of(given: str | None, found: set[str], source: Path) -> str:
    """The baseline speedups are measured against: one given must be among the source's optimizers; without one,
    adamw (a report of optimizers without it says so in its text)."""
    if given is not None and found and given not in found:
        raise ValueError(f"--baseline {given} ran in none of {source} (optimizers: {', '.join(sorted(found))})")
    return given or "adamw"


def cmd_report(args) -> None:
    source, out = Path(args.source), Path(args.out)
    check_destination(out)
    studies = study_table(source) if source.is_dir() else None
    if source.is_dir():
        baseline = baseline_of(args.baseline, run_optimizers(source), source)
        trials_path = out / "trials.parquet"
        trials, problems, _ = collect([source], trials_path)
        for directory, reason in problems:
            print(f"skipped or noted: {directory}: {reason}")
        curves = companion_paths(trials_path)[0]
    else:
        trials = read_table(source)
        baseline = baseline_of(args.baseline, set(trials.get("optimizer", pd.Series(dtype=str)).astype(str)), source)
        curves = companion_paths(source)[0] if source.suffix == ".parquet" else None
    if trials.empty:
        raise ValueError(f"{source}: no trials to report on")
    sections, (index, board) = report(
        trials,
        curves,
        out,
        str(source),
        baseline=baseline,
        time=args.time,
        rank_by=parse_rank_by(args.rank_by),
        studies=studies,
    )
    print(sections[0].tables[0][1].to_string(index=False))
    print(f"-> {index}, {board}, {out / 'figures'}/, {out / 'tables'}/")


def cmd_publish(args) -> None:
    results = Path(args.results)
    if not results.is_dir():
        raise ValueError(f"no such results directory: {results}")
    check_destination(Path(args.out))
    baseline = baseline_of(args.baseline, run_optimizers(results), results)
    path = publish(results, Path(args.out), baseline, args.time, args.rank_by, parse_rank_by(args.rank_by))
    print(f"-> {Path(args.out)}/ (report, {TRIALS} and its curves), {path}")
    print(f"regenerate: {json.loads(path.read_text())['regenerate']}")


def cmd_fairness(args) -> None:
    root = Path(args.results)
    if not root.is_dir():
        raise ValueError(f"no such results directory: {root}")
    table = fairness_table(root)
    shown = ["workload", "optimizer", "protocol", "dimensions", "configurations", "trials", "seeds", "cut", "at_edge"]
    print(table[shown].to_string(index=False))
    print("\n".join(["", *verdict(table)]))
    print(f"-> {write_csv(table, args.out)}")


def cmd_protocols(args) -> None:
    root = Path(args.results)
    if not root.is_dir():
        raise ValueError(f"no such results directory: {root}")
    studies = study_table(root)
    if studies.empty:
        raise ValueError(f"{root}: no finished study.json (run `python -m suite.sweep` first)")
    numbers = comparison(studies)
    print(numbers.to_string(index=False))
    print(f"-> {write_csv(numbers, args.out)}")


def cmd_predict(args) -> None:
    table, skipped = predictions([Path(p) for p in args.runs], args.at)
    for directory, reason in skipped:
        print(f"skipped: {directory}: {reason}")
    if table.empty:
        raise ValueError("no completed run with enough evaluations to predict from")
    shown = table[["workload", "optimizer", "seed", "points", "predicted", "low", "high", "actual", "relative_error"]]
    print(shown.to_string(index=False, max_rows=40))
    summary = error_summary(table)
    print(f"\nfinal held-out loss predicted from the first {args.at:.0%} of each curve:")
    print(summary.to_string(index=False))
    out = Path(args.out)
    write_csv(table, out)
    figure = out.with_suffix(".png")
    save(prediction_plot(table, args.at), figure)
    print(f"-> {out}, {figure}")


def cmd_transfer(args) -> None:
    optima, laws, prediction = transfer_fit(args.studies, args.optimizer)
    print(f"the optimum of each tuned task ({args.optimizer}):")
    print(optima.drop(columns=["study"]).to_string(index=False))
    print("\nfitted laws (log value = coefficients . [1, log N, log D]; 95% intervals):")
    print(laws.to_string(index=False))
    found = predictions_table(args.studies)
    if not found.empty:
        print("\npredictions against tuning (lost: the metric lost by the prediction, positive is worse):")
        print(found.drop(columns=["study"]).to_string(index=False))
    out = Path(args.out)
    write_csv(optima, out)
    write_csv(found, out.with_name(out.stem + "_predictions.csv"))
    figure = out.with_suffix(".png")
    save(transfer_plot(optima, prediction["laws"]["lr"], found), figure)
    print(f"-> {out}, {figure}")


def build_parser() -> argparse.ArgumentParser:
    """The command line: one subcommand per analysis (docs/analysis.md shows each; tests/test_docs.py checks)."""
    parser = argparse.ArgumentParser(prog="python -m analysis", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("collect", help="one row per trial from run directories (incremental)")
    p.add_argument("results", nargs="+")
    p.add_argument("--out", default="trials.parquet")
    p.set_defaults(run=cmd_collect)
    p = sub.add_parser("speedup", help="data-equivalent speedup over a baseline (Marin)")
    p.add_argument(
        "--table", required=True, help="parquet or CSV with optimizer, workload, budget_tokens, final_metric (a loss)"
    )
    p.add_argument("--baseline", default="adamw")
    p.add_argument("--out", default="speedup.csv")
    p.set_defaults(run=cmd_speedup)
    p = sub.add_parser("profile", help="AlgoPerf performance profiles and benchmark score")
    p.add_argument(
        "--table", required=True, help="parquet or CSV with optimizer, workload, time_to_target [, seed or study]"
    )
    p.add_argument("--out", default="profile.csv")
    p.add_argument("--time", default="seconds", help="time to target in timed seconds or tokens")
    p.set_defaults(run=cmd_profile)
    p = sub.add_parser("subset", help="representative tasks by star discrepancy (carps)")
    p.add_argument(
        "--table", required=True, help="parquet or CSV with optimizer, workload, final_metric [, budget_tokens]"
    )
    p.add_argument("--k", default="auto", help="number of tasks, or 'auto'")
    p.add_argument("--reference", default="", help="comma-separated reference optimizers (default: 3 chosen)")
    p.add_argument("--name", default="representative")
    p.add_argument("--conf-dir", default="conf/subset")
    p.add_argument("--restarts", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="subset.csv")
    p.set_defaults(run=cmd_subset)
    p = sub.add_parser("report", help="leaderboard: index.html, leaderboard.md, figures/ and tables/")
    p.add_argument("source", help="a results directory (collected into OUT/trials.parquet), or a parquet/CSV table")
    p.add_argument("--out", default="report")
    p.add_argument("--baseline", default=None, help="the optimizer speedups are measured against (default adamw)")
    p.add_argument("--time", default="seconds", help="time to target in timed seconds or tokens")
    p.add_argument("--rank-by", default="", help="WORKLOAD=LOSS,...: rank these workloads by a held-out loss")
    p.set_defaults(run=cmd_report)
    p = sub.add_parser("publish", help="a leaderboard to commit: report + collected tables + provenance.json")
    p.add_argument("results", help="a results directory holding the study's run directories")
    p.add_argument("--out", default="leaderboard")
    p.add_argument("--baseline", default=None, help="the optimizer speedups are measured against (default adamw)")
    p.add_argument("--time", default="seconds", help="time to target in timed seconds or tokens")
    p.add_argument("--rank-by", default="", help="WORKLOAD=LOSS,...: rank these workloads by a held-out loss")
    p.set_defaults(run=cmd_publish)
    p = sub.add_parser("fairness", help="per study: dimensions, trials spent, seeds, cap cuts, tuned values at edges")
    p.add_argument("results", help="a results directory holding study directories")
    p.add_argument("--out", default="fairness.csv")
    p.set_defaults(run=cmd_fairness)
    p = sub.add_parser("protocols", help="tuning protocols compared: steps spent and best metric over search seeds")
    p.add_argument("results", help="a results directory holding study directories")
    p.add_argument("--out", default="protocols.csv")
    p.set_defaults(run=cmd_protocols)
    p = sub.add_parser("predict", help="final loss predicted from a curve's prefix (scaling law with annealing)")
    p.add_argument("runs", nargs="+", help="run directories, or directories searched for them")
    p.add_argument("--at", type=float, default=0.25, help="the fraction of the budget the prediction sees")
    p.add_argument("--out", default="predict.csv", help="the table; the figure goes beside it as .png")
    p.set_defaults(run=cmd_predict)
    p = sub.add_parser("transfer", help="optimum lr per scale, its power-law fit, and predictions against tuning")
    p.add_argument("studies", nargs="+", help="study directories, or directories holding them")
    p.add_argument("--optimizer", default="adamw", help="whose tuned studies to fit")
    p.add_argument("--out", default="transfer.csv", help="the optima; predictions and the figure go beside it")
    p.set_defaults(run=cmd_transfer)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    pd.set_option("display.width", 160)
    try:
        if getattr(args, "time", "seconds") not in TIME_COLUMNS:  # (before anything is read or written)
            raise ValueError(f"--time is {' or '.join(TIME_COLUMNS)}, not {args.time!r}")
        parse_rank_by(getattr(args, "rank_by", ""))
        args.run(args)
    except (ValueError, OSError) as e:
        return refuse(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
