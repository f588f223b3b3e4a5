"""Muon (Jordan et al. 2024): torch.optim.Muon on hidden matrices and conv kernels, an AdamW companion for the
embeddings, the output head, norms and biases.

torch.optim.Muon accepts 2-D parameters only; conv kernels (out, in, kh, kw) are given to it as 2-D views
(out, in*kh*kw) of the same storage, the flattening the reference implementation applies to them."""

from __future__ import annotations

import torch
from torch import nn

from optimizers.spec import ChainedOptimizer, OptimizerSpec, on_cuda, split_by_roles
from workloads.base import ParamRole


class Muon(torch.optim.Muon):
    """torch.optim.Muon plus conv kernels as flattened views: each step hands the kernel's gradient to its view,
    whose in-place update writes the kernel's storage."""

    def __init__(self, matrices: list, kernels: list, **kwargs):
        self.kernel_views = [(k, nn.Parameter(k.detach().view(len(k), -1))) for k in kernels]
        super().__init__(matrices + [view for _, view in self.kernel_views], **kwargs)

    @torch.no_grad()
    def step(self, closure=None):
        for kernel, view in self.kernel_views:
            view.grad = None if kernel.grad is None else kernel.grad.view_as(view)
        return super().step(closure)

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none=set_to_none)
        for kernel, _ in self.kernel_views:
            kernel.grad = None


def build(params, roles, hp, ctx) -> ChainedOptimizer:
    matrices, _ = split_by_roles(params, roles, {ParamRole.HIDDEN_MATRIX})
    kernels, _ = split_by_roles(params, roles, {ParamRole.CONV_KERNEL})
    _, rest = split_by_roles(params, roles, {ParamRole.HIDDEN_MATRIX, ParamRole.CONV_KERNEL})
    optimizers = []
    if matrices or kernels:
        optimizers.append(
            Muon(
                matrices,
                kernels,
                lr=hp["lr"],
                weight_decay=hp["weight_decay"],
                momentum=hp["momentum"],
                nesterov=True,  # the reference; a bf16 + nesterov=False aliasing bug is reported upstream
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


SPEC = OptimizerSpec(name="muon", build=build)
