"""NAdamW as AlgoPerf's baseline defines it (Dahl et al. 2023; Kasimbeg et al. 2025), written from the algorithm:
Adam's moments, Nesterov's look-ahead on the first moment (Dozat 2016, in the form of Table 1 of Choi et al. 2019,
arXiv:1910.05446) and decoupled weight decay:

    p <- p (1 - lr wd)
    m <- b1 m + (1 - b1) g ;  v <- b2 v + (1 - b2) g^2
    m_nesterov = b1 m + (1 - b1) g
    p <- p - lr / (1 - b1^t) * m_nesterov / (sqrt(v / (1 - b2^t)) + eps)

torch.optim.NAdam is a different algorithm (Dozat's momentum schedule mu_t = b1 (1 - 0.5 * 0.96^(0.004 t)), which
stays near 0.45-0.49 over short runs); AlgoPerf's code says so beside its own NAdamW."""

from __future__ import annotations

import torch

from optimizers.spec import OptimizerSpec, decay_groups


class NAdamW(torch.optim.Optimizer):
    def __init__(self, params, lr: float, betas: tuple[float, float], eps: float, weight_decay: float):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad, state = p.grad, self.state[p]
                if not state:
                    state["step"] = 0  # (a Python count: no device sync per step)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"]
                m, v = state["exp_avg"], state["exp_avg_sq"]
                p.mul_(1 - lr * group["weight_decay"])
                m.lerp_(grad, 1 - beta1)
                v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                look_ahead = m.mul(beta1).add_(grad, alpha=1 - beta1)
                denom = (v / (1 - beta2**t)).sqrt_().add_(eps)
                p.addcdiv_(look_ahead, denom, value=-lr / (1 - beta1**t))


def build(params, roles, hp, ctx) -> NAdamW:
    return NAdamW(
        decay_groups(params, roles, hp),
        lr=hp["lr"],
        betas=tuple(hp["betas"]),
        eps=hp["eps"],
        weight_decay=hp["weight_decay"],
    )


SPEC = OptimizerSpec(name="nadamw", build=build)
