"""Throughput of the GPU path, per optimizer, as a table for the README: one call on a GPU machine.

    python bench/gpu.py [--workload lm_125m] [--optimizers adamw,muon,...] [--steps 30] [--batch 128]
    python bench/gpu.py --smoke      # a few steps of a tiny LM on whatever device is here: checks the script runs

Each optimizer trains the workload for `--steps` steps in this process through the suite's own trial path
(`suite.trial.run`: precision=auto, compile=auto, micro-batches probed where `auto`), on random GPT-2-vocabulary
token shards written to a temporary directory (the machine needs no network; throughput does not depend on the
tokens). The table gives each optimizer's timed tokens/s, its ratio to AdamW's, MFU, the untimed first step
(torch.compile and warm-up), peak GPU memory, the micro-batch chosen and the attention kernel. AdamW runs first and
again last, to show any drift of the machine's speed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir

from suite import CONF_DIR, trial
from suite.schema import TrialStatus
from workloads.lm.data import write_shard

DEFAULT_OPTIMIZERS = "adamw,muon,scion,soap,kron,nadamw,lion,adam_mini,mars,sophia"


def write_random_shards(directory: Path, tokens: int) -> str:
    rng = np.random.default_rng(0)
    write_shard(directory / "bench_val_000000.bin", rng.integers(0, 50257, size=max(tokens // 8, 1 << 16)))
    write_shard(directory / "bench_train_000001.bin", rng.integers(0, 50257, size=tokens))
    return str(directory / "bench_*.bin")


def run_one(optimizer: str, overrides: list[str], results: Path) -> dict:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", [f"optimizer={optimizer}", *overrides, f"results_dir={results / optimizer}"])
    code = trial.run(cfg)
    (summary,) = (results / optimizer).rglob("summary.json")
    record = json.loads(summary.read_text())
    if code != 0 or record["status"] != TrialStatus.COMPLETED:
        raise SystemExit(f"{optimizer}: trial ended {record['status']} ({record.get('error')})")
    return record


def row(name: str, s: dict, reference: float) -> str:
    mfu = f"{s['mfu']:.1%}" if s.get("mfu") is not None else "–"
    return (
        f"| {name} | {s['tokens_per_s']:,.0f} | {s['tokens_per_s'] / reference:.2f} | {mfu} | {s['untimed_s']:.1f} | "
        f"{s['peak_mem_bytes'] / 2**30:.1f} | {s['micro_batch_size']} | {s['attention_kernel'] or '–'} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="lm_125m")
    parser.add_argument("--optimizers", default=DEFAULT_OPTIMIZERS)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=128, help="sequences per step (the workload's own: 0)")
    parser.add_argument("--smoke", action="store_true", help="a tiny LM for 3 steps: does the script run here?")
    args = parser.parse_args()
    names = args.optimizers.split(",")
    if args.smoke:
        args.workload, args.steps, args.batch, names = "lm_125m", 3, 4, ["adamw", "muon"]
        shape = ["workload.n_layer=2", "workload.d_model=64", "workload.n_head=2", "workload.seq_len=64"]
    else:
        shape = []
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        workload_cfg = compose("config", [f"workload={args.workload}", *shape]).workload
    if workload_cfg.family != "lm":
        sys.exit("bench/gpu.py measures the language-model workloads (lm_*)")
    batch = args.batch or workload_cfg.batch_size
    tokens = args.steps * batch * workload_cfg.seq_len
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU (no CUDA device: compile and bf16 off)"
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [
            f"workload={args.workload}",
            *shape,
            "workload/data=shards",
            f"workload.data.path={write_random_shards(Path(tmp), tokens + 1)}",
            f"workload.batch_size={batch}",
            f"workload.tokens={tokens}",
            "workload.eval_tokens=65536",
            f"eval_every={args.steps}",
            f"log_every={args.steps}",
            "checkpoint_every=0",
            "progress=false",
        ]
        order = ["adamw", *(n for n in names if n != "adamw")]
        records = {name: run_one(name, overrides, Path(tmp) / "results") for name in order}
        again = run_one("adamw", overrides, Path(tmp) / "results-again")
    reference = records["adamw"]["tokens_per_s"]
    shape_text = f"{batch} sequences of {workload_cfg.seq_len} tokens per step, {args.steps} steps"
    print(f"\n{args.workload}, {shape_text}; {device}")
    print(f"torch {torch.__version__}; AdamW again at the end: {again['tokens_per_s'] / reference:.2f} of the first\n")
    print("| optimizer | tokens/s | vs AdamW | MFU | first step s | peak GiB | micro-batch | attention |")
    print("|---|---|---|---|---|---|---|---|")
    for name in records:
        print(row(name, records[name], reference))


if __name__ == "__main__":
    main()
