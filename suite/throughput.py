"""Throughput facts of a trial: the device's dense bf16 peak and the model FLOPs utilisation (MFU) achieved.

MFU = the workload's counted training FLOPs per example (6 N per token plus attention for the LMs; the measured
forward FLOPs x 3 for the vision models) x examples per timed second / the device's dense bf16 peak FLOP/s.
"""

from __future__ import annotations

# (a substring of torch.cuda.get_device_name(), dense bf16 tensor FLOP/s without sparsity), first match wins;
# from the vendors' datasheets (NVIDIA quotes "with sparsity" figures at twice these).
PEAK_BF16_FLOPS = (
    ("H100 PCIe", 756e12),  # H100 datasheet: PCIe 1,513 TFLOPS with sparsity
    ("H100 NVL", 835e12),  # NVL 1,671 with sparsity
    ("H100", 989e12),  # SXM 1,979 with sparsity
    ("H200", 989e12),  # H200 datasheet: SXM 1,979 with sparsity (the H100's tensor cores, more memory); GH200 too
    ("H800", 989e12),
    ("A100", 312e12),  # A100 datasheet: 312 (624 with sparsity), SXM and PCIe alike
    ("A800", 312e12),
    ("L40S", 362e12),  # L40S datasheet: 362.05 (733 with sparsity)
    ("L4", 121e12),  # L4 datasheet: 242 with sparsity
    ("RTX 4090", 165e12),  # Ada whitepaper: 165.2 with FP32 accumulate
)


def peak_flops(device_name: str, device_type: str, override: float | None) -> float | None:
    """`override` (config `peak_flops`) when given; else the table's entry for a CUDA device; None when unknown
    (and on CPUs, whose peak depends on cores, clocks and vector units no name reveals)."""
    if override is not None:
        return float(override)
    if device_type != "cuda":
        return None
    return next((peak for key, peak in PEAK_BF16_FLOPS if key in device_name), None)


def mfu(flops_per_example: float, examples: int, seconds: float, peak: float | None) -> float | None:
    """Model FLOPs utilisation of `examples` trained in `seconds` on a device of `peak` FLOP/s."""
    if peak is None or seconds <= 0 or examples <= 0:
        return None
    return flops_per_example * examples / seconds / peak
