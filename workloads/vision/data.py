"""Image data in memory as uint8 arrays: scikit-learn's handwritten digits (embedded) and CIFAR-10 in its official
binary format (no pickle)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR_TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR_TEST = "test_batch.bin"
CIFAR_RECORD = 1 + 3 * 32 * 32  # one label byte, then 1024 red, 1024 green, 1024 blue bytes (row-major 32 x 32)


@dataclass(frozen=True)
class Images:
    """Train and held-out images (N, C, H, W) uint8 with int64 labels."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    classes: int
    fingerprint: str


def fingerprint(name: str, *arrays: np.ndarray) -> str:
    digest = hashlib.sha1()
    for a in arrays:
        digest.update(np.ascontiguousarray(a).tobytes())
    return f"{name}:{digest.hexdigest()[:16]}"


def split_indices(n: int, heldout_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and held-out indices from one seeded permutation: fixed by the seed, disjoint, covering 0..n-1."""
    if not 0 < heldout_fraction < 1:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    n_test = round(heldout_fraction * n)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def digits(heldout_fraction: float, split_seed: int) -> Images:
    """scikit-learn's 1,797 8x8 digits (values 0-16 scaled to 0-255), split once by a fixed seeded permutation."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = np.round(data.images * (255 / 16)).astype(np.uint8)[:, None]  # (1797, 1, 8, 8)
    y = data.target.astype(np.int64)
    train, test = split_indices(len(x), heldout_fraction, split_seed)
    return Images(x[train], y[train], x[test], y[test], 10, fingerprint("digits", x[train], x[test]))


def read_cifar_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 binary batch file: (N, 3, 32, 32) uint8 images and their labels."""
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % CIFAR_RECORD:
        raise ValueError(
            f"{path}: {raw.size} bytes is not a whole number of CIFAR-10 records ({CIFAR_RECORD} bytes each); "
            "the file is truncated or not CIFAR-10 binary"
        )
    records = raw.reshape(-1, CIFAR_RECORD)
    labels = records[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise ValueError(f"{path}: label {labels.max()} is out of range 0-9; not a CIFAR-10 binary file")
    return records[:, 1:].reshape(-1, 3, 32, 32), labels


def cifar10(path: str | None) -> Images:
    """The five training batches and the test batch from the directory `path` (cifar-10-batches-bin)."""
    if not path:
        raise ValueError(
            f"CIFAR-10 needs workload.data.path: download {CIFAR_URL}, extract it, and set "
            "workload.data.path=/where/it/is/cifar-10-batches-bin"
        )
    root = Path(path).expanduser()
    missing = [n for n in (*CIFAR_TRAIN, CIFAR_TEST) if not (root / n).is_file()]
    if missing:
        raise ValueError(
            f"workload.data.path={path} lacks {', '.join(missing)}; it should be the extracted "
            f"cifar-10-batches-bin directory of {CIFAR_URL}"
        )
    train = [read_cifar_file(root / n) for n in CIFAR_TRAIN]
    test_x, test_y = read_cifar_file(root / CIFAR_TEST)
    train_x = np.concatenate([x for x, _ in train])
    train_y = np.concatenate([y for _, y in train])
    return Images(train_x, train_y, test_x, test_y, 10, fingerprint("cifar10", train_x, train_y, test_x, test_y))


def write_cifar_file(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """The official binary layout (for tests and for converting other sources)."""
    records = np.concatenate([labels.astype(np.uint8)[:, None], images.reshape(len(images), -1)], axis=1)
    records.astype(np.uint8).tofile(path)


SOURCES = {
    "digits": lambda cfg: digits(cfg["heldout_fraction"], cfg["split_seed"]),
    "cifar10": lambda cfg: cifar10(cfg.get("path")),
}


def load_images(cfg: dict) -> Images:
    if cfg["source"] not in SOURCES:
        raise ValueError(f"unknown image source {cfg['source']!r}; valid: {', '.join(SOURCES)}")
    return SOURCES[cfg["source"]](cfg)
