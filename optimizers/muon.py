"""Muon (Jordan et al. 2024): torch.optim.Muon on hidden matrices, an AdamW companion for everything else.

torch.optim.Muon accepts 2-D parameters only, so conv kernels go to the companion with the embeddings, the
output head, norms and biases (the reference flattens conv kernels; torch's implementation cannot)."""

from __future__ import annotations

import torch

from optimizers.spec import ChainedOptimizer, OptimizerSpec, on_cuda, split_by_roles
from workloads.base import ParamRole


def build(params, roles, hp, ctx) -> ChainedOptimizer:
    matrices, rest = split_by_roles(params, roles, {ParamRole.HIDDEN_MATRIX})
    muon = torch.optim.Muon(
        matrices,
        lr=hp["lr"],
        weight_decay=hp["weight_decay"],
        momentum=hp["momentum"],
        nesterov=True,  # the reference; a bf16 + nesterov=False aliasing bug is reported upstream
        ns_steps=hp["ns_steps"],
        adjust_lr_fn=hp["adjust_lr_fn"],
    )
    companion = torch.optim.AdamW(
        rest,
        lr=hp["adam_lr"],
        betas=tuple(hp["adam_betas"]),
        eps=hp["adam_eps"],
        weight_decay=hp["adam_weight_decay"],
        fused=on_cuda(params) or None,
    )
    return ChainedOptimizer(muon, companion)


SPEC = OptimizerSpec(
    name="muon",
    build=build,
    hparams=frozenset(
        {
            "lr",
            "momentum",
            "weight_decay",
            "ns_steps",
            "adjust_lr_fn",
            "adam_lr",
            "adam_betas",
            "adam_eps",
            "adam_weight_decay",
        }
    ),
    choices={"adjust_lr_fn": ("original", "match_rms_adamw")},
)
