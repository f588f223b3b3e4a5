"""Zero-shot hyperparameters from the Step Law (Li et al. 2025, 'Predictable Scale: Part I — Optimal Hyperparameter
Scaling Law in Large Language Model Pretraining', eqs. 1-2): peak learning rate η = 1.79·N^(−0.713)·D^(0.307) and
batch size B = 0.58·D^(0.571) tokens, N the non-embedding parameters and D the training tokens. Fitted for AdamW
on dense LMs of about 60M to 1B non-embedding parameters and up to about 100B tokens; a trial outside that range is
flagged, not refused (the law is the claim a benchmark tests)."""

from __future__ import annotations

LR = (1.79, -0.713, 0.307)  # η = 1.79 · N^-0.713 · D^0.307 (Li et al. 2025, eq. 1)
BATCH = (0.58, 0.571)  # B = 0.58 · D^0.571 tokens (Li et al. 2025, eq. 2)
FITTED_N = (6e7, 1e9)  # the non-embedding sizes of the paper's grid of models (about 60M to 1B)
FITTED_D_MAX = 1e11  # tokens: the largest budgets of that grid (about 100B)


def lr(n: float, d: float) -> float:
    return LR[0] * n ** LR[1] * d ** LR[2]


def batch_tokens(d: float) -> float:
    return BATCH[0] * d ** BATCH[1]


def check(optimizer: str, workload_cfg: dict, overrides: list[str]) -> None:
    """The law is AdamW's, on language models, and sets the batch size itself."""
    if optimizer != "adamw":
        raise ValueError(f"tuning=step_law predicts AdamW's hyperparameters only, not {optimizer}'s")
    if workload_cfg.get("family") != "lm":
        raise ValueError(
            f"tuning=step_law needs a language-model workload (N, D in tokens), not {workload_cfg['name']}"
        )
    given = [o for o in overrides if o.partition("=")[0] in ("workload.batch_size", "workload.micro_batch_size")]
    if given:
        raise ValueError(f"tuning=step_law sets the batch size from the law; drop {' '.join(given)}")


def plan(workload_cfg: dict) -> dict:
    """The law's hyperparameters for a language-model workload at its budget, with the rounding made: B to whole
    sequences, then to a multiple of the micro-batch (a batch smaller than one micro-batch gets a micro-batch of its
    own size); η to 6 significant digits, as every searched value. The step count follows from D and the batch."""
    from workloads.lm.workload import scale  # (torch: imported when a step_law study is set up)

    n, d = scale(workload_cfg)
    seq = workload_cfg["seq_len"]
    b_tokens = batch_tokens(d)
    sequences = max(1, round(b_tokens / seq))
    micro = workload_cfg["micro_batch_size"]
    if micro == "auto":
        batch = sequences
    elif sequences < micro:
        batch, micro = sequences, sequences
    else:
        batch = max(1, round(sequences / micro)) * micro
    exact = lr(n, d)
    return {
        "law": "Li et al. 2025 (Step Law): lr = 1.79 N^-0.713 D^0.307, B = 0.58 D^0.571 tokens",
        "N": n,
        "D": d,
        "lr_exact": exact,
        "lr": float(f"{exact:.6g}"),
        "batch_tokens_exact": b_tokens,
        "batch_sequences_exact": b_tokens / seq,
        "batch_size": batch,  # sequences per step, as run
        "micro_batch_size": micro,
        "batch_tokens": batch * seq,
        "steps": d // (batch * seq),
        "in_fitted_range": FITTED_N[0] <= n <= FITTED_N[1] and d <= FITTED_D_MAX,
    }


def overrides(law: dict) -> list[str]:
    """The workload overrides that put the law's batch size into the trials."""
    return [f"workload.batch_size={law['batch_size']}", f"workload.micro_batch_size={law['micro_batch_size']}"]
