"""M-FAC (Frantar, Kurtic & Alistarh, NeurIPS 2021, 'M-FAC: Efficient Matrix-Free Approximations of Second-Order
Information'), the optimization variant, written from the paper (torch only; the authors' reference is
IST-DASLab/M-FAC `optim.py`, whose defaults conf/optimizer/mfac.yaml takes):

    g <- grad + wd * w                        (coupled weight decay, as the authors apply it)
    window <- the last m gradients, g the newest   (a ring buffer; zero rows until m steps were taken)
    F = damp * I + (1/m) * sum_i g_i g_i^T    (the empirical Fisher of the window; divisor m from the first step)
    u = F^-1 g
    v <- mu * v + (1 - mu) * u ;  w <- w - lr * v

One window over all the model's parameters concatenated, as the authors' optimizer keeps it (their multi-GPU code
splits that one vector across devices; the Fisher is still the whole model's). The product is matrix-free, from
the window G (m x d) and its Gram matrix K = G G^T (m x m) alone: since g is a row of G (it entered the window
before the product), Woodbury's identity gives F^-1 g = m * G^T (m * damp * I + K)^-1 e_g, with e_g the indicator
of g's row — O(dm) for the new row and column of K, O(m^3) for the m x m solve and O(dm) for the product, with no
subtraction of nearly equal vectors (the `g - G^T c` form loses precision in float32 when damp is small). K and the
solve are float64 (an m x m matrix: cheap). A model with fewer parameters than rows (the tests' problems) takes
the same F^-1 g from the d x d matrix instead, the cheaper of the two exact forms. Rows never filled hold zeros and
play no part, so only min(m, steps) rows are allocated: the same arithmetic in less memory when a run is shorter
than the window."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from optimizers.spec import OptimizerSpec, decay_groups


class MFAC(torch.optim.Optimizer):
    def __init__(self, params, lr: float, momentum: float, weight_decay: float, ngrads: int, damp: float, rows: int):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay))
        self.momentum, self.ngrads, self.damp = momentum, ngrads, damp
        self.rows = min(ngrads, rows)  # rows allocated: the window's slots a run of `rows` steps can fill
        self.window: dict | None = None  # grads (rows x d), gram (rows x rows, float64), v (d), count

    def _params(self) -> list[tuple[torch.Tensor, dict]]:
        return [(p, group) for group in self.param_groups for p in group["params"]]

    def _gradient(self) -> torch.Tensor:
        """The whole model's gradient with the coupled weight decay, as one vector (zeros where a parameter got
        no gradient this step)."""
        parts = []
        for p, group in self._params():
            g = p.grad if p.grad is not None else torch.zeros_like(p)
            parts.append((g + group["weight_decay"] * p if group["weight_decay"] else g).reshape(-1))
        return torch.cat(parts)

    def _grow(self, rows: int) -> None:
        """More slots (a run longer than the allocation: a resumed or extended trial); zeros, as unfilled rows."""
        w = self.window
        grads = w["grads"].new_zeros(rows, w["grads"].shape[1])
        grads[: w["grads"].shape[0]] = w["grads"]
        gram = w["gram"].new_zeros(rows, rows)
        n = w["gram"].shape[0]
        gram[:n, :n] = w["gram"]
        w["grads"], w["gram"], self.rows = grads, gram, rows

    @torch.no_grad()
    def step(self, closure=None):
        g = self._gradient()
        if self.window is None:
            self.window = {
                "grads": g.new_zeros(self.rows, g.numel()),
                "gram": torch.zeros(self.rows, self.rows, dtype=torch.float64, device=g.device),
                "v": torch.zeros_like(g),
                "count": 0,
            }
        w = self.window
        slot = w["count"] % self.ngrads
        if slot >= self.rows:
            self._grow(min(self.ngrads, 2 * self.rows))
        grads, gram = w["grads"], w["gram"]
        grads[slot] = g  # the newest gradient replaces the oldest (after m steps) before the product
        column = (grads @ g).to(torch.float64)
        gram[slot, :], gram[:, slot] = column, column
        w["count"] += 1
        if g.numel() < self.rows:  # fewer parameters than rows: the same F^-1 g, from the d x d matrix
            window = grads.to(torch.float64)
            fisher = window.T @ window / self.ngrads
            fisher.diagonal().add_(self.damp)
            u = torch.linalg.solve(fisher, g.to(torch.float64)).to(g.dtype)
        else:
            system = gram + self.ngrads * self.damp * torch.eye(self.rows, dtype=torch.float64, device=g.device)
            indicator = torch.zeros(self.rows, 1, dtype=torch.float64, device=g.device)
            indicator[slot] = 1.0
            coefficients = torch.linalg.solve(system, indicator).squeeze(1)
            u = grads.T @ (self.ngrads * coefficients).to(grads.dtype)
        w["v"].mul_(self.momentum).add_(u, alpha=1 - self.momentum)
        offset = 0
        for p, group in self._params():
            n = p.numel()
            p.add_(w["v"][offset : offset + n].view_as(p), alpha=-group["lr"])
            offset += n

    def state_dict(self) -> dict:
        # (the window is kept whole, dtypes included: torch's per-parameter state would cast the float64 Gram
        # matrix to the parameters' dtype on loading)
        return {**super().state_dict(), "window": self.window, "rows": self.rows}

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        window, self.rows = state_dict.pop("window"), state_dict.pop("rows")
        super().load_state_dict(state_dict)
        device = self.param_groups[0]["params"][0].device
        self.window = (
            None if window is None else {k: v.to(device) if torch.is_tensor(v) else v for k, v in window.items()}
        )


def state_bytes(hp: Mapping, parameters: int, steps: int) -> int:
    """The window's memory: min(num_grads, steps) gradients of all the parameters (float32), their Gram matrix
    (float64) and the momentum buffer."""
    rows = min(hp["num_grads"], steps)
    return 4 * rows * parameters + 8 * rows * rows + 4 * parameters


def build(params, roles, hp, ctx) -> MFAC:
    return MFAC(
        decay_groups(params, roles, hp),
        lr=hp["lr"],
        momentum=hp["momentum"],
        weight_decay=hp["weight_decay"],
        ngrads=hp["num_grads"],
        damp=hp["damping"],
        rows=ctx.total_steps,
    )


SPEC = OptimizerSpec(name="mfac", build=build, state_bytes=state_bytes)
