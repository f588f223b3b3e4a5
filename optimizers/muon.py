"""Muon (Jordan et al. 2024): momentum SGD whose update is orthogonalised by a Newton–Schulz iteration, on hidden
matrices and conv kernels; an AdamW companion for the input layer (embeddings, a CNN's first convolution), the
output head, norms and biases, as the reference assigns them ("hidden weight layers" only).

The step is written from the algorithm (as torch.optim.Muon and the reference muon.py compute it: Nesterov
momentum, the quintic iteration with coefficients (3.4445, -4.7750, 2.0315) for `ns_steps` steps, the
`adjust_lr_fn` scaling, decoupled weight decay); the iteration is optimizers/newton_schulz.py's (bf16 on CUDA,
fp32 on CPUs; tests/test_optimizers.py checks bf16 against torch.optim.Muon bit for bit), split over the ranks of
a data-parallel trial as the reference's distributed Muon splits it (`across_ranks`). Conv kernels
(out, in, kh, kw) are orthogonalised as their (out, in*kh*kw) views, the reference's flattening."""

from __future__ import annotations

import functools
import math

import torch

from optimizers.newton_schulz import across_ranks, orthogonalise, precision
from optimizers.spec import ChainedOptimizer, OptimizerSpec, on_cuda, split_by_roles
from workloads.base import ParamRole

LR_SCALES = {  # torch.optim.Muon's adjust_lr_fn choices, from the matrix's (rows, cols)
    "original": lambda rows, cols: math.sqrt(max(1.0, rows / cols)),  # the reference
    "match_rms_adamw": lambda rows, cols: 0.2 * math.sqrt(max(rows, cols)),  # Moonlight (Liu et al. 2025)
}


class Muon(torch.optim.Optimizer):
    def __init__(
        self,
        params,
        lr: float,
        weight_decay: float,
        momentum: float,
        ns_steps: int,
        adjust_lr_fn: str,
        nesterov: bool = True,
        eps: float = 1e-7,
        ns_dtype: torch.dtype | None = None,
    ):
        """`ns_dtype`: the Newton–Schulz precision (None: bf16 on CUDA, fp32 elsewhere)."""
        defaults = dict(
            lr=lr,
            weight_decay=weight_decay,
            momentum=momentum,
            ns_steps=ns_steps,
            adjust_lr_fn=adjust_lr_fn,
            nesterov=nesterov,
            eps=eps,
        )
        super().__init__(params, defaults)
        self.ns_dtype = ns_dtype

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, momentum = group["lr"], group["momentum"]
            params = [p for p in group["params"] if p.grad is not None]
            updates = []
            for p in params:
                grad = p.grad.view(len(p), -1)
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(grad)
                buf = state["momentum_buffer"]
                buf.lerp_(grad, 1 - momentum)
                updates.append(grad.lerp(buf, momentum) if group["nesterov"] else buf)
            dtype = self.ns_dtype or (precision(params[0]) if params else torch.float32)
            ortho = functools.partial(orthogonalise, steps=group["ns_steps"], dtype=dtype, eps=group["eps"])
            orthos = across_ranks(updates, ortho)
            for p, update in zip(params, orthos, strict=True):
                scale = LR_SCALES[group["adjust_lr_fn"]](*update.shape)
                p.mul_(1 - lr * group["weight_decay"])
                p.add_(update.view_as(p), alpha=-lr * scale)


def build(params, roles, hp, ctx) -> ChainedOptimizer:
    matrices, rest = split_by_roles(params, roles, {ParamRole.HIDDEN_MATRIX, ParamRole.CONV_KERNEL})  # not STEM
    optimizers = []
    if matrices:
        optimizers.append(
            Muon(
                matrices,
                lr=hp["lr"],
                weight_decay=hp["weight_decay"],
                momentum=hp["momentum"],
                ns_steps=hp["ns_steps"],
                adjust_lr_fn=hp["adjust_lr_fn"],
            )
        )
    if rest:  # no companion without parameters for it (the quadratic has one matrix and nothing else)
        optimizers.append(
            torch.optim.AdamW(
                rest,
                lr=hp["adam_lr"],
                betas=tuple(hp["adam_betas"]),
                eps=hp["adam_eps"],
                weight_decay=hp["adam_weight_decay"],
                fused=on_cuda(params) or None,
            )
        )
    return ChainedOptimizer(*optimizers)


SPEC = OptimizerSpec(name="muon", build=build, packages=("torch", "pytorch_optimizer"))
