"""MFU: the arithmetic on a hand-computed case, the peak table, and what a CPU trial records."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.__main__ import main as analysis_main
from suite import throughput
from tests.conftest import FAST, cli, only_run_dir, read_summary
from workloads.lm.model import LMShape


def test_mfu_of_lm_125m_on_an_h100_by_hand():
    shape = LMShape(vocab_size=50304, n_layer=12, n_head=12, d_model=768, seq_len=1024)
    # per layer: attention 4 x 768^2 = 2,359,296; SwiGLU 3 x 768 x 2048 = 4,718,592; two norms 1,536 -> 7,079,424
    assert shape.non_embedding_params == 12 * 7_079_424 + 768 == 84_953_856
    # 6 x (84,953,856 + 50,304 x 768 head) + 6 x 12 layers x 1024 x 768 attention scores
    assert shape.flops_per_token == 6 * 123_587_328 + 56_623_104 == 798_147_072
    peak = throughput.peak_flops("NVIDIA H100 80GB HBM3", "cuda", None)
    assert peak == 989e12
    # 400,000 tokens/s = 390.625 sequences of 1024 per second
    value = throughput.mfu(shape.flops_per_token * 1024, examples=390_625, seconds=1000.0, peak=peak)
    assert value == pytest.approx(798_147_072 * 400_000 / 989e12) == pytest.approx(0.32281)


@pytest.mark.parametrize(
    "name, peak",
    [
        ("NVIDIA H100 PCIe", 756e12),
        ("NVIDIA H200", 989e12),
        ("NVIDIA A100-SXM4-80GB", 312e12),
        ("NVIDIA L40S", 362e12),
        ("NVIDIA L4", 121e12),
        ("NVIDIA GeForce RTX 4090", 165e12),
        ("NVIDIA GeForce GTX 1080", None),
    ],
)
def test_the_peak_is_looked_up_by_device_name(name, peak):
    assert throughput.peak_flops(name, "cuda", None) == peak


def test_an_override_wins_and_a_cpu_has_no_peak():
    assert throughput.peak_flops("NVIDIA H100 80GB HBM3", "cuda", 5e14) == 5e14
    assert throughput.peak_flops("x86_64", "cpu", None) is None
    assert throughput.mfu(1e9, 100, 1.0, None) is None


@pytest.mark.slow
def test_a_cpu_trial_records_its_precision_the_untimed_first_step_and_mfu_against_a_given_peak(results):
    proc = cli([f"results_dir={results}", *FAST, "peak_flops=1e12"])
    assert proc.returncode == 0, proc.stderr
    s = read_summary(only_run_dir(results))
    assert (s["precision_used"], s["compiled"], s["attention_kernel"]) == ("fp32", False, None)
    assert s["untimed_steps"] == 1 and s["untimed_s"] > 0
    timed = s["steps"] - 1
    tokens_per_step = s["budget"]["tokens"] // s["budget"]["steps"]
    assert s["tokens_per_s"] == pytest.approx(timed * tokens_per_step / s["train_time_s"])
    seq_len = s["flops_per_example"] // s["flops_per_token"]
    examples = timed * tokens_per_step // seq_len
    assert s["mfu"] == pytest.approx(s["flops_per_example"] * examples / s["train_time_s"] / 1e12)
    assert analysis_main(["report", str(results), "--out", str(results.parent / "report")]) == 0
    table = pd.read_csv(results.parent / "report" / "tables" / "throughput.csv")
    assert table.mfu.iloc[0] == pytest.approx(s["mfu"]) and table.tokens_per_s.iloc[0] == pytest.approx(
        s["tokens_per_s"]
    )
