"""A noisy, ill-conditioned quadratic after DeepOBS's `quadratic_deep` (Schneider et al. 2019): per example
loss 0.5 (θ - x)ᵀ Q (θ - x) with x ~ N(0, noise² I) drawn fresh for every training example, Q = R diag(λ) Rᵀ for a
random rotation R and a spectrum with a few large eigenvalues. Seconds on a CPU, and its optimum is known exactly.

θ is a rows x cols matrix (Q acts on its flattening) so that matrix optimizers (Muon, SOAP, Scion) have a hidden
matrix to act on, as in the language models."""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from torch import nn

from workloads.base import Metric, ParamRole, Workload


class QuadraticModel(nn.Module):
    """θ, and Q as a buffer that moves with the model (not saved: the workload rebuilds it from its seed)."""

    def __init__(self, q: torch.Tensor, rows: int, cols: int, init_scale: float):
        super().__init__()
        self.theta = nn.Parameter(torch.randn(rows, cols) * init_scale)
        self.register_buffer("q", q.clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mean over the rows of x of 0.5 (θ - x)ᵀ Q (θ - x)."""
        diff = self.theta.reshape(1, -1) - x
        return 0.5 * ((diff @ self.q) * diff).sum(1).mean()


def spectrum(dim: int, rng: np.random.Generator, cfg: dict) -> np.ndarray:
    """DeepOBS's deep quadratic: a fraction `large_fraction` of eigenvalues uniform in `large_range`, the rest
    uniform in `small_range`."""
    n_large = round(cfg["large_fraction"] * dim)
    small = rng.uniform(*cfg["small_range"], size=dim - n_large)
    large = rng.uniform(*cfg["large_range"], size=n_large)
    return np.concatenate([small, large])


class Quadratic(Workload):
    primary_metric = Metric("loss", lower_is_better=True)

    def __init__(self, cfg: dict):
        self.name = cfg["name"]
        self.target = cfg.get("target")
        self.rows, self.cols = cfg["rows"], cfg["cols"]
        self.dim = self.rows * self.cols
        batch = cfg["batch_size"]
        low, high = cfg["small_range"][0], cfg["large_range"][1]
        if not 0 < low <= high:
            ranges = f"{cfg['small_range']} and {cfg['large_range']}"
            raise ValueError(f"quadratic: eigenvalues must be positive and ranges ordered, got {ranges}")
        self.noise, self.init_scale = cfg["noise"], cfg["init_scale"]
        self.examples_per_step, self.tokens_per_step, self.micro_batches = batch, batch, 1
        self.micro_batch_size = batch  # (the whole batch in one pass: it is cheap)
        self.steps = max(1, cfg["tokens"] // batch) if cfg.get("tokens") else cfg["steps"]
        rng = np.random.default_rng(cfg["problem_seed"])
        rotation, _ = np.linalg.qr(rng.standard_normal((self.dim, self.dim)))
        eigenvalues = spectrum(self.dim, rng, cfg)
        q = (rotation * eigenvalues) @ rotation.T
        self.q = torch.from_numpy((q + q.T) / 2).float()
        self.condition_number = float(eigenvalues.max() / eigenvalues.min())
        self.eval_x = torch.from_numpy(rng.standard_normal((cfg["eval_examples"], self.dim)) * self.noise).float()
        self.optimum = self.eval_x.mean(0).reshape(self.rows, self.cols)  # minimiser of the held-out loss
        centred = self.eval_x - self.eval_x.mean(0)
        self.optimal_loss = 0.5 * ((centred @ self.q) * centred).sum(1).mean().item()
        digest = hashlib.sha1(self.q.numpy().tobytes() + self.eval_x.numpy().tobytes()).hexdigest()[:16]
        self.fingerprint = f"quadratic:{digest}"

    def build_model(self, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return QuadraticModel(self.q, self.rows, self.cols, self.init_scale)

    def param_roles(self, model: nn.Module) -> dict[str, ParamRole]:
        return {"theta": ParamRole.HIDDEN_MATRIX}

    def train_batch(self, step: int, data_seed: int) -> torch.Tensor:
        rng = np.random.default_rng([data_seed, step])
        return torch.from_numpy(rng.standard_normal((self.examples_per_step, self.dim)) * self.noise).float()

    def eval_batches(self):
        return (self.eval_x,)

    def loss(self, model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        return model(batch)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, device: torch.device, autocast: torch.autocast) -> dict[str, float]:
        loss = model(self.eval_x.to(device)).item()
        return {"loss": loss, "excess_loss": loss - self.optimal_loss}

    def facts(self) -> dict:
        return {
            "flops_per_example": 3 * 2 * self.dim**2,  # forward Q(θ - x) plus about twice that backward
            "params_non_embedding": self.dim,
            "data_fingerprint": self.fingerprint,
            "optimal_loss": self.optimal_loss,
            "optimum_norm": float(self.optimum.norm()),
            "condition_number": self.condition_number,
            "expected_loss_at_zero": 0.5 * self.noise**2 * float(torch.trace(self.q)),  # the population optimum
        }
