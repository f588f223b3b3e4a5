"""The workload interface: what the harness needs from a model + data + metric, nothing about optimizers."""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import nn


class ParamRole(str, enum.Enum):
    """What a parameter is, so optimizers can split parameters without guessing from names or shapes."""

    EMBEDDING = "embedding"
    HEAD = "head"
    HIDDEN_MATRIX = "hidden_matrix"
    CONV_KERNEL = "conv_kernel"
    STEM = "stem"  # the input layer's weights where it is not an embedding: a CNN's first convolution
    NORM = "norm"
    BIAS = "bias"


@dataclass(frozen=True)
class Metric:
    """An evaluation metric and whether lower or higher is better."""

    name: str
    lower_is_better: bool = True

    def reached(self, value: float, target: float) -> bool:
        return value <= target if self.lower_is_better else value >= target


Batch = torch.Tensor | tuple[torch.Tensor, ...]  # token windows, or (inputs, labels)


def to_device(batch: Batch, device: torch.device) -> Batch:
    """The batch on `device`; to a GPU through pinned host memory, so the copy runs without a host sync."""

    def move(t: torch.Tensor) -> torch.Tensor:
        if device.type == "cuda" and t.device.type == "cpu":
            t = t.pin_memory()
        return t.to(device, non_blocking=True)

    return move(batch) if isinstance(batch, torch.Tensor) else tuple(move(t) for t in batch)


class Workload(ABC):
    """A model, a train stream, a fixed held-out set and a loss, plus the facts the harness records."""

    name: str
    steps: int  # the step budget
    examples_per_step: int  # sequences (or images) per optimizer step
    tokens_per_step: int  # tokens per optimizer step (examples for non-sequence workloads)
    micro_batches: int  # gradient-accumulation chunks per step
    micro_batch_size: int | None = None  # examples per chunk; None until chosen (`micro_batch_size: auto`)
    primary_metric: Metric
    target: float | None
    cuda_precision: str = "fp32"  # what precision=auto means on CUDA (the LM and ViT families: bf16)
    bn_recompute_batches: int = 0  # batch-norm models: train batches to recompute statistics on for other weights

    @abstractmethod
    def build_model(self, seed: int) -> nn.Module:
        """A freshly initialised model on the CPU, deterministic in `seed`."""

    @abstractmethod
    def param_roles(self, model: nn.Module) -> dict[str, ParamRole]:
        """The role of every named parameter of `model`."""

    @abstractmethod
    def train_batch(self, step: int, data_seed: int) -> Batch:
        """The training batch for optimizer step `step`: a pure function of (step, data_seed)."""

    @abstractmethod
    def eval_batches(self) -> Iterable[Batch]:
        """The fixed held-out set, in batches; identical for every trial."""

    def memory_bytes(self, micro: int) -> int | None:
        """A lower estimate of a CPU training step's memory with micro-batches of `micro` examples, where a workload
        can be too large for a machine (the language models); None: not estimated."""
        return None

    @abstractmethod
    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Mean training loss of `model` on `batch` (a scalar tensor)."""

    @abstractmethod
    def evaluate(self, model: nn.Module, device: torch.device, autocast: torch.autocast) -> dict[str, float]:
        """Eval metrics on the held-out set (keys without the `eval/` prefix); the model is in eval mode."""

    @abstractmethod
    def facts(self) -> dict:
        """Facts for the record: FLOPs per token, parameter counts, data fingerprint, irreducible loss..."""

    def set_micro_batch_size(self, micro) -> None:
        """Examples per forward/backward: a positive integer dividing the batch, or 'auto' (left to the trial,
        which probes the largest that fits on a GPU: suite/micro_batch.py)."""
        if micro == "auto":
            self.micro_batch_size, self.micro_batches = None, 0
            return
        if self.examples_per_step % micro:
            raise ValueError(
                f"workload.batch_size={self.examples_per_step} is not a multiple of workload.micro_batch_size="
                f"{micro}: a step must split into whole micro-batches"
            )
        self.micro_batch_size, self.micro_batches = micro, self.examples_per_step // micro

    def micro_batch_split(self, batch: Batch, parts: int) -> Iterator[Batch]:
        """Split a batch into `parts` equal chunks: gradient-accumulation micro-batches, or data-parallel shards."""
        if isinstance(batch, torch.Tensor):
            return iter(batch.chunk(parts))
        return zip(*(t.chunk(parts) for t in batch), strict=True)


def roles_by_module(
    model: nn.Module, embeddings: tuple[nn.Module, ...], heads: tuple[nn.Module, ...], stems: tuple[nn.Module, ...] = ()
) -> dict:
    """Assign roles from module types: the given embedding/head/stem modules, other 2-D weights are hidden
    matrices, 4-D weights conv kernels, norm weights norms, any `bias` a bias."""
    roles: dict[str, ParamRole] = {}
    for mod_name, module in model.named_modules():
        for p_name, p in module.named_parameters(recurse=False):
            full = f"{mod_name}.{p_name}" if mod_name else p_name
            if p_name == "bias":
                role = ParamRole.BIAS
            elif module in embeddings:
                role = ParamRole.EMBEDDING
            elif module in heads:
                role = ParamRole.HEAD
            elif module in stems:
                role = ParamRole.STEM
            elif isinstance(module, nn.RMSNorm | nn.LayerNorm | nn.modules.batchnorm._NormBase | nn.GroupNorm):
                role = ParamRole.NORM
            elif p.ndim == 2:
                role = ParamRole.HIDDEN_MATRIX
            elif p.ndim == 4:
                role = ParamRole.CONV_KERNEL
            else:
                raise ValueError(f"cannot tell the role of parameter {full!r} (shape {tuple(p.shape)})")
            roles[full] = role
    return roles
