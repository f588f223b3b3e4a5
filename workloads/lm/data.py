"""Token sources for the language-model workloads: stdlib text, a synthetic Markov language, token shards."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SHARD_MAGIC = 20240520
SHARD_VERSION = 1
SHARD_HEADER_INTS = 256
SHARD_HEADER_BYTES = SHARD_HEADER_INTS * 4


@dataclass(frozen=True)
class TokenData:
    """Train token arrays (one per shard or corpus), one held-out array, and facts for the record."""

    train: list[np.ndarray]
    val: np.ndarray
    vocab_size: int
    fingerprint: str
    irreducible_loss: float | None = None  # nats per token, where the source knows it exactly


# --- stdlib_text ---------------------------------------------------------------------------------------------


def stdlib_text(cfg: dict) -> TokenData:
    """Bytes of the Python standard library's own sources (pydoc_data's bundled docs included), vocab 256.

    Files are read in sorted relative-path order; a file is held out when the hash of its path falls in
    1/`heldout_every` of the hash space, so the split is fixed per file and does not shift when files are added.
    The fingerprint hashes every path and byte, so results from different Python versions never mix silently.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    paths = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = [d for d in subdirs if d not in ("site-packages", "dist-packages", "__pycache__")]
        paths += [Path(directory, f) for f in files if f.endswith(".py")]
    paths.sort(key=lambda p: p.relative_to(root).as_posix())
    digest = hashlib.sha256()
    train, val = [], []
    for path in paths:
        rel = path.relative_to(root).as_posix()
        data = path.read_bytes()
        digest.update(rel.encode() + b"\0" + data)
        heldout = int(hashlib.sha256(rel.encode()).hexdigest()[:8], 16) % cfg["heldout_every"] == 0
        (val if heldout else train).append(data)
    if not paths:
        raise ValueError(f"stdlib_text: no Python sources found under {root}")
    return TokenData(
        train=[np.frombuffer(b"".join(train), dtype=np.uint8)],
        val=np.frombuffer(b"".join(val), dtype=np.uint8),
        vocab_size=256,
        fingerprint="stdlib_text:" + digest.hexdigest()[:16],
    )


# --- synthetic ---------------------------------------------------------------------------------------------


def zipf_markov_chain(vocab_size: int, exponent: float, seed: int) -> np.ndarray:
    """Transition matrix P[i, j]: from each token i, the next token's probability is Zipf in its rank
    under a per-row random permutation of the vocabulary."""
    rng = np.random.default_rng([seed, 0])
    ranks = np.argsort(rng.random((vocab_size, vocab_size)), axis=1) + 1  # a random permutation per row
    weights = ranks.astype(np.float64) ** -exponent
    return weights / weights.sum(axis=1, keepdims=True)


def stationary_distribution(P: np.ndarray) -> np.ndarray:
    """The left eigenvector of P for eigenvalue 1, normalised (the chain is irreducible: all P > 0)."""
    values, vectors = np.linalg.eig(P.T)
    pi = np.real(vectors[:, np.argmin(np.abs(values - 1.0))])
    return pi / pi.sum()


def entropy_rate(P: np.ndarray) -> float:
    """H = -sum_i pi_i sum_j P_ij log P_ij, in nats: the loss of a predictor that knows the chain."""
    pi = stationary_distribution(P)
    return float(-(pi[:, None] * P * np.log(P)).sum())


