"""`workload.micro_batch_size: auto`: the candidates, the probe against a fake GPU memory limit, the CPU rule,
and activation checkpointing's gradients."""

from __future__ import annotations

import functools

import pytest
import torch

from suite import micro_batch, trial
from tests.conftest import FAST, cli, compose_config, only_run_dir, read_summary
from workloads.lm.model import LMShape, Transformer


@pytest.mark.parametrize(
    "batch, world, expected",
    [
        (512, 1, [512, 256, 128, 64, 32, 16, 8, 4, 2, 1]),
        (512, 2, [256, 128, 64, 32, 16, 8, 4, 2, 1]),
        (96, 1, [32, 16, 8, 4, 2, 1]),
        (6, 4, []),
    ],
)
def test_candidates_are_powers_of_two_splitting_each_ranks_share(batch, world, expected):
    assert micro_batch.candidates(batch, world) == expected


def test_the_probe_finds_the_largest_micro_batch_under_a_fake_memory_limit(monkeypatch, tmp_path):
    """Real training steps on lm_tiny (batch 16 x 128 tokens) whose activations 'run out of memory' above a limit
    of 4 sequences: the probe tries 16, 8, then 4, which fits, and leaves the workload at 4."""
    cfg = compose_config([*FAST, "workload.micro_batch_size=auto", f"results_dir={tmp_path}"])
    plan = trial.prepare(trial.OmegaConf.to_container(cfg, resolve=True))
    assert plan.workload.micro_batch_size is None
    real, ran = trial.train_step, []

    def limited(model, opt, workload, batch, *args):
        if workload.micro_batch_size > 4:
            raise torch.OutOfMemoryError("CUDA out of memory (fake limit)")
        ran.append(workload.micro_batches)
        return real(model, opt, workload, batch, *args)

    monkeypatch.setattr(trial, "train_step", limited)
    micro, probes = micro_batch.choose(16, 1, functools.partial(trial.step_fits, plan))
    assert micro == 4 and [p["fits"] for p in probes] == [False, False, True]
    assert [p["micro_batch_size"] for p in probes] == [16, 8, 4]
    assert plan.workload.micro_batch_size == 4 and ran == [4]  # one real step of 4 micro-batches
    with pytest.raises(ValueError, match="not even one example"):
        micro_batch.choose(16, 1, lambda m: False)


@pytest.mark.slow
def test_auto_on_a_cpu_takes_the_whole_batch_and_records_it(results):
    proc = cli([f"results_dir={results}", *FAST, "workload.micro_batch_size=auto"])
    assert proc.returncode == 0, proc.stderr
    s = read_summary(only_run_dir(results))
    assert s["micro_batch_size"] == 16 and s["micro_batch_probes"] == []


def test_activation_checkpointing_gives_the_same_gradients():
    shape = LMShape(vocab_size=64, n_layer=2, n_head=2, d_model=32, seq_len=16)
    idx = torch.randint(0, 64, (3, 16), generator=torch.Generator().manual_seed(0))
    grads = []
    for checkpoint in (False, True):
        torch.manual_seed(0)
        model = Transformer(shape, checkpoint_blocks=checkpoint)
        model(idx).square().mean().backward()
        grads.append([p.grad for p in model.parameters()])
    for plain, recomputed in zip(*grads, strict=True):
        assert torch.equal(plain, recomputed)
