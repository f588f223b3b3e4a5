"""M-FAC's step against its definition: u = (damp I + (1/m) sum g g^T)^-1 g over the last m gradients, solved
densely in float64 (the known answer), through the ring buffer's filling, full and sliding phases, in both of the
implementation's exact forms; the momentum, the coupled weight decay, and the memory refusal."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from optimizers.mfac import MFAC, state_bytes


def dense_step(window: list[torch.Tensor], g: torch.Tensor, m: int, damp: float) -> torch.Tensor:
    G = torch.stack(window[-m:])  # the last m gradients; rows never filled are zeros and add nothing
    fisher = damp * torch.eye(g.numel(), dtype=torch.float64) + G.T @ G / m  # divisor m from the first step
    return torch.linalg.solve(fisher, g)


@pytest.mark.parametrize("d, m", [(200, 32), (20, 32)])  # dual (d > m: matrix-free) and primal (d < m) forms
def test_each_step_is_the_inverse_empirical_fisher_times_the_gradient(d, m):
    torch.manual_seed(0)
    damp, lr = 1e-5, 0.1  # the authors' default damping
    w = nn.Parameter(torch.zeros(d, dtype=torch.float64))
    opt = MFAC([w], lr=lr, momentum=0.0, weight_decay=0.0, ngrads=m, damp=damp, rows=3 * m)
    seen = []
    for step in range(m + 7):  # filling (zero rows), full at step m, then sliding (the oldest leaves)
        g = torch.randn(d, dtype=torch.float64) * (1 + step % 3)
        seen.append(g)
        before = w.detach().clone()
        w.grad = g.clone()
        opt.step()
        expected = dense_step(seen, g, m, damp)
        actual = (before - w.detach()) / lr
        assert torch.linalg.norm(actual - expected) / torch.linalg.norm(expected) < 1e-8, step


def test_momentum_and_coupled_weight_decay_follow_the_authors_update():
    torch.manual_seed(1)
    d, m, damp, lr, mu, wd = 50, 8, 1e-2, 0.05, 0.9, 0.1
    w = nn.Parameter(torch.randn(d, dtype=torch.float64))
    opt = MFAC([w], lr=lr, momentum=mu, weight_decay=wd, ngrads=m, damp=damp, rows=m)
    seen, v = [], torch.zeros(d, dtype=torch.float64)
    for _ in range(12):  # past m: the ring buffer wraps in a window of m allocated rows
        grad = torch.randn(d, dtype=torch.float64)
        g = grad + wd * w.detach()  # coupled: the decayed gradient is what enters the window
        seen.append(g)
        v = mu * v + (1 - mu) * dense_step(seen, g, m, damp)
        expected = w.detach() - lr * v
        w.grad = grad
        opt.step()
        assert torch.allclose(w.detach(), expected, rtol=1e-9, atol=1e-12)


def test_a_run_longer_than_its_allocation_grows_the_window_and_keeps_the_arithmetic():
    torch.manual_seed(2)
    d, m, damp = 40, 16, 1e-2
    short = nn.Parameter(torch.zeros(d, dtype=torch.float64))
    full = nn.Parameter(torch.zeros(d, dtype=torch.float64))
    grown = MFAC([short], lr=0.1, momentum=0.5, weight_decay=0.0, ngrads=m, damp=damp, rows=3)
    whole = MFAC([full], lr=0.1, momentum=0.5, weight_decay=0.0, ngrads=m, damp=damp, rows=m)
    for _ in range(20):
        g = torch.randn(d, dtype=torch.float64)
        short.grad, full.grad = g.clone(), g.clone()
        grown.step()
        whole.step()
    assert grown.rows == m
    assert torch.allclose(short.detach(), full.detach(), rtol=1e-10, atol=1e-12)


def test_the_window_memory_is_its_rows_of_gradients():
    hp = {"num_grads": 1024}
    assert state_bytes(hp, 1_000_000, 208) == 4 * 208 * 1_000_000 + 8 * 208**2 + 4 * 1_000_000
    assert state_bytes(hp, 1_000_000, 5000) == 4 * 1024 * 1_000_000 + 8 * 1024**2 + 4 * 1_000_000
