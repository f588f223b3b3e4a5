"""`workload.micro_batch_size: auto`: on a GPU, the largest power of two that fits, found by a short probe (one
training step at each candidate size, largest first, stopping at the first that does not run out of memory); on
a CPU, the whole batch (no probe: host memory is not the limit there, and the result must not depend on it)."""

from __future__ import annotations

from collections.abc import Callable


def candidates(batch: int, world: int) -> list[int]:
    """Powers of two m, largest first, that split each of the `world` ranks' share of `batch` into whole
    micro-batches."""
    if batch % world:
        return []
    share, largest = batch // world, 1
    while share % (largest * 2) == 0:
        largest *= 2
    return [largest >> k for k in range(largest.bit_length())]


def choose(batch: int, world: int, fits: Callable[[int], bool]) -> tuple[int, list[dict]]:
    """The first candidate for which `fits(m)` is true, and every probe made: [{micro_batch_size, fits}]."""
    probes = []
    for m in candidates(batch, world):
        probes.append({"micro_batch_size": m, "fits": bool(fits(m))})
        if probes[-1]["fits"]:
            return m, probes
    raise ValueError(
        f"not even one example per micro-batch fits in the GPU's memory (batch {batch} on {world} rank(s)); "
        "use a GPU with more memory, more ranks, or workload.activation_checkpointing=true"
    )
