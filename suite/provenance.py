"""Provenance for every record: code version, package versions, hardware, host and time."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path

import torch

CORE_PACKAGES = ("torch", "numpy", "hydra-core", "omegaconf", "optbench")
REPO_ROOT = Path(__file__).resolve().parent.parent


def git_commit() -> str | None:
    """HEAD of the suite's checkout, with '+dirty' when tracked files have uncommitted changes."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


def package_versions(names: tuple[str, ...]) -> dict[str, str | None]:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def provenance(device: torch.device, optimizer_packages: tuple[str, ...], data_fingerprint: str) -> dict:
    return {
        "git_commit": git_commit(),
        "packages": package_versions(tuple(dict.fromkeys(CORE_PACKAGES + optimizer_packages))),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "device": device_name(device),
        "device_type": device.type,
        "data_fingerprint": data_fingerprint,
        "hostname": socket.gethostname(),
        "pid": os.getpid(),  # with the host: whether a `running` record's process still lives (schema.process_gone)
    }
