"""The language-model workload family: a Llama-style decoder trained on a token source for a token budget."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from workloads.base import Metric, ParamRole, Workload, roles_by_module
from workloads.lm.data import TokenData, load_tokens
from workloads.lm.model import LMShape, Transformer

TOKENS_PER_PARAM_CHINCHILLA = 20  # Hoffmann et al. 2022: ~20 training tokens per parameter is compute-optimal


def lm_shape(cfg: dict, vocab_size: int) -> LMShape:
    return LMShape(
        vocab_size=vocab_size,
        n_layer=cfg["n_layer"],
        n_head=cfg["n_head"],
        d_model=cfg["d_model"],
        seq_len=cfg["seq_len"],
    )


def token_budget(cfg: dict, non_embedding_params: int) -> int:
    """Explicit `tokens` when set, else `chinchilla` x 20 tokens per non-embedding parameter."""
    if cfg.get("tokens") is not None:
        return int(cfg["tokens"])
    if cfg.get("chinchilla") is None:
        raise ValueError("workload budget missing: set workload.chinchilla or workload.tokens")
    return round(cfg["chinchilla"] * TOKENS_PER_PARAM_CHINCHILLA * non_embedding_params)


def scale(cfg: dict) -> tuple[int, int]:
    """(non-embedding parameters N, token budget D) from the workload config alone, without its data."""
    n = lm_shape(cfg, vocab_size=0).non_embedding_params  # (N leaves out the embedding: any vocabulary will do)
    return n, token_budget(cfg, n)


class LanguageModel(Workload):
    primary_metric = Metric("loss", lower_is_better=True)
    cuda_precision = "bf16"  # as nanoGPT, modded-nanogpt and torchtitan train

    def __init__(self, cfg: dict):
        self.name = cfg["name"]
        self.target = cfg.get("target")
        batch, seq = cfg["batch_size"], cfg["seq_len"]
        self.examples_per_step = batch
        self.set_micro_batch_size(cfg["micro_batch_size"])
        self.activation_checkpointing = cfg["activation_checkpointing"]
        if cfg["d_model"] % cfg["n_head"] or (cfg["d_model"] // cfg["n_head"]) % 2:
            raise ValueError(f"workload.d_model={cfg['d_model']} must split into {cfg['n_head']} heads of even size")
        self.data: TokenData = load_tokens(cfg["data"])
        self.shape = lm_shape(cfg, self.data.vocab_size)
        self.tokens_per_step = batch * seq
        self.token_budget = token_budget(cfg, self.shape.non_embedding_params)
        self.steps = self.token_budget // self.tokens_per_step
        if self.steps < 1:
            raise ValueError(
                f"budget of {self.token_budget} tokens is less than one step of batch_size x seq_len = "
                f"{self.tokens_per_step} tokens"
            )
        window = seq + 1
        if min(len(a) for a in self.data.train) < window or len(self.data.val) < window:
            raise ValueError(f"data source {cfg['data']['source']!r} has fewer than seq_len+1={window} tokens")
        self._window_counts = np.array([len(a) - seq for a in self.data.train])
        self._window_offsets = np.concatenate(([0], np.cumsum(self._window_counts)))
        n_eval = max(1, min(cfg["eval_tokens"], len(self.data.val) - 1) // seq)
        starts = np.arange(n_eval) * seq
        self._eval_windows = torch.from_numpy(
            np.stack([self.data.val[s : s + window] for s in starts]).astype(np.int64)
        )

    def build_model(self, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return Transformer(self.shape, checkpoint_blocks=self.activation_checkpointing)

    def param_roles(self, model: nn.Module) -> dict[str, ParamRole]:
        return roles_by_module(model, embeddings=(model.embed,), heads=(model.lm_head,))

    def memory_bytes(self, micro: int) -> int:
        """A lower estimate of a training step's fp32 memory with micro-batches of `micro` sequences: parameters,
        gradients and two optimizer states each (AdamW's), and what autograd keeps for one micro-batch — per layer
        s·b·h·(34 + 5·a·s/h) bytes in 16-bit (Korthikanti et al. 2022, 'Reducing Activation Recomputation in Large
        Transformer Models', eq. 2), doubled for fp32, or each block's input alone under activation checkpointing —
        plus the logits and their softmax (2·s·b·V values)."""
        s, h, a, layers = self.shape.seq_len, self.shape.d_model, self.shape.n_head, self.shape.n_layer
        vocab = self.shape.vocab_size
        params = self.shape.non_embedding_params + 2 * vocab * h  # (embedding and head are not tied)
        layer = 2 * s * micro * h * (34 + 5 * a * s / h)
        kept = layers * 4 * s * micro * h + layer if self.activation_checkpointing else layers * layer
        return int(4 * 4 * params + kept + 4 * 2 * s * micro * vocab)

    def train_batch(self, step: int, data_seed: int) -> torch.Tensor:
        """`batch_size` windows of seq_len+1 tokens drawn uniformly over all train windows."""
        rng = np.random.default_rng([data_seed, step])
        starts = rng.integers(0, self._window_offsets[-1], size=self.examples_per_step)
        shard = np.searchsorted(self._window_offsets, starts, side="right") - 1
        offsets = starts - self._window_offsets[shard]
        window = self.shape.seq_len + 1
        rows = [self.data.train[k][o : o + window] for k, o in zip(shard, offsets, strict=True)]
        return torch.from_numpy(np.stack(rows).astype(np.int64))

    def eval_batches(self):
        return self._eval_windows.split(self.micro_batch_size or self.examples_per_step)

    def loss(self, model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        logits = model(batch[:, :-1])
        return F.cross_entropy(logits.float().flatten(0, 1), batch[:, 1:].flatten())

    @torch.no_grad()
    def evaluate(self, model: nn.Module, device: torch.device, autocast: torch.autocast) -> dict[str, float]:
        total = torch.zeros((), dtype=torch.float64, device=device)
        count = 0
        for batch in self.eval_batches():
            batch = batch.to(device, non_blocking=True)
            with autocast:
                logits = model(batch[:, :-1])
            total += F.cross_entropy(logits.float().flatten(0, 1), batch[:, 1:].flatten(), reduction="sum")
            count += batch[:, 1:].numel()
        return {"loss": total.item() / count}

    def facts(self) -> dict:
        return {
            "flops_per_token": self.shape.flops_per_token,
            "flops_per_example": self.shape.flops_per_token * self.shape.seq_len,  # one training sequence
            "params_non_embedding": self.shape.non_embedding_params,
            "vocab_size": self.shape.vocab_size,
            "d_model": self.shape.d_model,
            "n_head": self.shape.n_head,
            "head_dim": self.shape.d_model // self.shape.n_head,
            "eval_tokens": int(self._eval_windows[:, 1:].numel()),
            "data_fingerprint": self.data.fingerprint,
            "irreducible_loss": self.data.irreducible_loss,
        }
