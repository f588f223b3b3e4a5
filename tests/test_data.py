"""Token sources: the shard reader on hand-made shards, the synthetic language's entropy, the stdlib split."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import FAST, cli, only_run_dir, read_summary
from workloads.lm.data import (
    entropy_rate,
    read_shard,
    sample_chains,
    shards,
    stdlib_text,
    synthetic,
    write_shard,
    zipf_markov_chain,
)
from workloads.lm.workload import LanguageModel


def make_shards(directory, n_train=2, tokens=5000, seed=0):
    rng = np.random.default_rng(seed)
    written = {}
    for i in range(n_train + 1):
        name = f"fw_{'val' if i == 0 else 'train'}_{i:06d}.bin"
        written[name] = rng.integers(0, 50257, size=tokens + i, dtype=np.uint16)
        write_shard(directory / name, written[name])
    return written


def test_shard_round_trip_and_header(tmp_path):
    tokens = np.array([50256, 1, 2, 65535, 7], dtype=np.uint16)
    write_shard(tmp_path / "x.bin", tokens)
    raw = (tmp_path / "x.bin").read_bytes()
    assert len(raw) == 1024 + 2 * len(tokens)
    assert list(np.frombuffer(raw[:12], dtype="<i4")) == [20240520, 1, 5]
    np.testing.assert_array_equal(read_shard(tmp_path / "x.bin"), tokens)


def test_truncated_and_short_shards_are_refused(tmp_path):
    write_shard(tmp_path / "x.bin", np.arange(100, dtype=np.uint16))
    raw = (tmp_path / "x.bin").read_bytes()
    (tmp_path / "cut.bin").write_bytes(raw[:-2])
    with pytest.raises(ValueError, match=r"cut.bin: truncated or padded \(header says 100 tokens, file holds 99\)"):
        read_shard(tmp_path / "cut.bin")
    (tmp_path / "stub.bin").write_bytes(raw[:100])
    with pytest.raises(ValueError, match="stub.bin: truncated header"):
        read_shard(tmp_path / "stub.bin")


def test_shards_split_val_by_name_and_batches_come_from_train(tmp_path):
    written = make_shards(tmp_path)
    data = shards({"path": str(tmp_path / "fw_*.bin"), "vocab_size": 50304})
    np.testing.assert_array_equal(data.val, written["fw_val_000000.bin"])
    assert [len(a) for a in data.train] == [5001, 5002]
    assert data.fingerprint.startswith("shards:")

    cfg = {
        "name": "t",
        "family": "lm",
        "n_layer": 1,
        "d_model": 16,
        "n_head": 2,
        "seq_len": 32,
        "batch_size": 64,
        "micro_batch_size": 64,
        "activation_checkpointing": False,
        "chinchilla": None,
        "tokens": 64 * 32 * 3,
        "eval_tokens": 320,
        "data": {"source": "shards", "path": str(tmp_path / "fw_*.bin"), "vocab_size": 50304},
    }
    workload = LanguageModel(cfg)
    train_text = {bytes(written[n][i : i + 33]) for n in written if "train" in n for i in range(len(written[n]) - 32)}
    batch = workload.train_batch(step=5, data_seed=3)
    assert batch.shape == (64, 33)
    assert all(bytes(row.numpy().astype(np.uint16)) in train_text for row in batch)
    assert torch_equal(batch, workload.train_batch(step=5, data_seed=3))
    assert not torch_equal(batch, workload.train_batch(step=6, data_seed=3))
    eval_rows = list(workload.eval_batches())[0]
    np.testing.assert_array_equal(eval_rows[1].numpy(), written["fw_val_000000.bin"][32:65])


def torch_equal(a, b) -> bool:
    return bool((a == b).all())


@pytest.mark.slow
def test_shards_end_to_end_from_the_cli(tmp_path):
    make_shards(tmp_path, tokens=20000)
    results = tmp_path / "results"
    proc = cli(
        [
            *FAST,
            f"results_dir={results}",
            "workload/data=shards",
            f"workload.data.path={tmp_path}/fw_*.bin",
            "workload.n_layer=1",
            "workload.d_model=32",
            "workload.n_head=2",
        ]
    )
    assert proc.returncode == 0, proc.stderr
    summary = read_summary(only_run_dir(results))
    assert summary["status"] == "completed" and summary["vocab_size"] == 50304
    assert summary["data_fingerprint"].startswith("shards:")


def test_synthetic_entropy_rate_matches_monte_carlo():
    P = zipf_markov_chain(64, 1.1, seed=3)
    tokens = sample_chains(P, 400_000, 16, np.random.default_rng(0)).astype(np.int64)
    per_chain = tokens.reshape(16, -1)
    nll = -np.log(P[per_chain[:, :-1], per_chain[:, 1:]])
    exact = entropy_rate(P)
    assert abs(nll.mean() - exact) < 4 * nll.std() / np.sqrt(nll.size) + 1e-3
    assert 0.5 * np.log(64) < exact < np.log(64)  # Zipf rows: below uniform, far from deterministic


def test_synthetic_is_deterministic_and_reports_its_entropy():
    cfg = {"vocab_size": 32, "zipf_exponent": 1.2, "seed": 5, "train_tokens": 5000, "val_tokens": 1000, "chains": 4}
    a, b = synthetic(cfg), synthetic(cfg)
    np.testing.assert_array_equal(a.train[0], b.train[0])
    assert a.fingerprint == b.fingerprint and a.irreducible_loss == entropy_rate(zipf_markov_chain(32, 1.2, 5))
    assert synthetic({**cfg, "seed": 6}).fingerprint != a.fingerprint
    assert a.train[0].max() < 32 and len(a.val) == 1000


def test_stdlib_text_split_is_disjoint_and_stable():
    a = stdlib_text({"heldout_every": 20})
    b = stdlib_text({"heldout_every": 20})
    assert a.fingerprint == b.fingerprint and a.vocab_size == 256
    assert 0.01 < len(a.val) / (len(a.val) + len(a.train[0])) < 0.15
    assert bytes(a.val[:4096]) not in bytes(a.train[0])  # held-out files are not in the training text
    assert stdlib_text({"heldout_every": 7}).fingerprint == a.fingerprint  # the bytes are the same; the split differs
