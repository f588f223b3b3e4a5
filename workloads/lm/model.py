"""A Llama-style decoder: RMSNorm, rotary embeddings, SwiGLU MLP, no biases, untied output head."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn


@dataclass(frozen=True)
class LMShape:
    vocab_size: int
    n_layer: int
    n_head: int
    d_model: int
    seq_len: int
    rope_base: float = 10000.0

    @property
    def mlp_hidden(self) -> int:
        """SwiGLU width: 8/3 of the model width (same parameters as a 4x GELU MLP), rounded up to 64."""
        return 64 * math.ceil(8 * self.d_model / 3 / 64)

    @property
    def non_embedding_params(self) -> int:
        """Parameters outside the token embedding and the output head (Kaplan et al.'s N)."""
        d, h = self.d_model, self.mlp_hidden
        per_layer = 4 * d * d + 3 * d * h + 2 * d  # attention q,k,v,o + SwiGLU gate,up,down + 2 RMSNorms
        return self.n_layer * per_layer + d  # + final RMSNorm

    @property
    def flops_per_token(self) -> int:
        """Training FLOPs per token: 6 N (forward + backward matmuls, head included) + attention scores."""
        n_matmul = self.non_embedding_params + self.vocab_size * self.d_model
        return 6 * n_matmul + 6 * self.n_layer * self.seq_len * self.d_model


def rotary_tables(shape: LMShape) -> tuple[torch.Tensor, torch.Tensor]:
    head_dim = shape.d_model // shape.n_head
    inv_freq = 1.0 / shape.rope_base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(shape.seq_len, dtype=torch.float32), inv_freq)  # (T, hd/2)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x1, x2) of each head's halves; x: (B, H, T, hd)."""
    x1, x2 = x.chunk(2, dim=-1)
    cos, sin = cos[: x.size(-2)].to(x.dtype), sin[: x.size(-2)].to(x.dtype)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


class Attention(nn.Module):
    def __init__(self, shape: LMShape):
        super().__init__()
        self.n_head = shape.n_head
        # Separate projections (Llama's layout): per-head optimizers such as Adam-mini need Q and K apart.
        self.q_proj = nn.Linear(shape.d_model, shape.d_model, bias=False)
        self.k_proj = nn.Linear(shape.d_model, shape.d_model, bias=False)
        self.v_proj = nn.Linear(shape.d_model, shape.d_model, bias=False)
        self.o_proj = nn.Linear(shape.d_model, shape.d_model, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = (
            proj(x).view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, H, T, hd)
            for proj in (self.q_proj, self.k_proj, self.v_proj)
        )
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, C))


class SwiGLU(nn.Module):
    def __init__(self, shape: LMShape):
        super().__init__()
        self.gate = nn.Linear(shape.d_model, shape.mlp_hidden, bias=False)
        self.up = nn.Linear(shape.d_model, shape.mlp_hidden, bias=False)
        self.down = nn.Linear(shape.mlp_hidden, shape.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Block(nn.Module):
    def __init__(self, shape: LMShape):
        super().__init__()
        self.attn_norm = nn.RMSNorm(shape.d_model)
        self.attn = Attention(shape)
        self.mlp_norm = nn.RMSNorm(shape.d_model)
        self.mlp = SwiGLU(shape)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin)
        return x + self.mlp(self.mlp_norm(x))


class Transformer(nn.Module):
    def __init__(self, shape: LMShape, checkpoint_blocks: bool = False):
        """`checkpoint_blocks`: keep only each block's input in training and recompute its activations in the
        backward pass (activation checkpointing: less memory for about one more forward pass)."""
        super().__init__()
        self.shape = shape
        self.checkpoint_blocks = checkpoint_blocks
        self.embed = nn.Embedding(shape.vocab_size, shape.d_model)
        self.blocks = nn.ModuleList(Block(shape) for _ in range(shape.n_layer))
        self.norm = nn.RMSNorm(shape.d_model)
        self.lm_head = nn.Linear(shape.d_model, shape.vocab_size, bias=False)
        cos, sin = rotary_tables(shape)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2 initialisation: N(0, 0.02), residual output projections scaled by 1/sqrt(2 n_layer)."""
        for name, p in self.named_parameters():
            if p.ndim == 2:
                std = (
                    0.02 / math.sqrt(2 * self.shape.n_layer) if name.endswith(("proj.weight", "down.weight")) else 0.02
                )
                nn.init.normal_(p, mean=0.0, std=std)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """idx: (B, T) token ids -> logits (B, T, vocab)."""
        x = self.embed(idx)
        recompute = self.checkpoint_blocks and self.training and torch.is_grad_enabled()
        for block in self.blocks:
            if recompute:
                x = torch.utils.checkpoint.checkpoint(block, x, self.cos, self.sin, use_reentrant=False)
            else:
                x = block(x, self.cos, self.sin)
        return self.lm_head(self.norm(x))
