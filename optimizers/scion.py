"""Scion (Pethick et al. 2025, "Training Deep Learning Models with Norm-Constrained LMOs"), pytorch-optimizer's SCION.

Each role gets its own norm and radius, as in the paper's GPT set-up: hidden matrices the spectral norm,
embeddings a row norm (one unit-RMS vector per token), the output head the sign (max) norm, norms and biases
the bias RMS norm."""

from __future__ import annotations

import pytorch_optimizer
from pytorch_optimizer.optimizer.scion import LMONorm

from optimizers.spec import OptimizerSpec
from workloads.base import ParamRole

ROLE_NORMS = {
    ParamRole.HIDDEN_MATRIX: (LMONorm.SPECTRAL, "hidden_scale"),
    ParamRole.CONV_KERNEL: (LMONorm.SPECTRALCONV, "hidden_scale"),
    ParamRole.EMBEDDING: (LMONorm.ROW, "embedding_scale"),
    ParamRole.HEAD: (LMONorm.SIGN, "head_scale"),
    ParamRole.NORM: (LMONorm.BIAS, "norm_scale"),
    ParamRole.BIAS: (LMONorm.BIAS, "norm_scale"),
}


def build(params, roles, hp, ctx):
    groups = []
    for role, (norm, scale_key) in ROLE_NORMS.items():
        members = [p for n, p in params.items() if roles[n] == role]
        if members:
            # a plain int (LMONorm is an IntEnum): checkpoints load with torch.load(weights_only=True)
            groups.append({"params": members, "norm_type": int(norm), "scale": hp[scale_key]})
    return pytorch_optimizer.SCION(groups, lr=hp["lr"], momentum=hp["momentum"], weight_decay=hp["weight_decay"])


SPEC = OptimizerSpec(
    name="scion",
    build=build,
    packages=("torch", "pytorch_optimizer"),
)