def sample_chains(P: np.ndarray, n_tokens: int, n_chains: int, rng: np.random.Generator) -> np.ndarray:
    """`n_chains` independent chains started from the stationary distribution, concatenated."""
    vocab = P.shape[0]
    length = -(-n_tokens // n_chains)
    # Row i of the CDF shifted by i: one sorted array, so one searchsorted samples every chain's next token.
    shifted_cdf = (np.cumsum(P, axis=1) + np.arange(vocab)[:, None]).ravel()
    shifted_cdf[vocab - 1 :: vocab] = np.arange(1, vocab + 1)  # each row ends exactly at i + 1
    out = np.empty((n_chains, length), dtype=np.uint16)
    state = rng.choice(vocab, size=n_chains, p=stationary_distribution(P))
    out[:, 0] = state
    for t in range(1, length):
        state = np.searchsorted(shifted_cdf, state + rng.random(n_chains), side="right") - state * vocab
        out[:, t] = state
    return out.reshape(-1)[:n_tokens]


def synthetic(cfg: dict) -> TokenData:
    """A deterministic Zipf-distributed Markov-chain language whose entropy rate is known exactly."""
    P = zipf_markov_chain(cfg["vocab_size"], cfg["zipf_exponent"], cfg["seed"])
    train = sample_chains(P, cfg["train_tokens"], cfg["chains"], np.random.default_rng([cfg["seed"], 1]))
    val = sample_chains(P, cfg["val_tokens"], cfg["chains"], np.random.default_rng([cfg["seed"], 2]))
    digest = hashlib.sha256(train.tobytes() + b"\0" + val.tobytes()).hexdigest()[:16]
    return TokenData(
        train=[train],
        val=val,
        vocab_size=cfg["vocab_size"],
        fingerprint="synthetic:" + digest,
        irreducible_loss=entropy_rate(P),
    )


# --- shards ------------------------------------------------------------------------------------------------


def write_shard(path: str | Path, tokens: np.ndarray) -> None:
    """Write tokens in the llm.c / modded-nanogpt shard format (used by tests and data preparation)."""
    header = np.zeros(SHARD_HEADER_INTS, dtype=np.int32)
    header[:3] = (SHARD_MAGIC, SHARD_VERSION, len(tokens))
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(np.asarray(tokens, dtype=np.uint16).tobytes())


def read_shard(path: str | Path) -> np.ndarray:
    """Memory-map one shard's tokens after checking its header and size; refuse a malformed file by name."""
    size = Path(path).stat().st_size
    if size < SHARD_HEADER_BYTES:
        raise ValueError(f"shard {path}: truncated header ({size} bytes, expected at least {SHARD_HEADER_BYTES})")
    header = np.fromfile(path, dtype="<i4", count=SHARD_HEADER_INTS)
    if header[0] != SHARD_MAGIC:
        raise ValueError(f"shard {path}: bad magic number {header[0]} (expected {SHARD_MAGIC})")
    if header[1] != SHARD_VERSION:
        raise ValueError(f"shard {path}: unsupported version {header[1]} (expected {SHARD_VERSION})")
    n_tokens = int(header[2])
    if size != SHARD_HEADER_BYTES + 2 * n_tokens:
        raise ValueError(
            f"shard {path}: truncated or padded (header says {n_tokens} tokens, "
            f"file holds {(size - SHARD_HEADER_BYTES) / 2:g})"
        )
    return np.memmap(path, dtype="<u2", mode="r", offset=SHARD_HEADER_BYTES, shape=(n_tokens,))


MANIFEST = "manifest.json"  # written by `python -m workloads.lm.fetch`: each shard's SHA-256, bytes and tokens
DATA_ROOT = "OPTBENCH_DATA"  # environment variable: where fetched datasets live (default ~/.cache/optbench)


def default_dir(dataset: str) -> Path:
    """Where `python -m workloads.lm.fetch <dataset>` puts its shards unless given --dir."""
    return Path(os.environ.get(DATA_ROOT) or "~/.cache/optbench").expanduser() / dataset


def read_manifest(directory: Path) -> dict:
    """The fetch manifest in `directory` ({} when there is none or it cannot be read)."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def shard_fingerprint(paths: list[str]) -> str:
    """The SHA-256s of the fetch manifest beside the shards when it lists every one of them; otherwise a hash of
    each shard's name, size and first and last MiB (cheap on tens of GB, catches swapped data)."""
    digest = hashlib.sha256()
    manifests = {directory: read_manifest(directory).get("files", {}) for directory in {Path(p).parent for p in paths}}
    listed = {p: manifests[Path(p).parent].get(Path(p).name) or {} for p in paths}
    if all(entry.get("bytes") == Path(p).stat().st_size for p, entry in listed.items()):
        for path, entry in listed.items():
            digest.update(f"{Path(path).name}:{entry['sha256']}\n".encode())
        return "shards-sha256:" + digest.hexdigest()[:16]
    for path in paths:
        size = Path(path).stat().st_size
        with open(path, "rb") as f:
            head = f.read(1 << 20)
            f.seek(max(0, size - (1 << 20)))
            tail = f.read()
        digest.update(f"{Path(path).name}:{size}".encode() + head + tail)
    return "shards:" + digest.hexdigest()[:16]


def shard_paths(cfg: dict) -> list[str]:
    """The shards matched by the glob `path`, or, when it is null, those fetched for `dataset` into its default
    directory (docs/gpu.md)."""
    if cfg.get("path"):
        return sorted(glob.glob(str(Path(cfg["path"]).expanduser())))
    if not cfg.get("dataset"):
        raise ValueError(
            "workload.data.path is not set: give a glob of token shards, "
            "e.g. workload.data.path='/data/fineweb10B/fineweb_*.bin'"
        )
    directory = default_dir(cfg["dataset"])
    paths = sorted(glob.glob(str(directory / "*.bin")))
    if not paths:
        raise ValueError(
            f"no {cfg['dataset']} shards in {directory}: fetch them with "
            f"`python -m workloads.lm.fetch {cfg['dataset']} --shards N` (100M tokens each), "
            "or set workload.data.path to a glob of token shards"
        )
    return paths


def shards(cfg: dict) -> TokenData:
    """Token shards (see `shard_paths`); files named `*_val_*` are the held-out set (llm.c naming)."""
    paths = shard_paths(cfg)
    where = cfg.get("path") or default_dir(cfg["dataset"])
    val_paths = [p for p in paths if "_val_" in Path(p).name]
    train_paths = [p for p in paths if p not in val_paths]
    if not train_paths or not val_paths:
        raise ValueError(
            f"workload.data.path={where!s} matched {len(train_paths)} train and {len(val_paths)} val shards; "
            "need at least one of each (val shards have '_val_' in their name)"
        )
    train = [read_shard(p) for p in train_paths]
    val = [read_shard(p) for p in val_paths]
    return TokenData(
        train=train,
        val=np.concatenate(val) if len(val) > 1 else val[0],
        vocab_size=cfg["vocab_size"],
        fingerprint=shard_fingerprint(paths),
    )


SOURCES: dict[str, Callable[[dict], TokenData]] = {"stdlib_text": stdlib_text, "synthetic": synthetic, "shards": shards}


def load_tokens(cfg: dict) -> TokenData:
    """Build the token source named by `cfg['source']`."""
    if cfg["source"] not in SOURCES:
        raise ValueError(f"unknown data source {cfg['source']!r}; valid: {', '.join(sorted(SOURCES))}")
    return SOURCES[cfg["source"]](cfg)
