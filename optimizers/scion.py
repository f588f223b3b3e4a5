"""Scion (Pethick et al. 2025, "Training Deep Learning Models with Norm-Constrained LMOs"), written from the
algorithm as the authors' scion.py (LIONS-EPFL/scion) computes it:

    d <- (1 - momentum) d + momentum g          (d starts at the first gradient; `momentum` is 1 - the usual one)
    p <- (1 - lr) p                             (the constrained variant, the authors' default; off: unconstrained)
    p <- p - lr * radius * lmo(d)

with one linear minimisation oracle and radius per parameter role, as in the authors' GPT configuration (the
example in their repository: embedding column norm with `transpose=True` at radius 1, hidden matrices the spectral
norm with `max=True` at radius 3, the output head the sign norm at radius 10, lr 0.01, momentum 0.1):
- hidden matrices: the spectral LMO, Newton-Schulz's polar factor times max(1, sqrt(d_out / d_in));
- conv kernels: the same on the (out, in*kh*kw) view, times sqrt(out / in) / (kh*kw) (their SpectralConv);
- embeddings: each token's vector scaled to unit RMS over the embedding dimension (their ColNorm, transposed for a
  (vocab, dim) table; position and class vectors alike). A patch-embedding conv is the input layer's linear map
  and gets the conv LMO;
- the head: sign(d) / d_in (their Sign, normalised);
- norms and biases: d over its RMS (their BiasRMS).
Newton-Schulz is optimizers/newton_schulz.py's: bf16 on CUDA as the authors, fp32 on CPUs. The authors'
`init()` (re-initialising weights per norm) is not applied: every optimizer starts from the workload's own
initialisation."""

from __future__ import annotations

import functools
import math

import torch

from optimizers.newton_schulz import across_ranks, orthogonalise, precision
from optimizers.spec import OptimizerSpec
from workloads.base import ParamRole

EPS = 1e-8  # the authors' eps in each norm's denominator


def spectral(d: torch.Tensor, steps: int, dtype: torch.dtype) -> torch.Tensor:
    d_out, d_in = d.shape
    return orthogonalise(d, steps, dtype).to(d.dtype) * max(1.0, math.sqrt(d_out / d_in))


def spectral_conv(d: torch.Tensor, steps: int, dtype: torch.dtype) -> torch.Tensor:
    d_out, d_in, *kernel = d.shape
    ortho = orthogonalise(d.reshape(d_out, -1), steps, dtype).to(d.dtype).view_as(d)
    return ortho * (math.sqrt(d_out / d_in) / math.prod(kernel))


def unit_rms_vectors(d: torch.Tensor, steps: int, dtype: torch.dtype) -> torch.Tensor:
    if d.ndim == 4:
        return spectral_conv(d, steps, dtype)
    return d / (d.pow(2).mean(dim=-1, keepdim=True).sqrt() + EPS)


def sign(d: torch.Tensor, steps: int, dtype: torch.dtype) -> torch.Tensor:
    return torch.sign(d) / d.shape[1]


def bias_rms(d: torch.Tensor, steps: int, dtype: torch.dtype) -> torch.Tensor:
    return d / (d.pow(2).mean(dim=0, keepdim=True).sqrt() + EPS)


LMOS = {
    "spectral": spectral,
    "spectral_conv": spectral_conv,
    "embedding": unit_rms_vectors,
    "sign": sign,
    "bias_rms": bias_rms,
}
ROLES = {  # role: (LMO, the hyperparameter holding its radius)
    ParamRole.HIDDEN_MATRIX: ("spectral", "hidden_scale"),
    ParamRole.CONV_KERNEL: ("spectral_conv", "hidden_scale"),
    ParamRole.STEM: ("spectral_conv", "hidden_scale"),  # the authors' CNN example: every conv, the first too
    ParamRole.EMBEDDING: ("embedding", "embedding_scale"),
    ParamRole.HEAD: ("sign", "head_scale"),
    ParamRole.NORM: ("bias_rms", "norm_scale"),
    ParamRole.BIAS: ("bias_rms", "norm_scale"),
}


class Scion(torch.optim.Optimizer):
    def __init__(self, params, lr: float, momentum: float, constrained: bool, ns_steps: int, ns_dtype=None):
        """Each group names its `lmo` (a key of LMOS) and its `scale` (the radius). `ns_dtype`: Newton-Schulz's
        precision (None: bf16 on CUDA, fp32 elsewhere)."""
        super().__init__(params, dict(lr=lr, momentum=momentum, constrained=constrained, ns_steps=ns_steps))
        self.ns_dtype = ns_dtype

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, lmo = group["lr"], LMOS[group["lmo"]]
            params = [p for p in group["params"] if p.grad is not None]
            for p in params:
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = p.grad.clone()
                state["momentum_buffer"].lerp_(p.grad, group["momentum"])
            dtype = self.ns_dtype or (precision(params[0]) if params else torch.float32)
            buffers = [self.state[p]["momentum_buffer"] for p in params]
            updates = across_ranks(buffers, functools.partial(lmo, steps=group["ns_steps"], dtype=dtype))
            for p, update in zip(params, updates, strict=True):
                if group["constrained"]:
                    p.mul_(1 - lr)
                p.add_(update, alpha=-lr * group["scale"])


def build(params, roles, hp, ctx) -> Scion:
    groups = []
    for role, (lmo, scale_key) in ROLES.items():
        members = [p for n, p in params.items() if roles[n] == role]
        if members:
            groups.append({"params": members, "lmo": lmo, "scale": hp[scale_key]})
    return Scion(groups, lr=hp["lr"], momentum=hp["momentum"], constrained=hp["constrained"], ns_steps=hp["ns_steps"])


SPEC = OptimizerSpec(name="scion", build=build, packages=("torch", "pytorch_optimizer"))
