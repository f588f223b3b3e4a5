"""D-Adaptation Adam (Defazio & Mishchenko 2023) from the authors' dadaptation, with decoupled weight decay
(the package's default is coupled; decouple=True gives AdamW-style decay) and the usual external schedule."""

from __future__ import annotations

from dadaptation import DAdaptAdam

from optimizers.spec import OptimizerSpec, decay_groups


def build(params, roles, hp, ctx):
    return DAdaptAdam(
        decay_groups(params, roles, hp),
        lr=hp["lr"],
        betas=tuple(hp["betas"]),
        eps=hp["eps"],
        d0=hp["d0"],
        decouple=True,
        use_bias_correction=hp["use_bias_correction"],
    )


SPEC = OptimizerSpec(
    name="dadapt_adam",
    build=build,
    packages=("torch", "dadaptation"),
)
