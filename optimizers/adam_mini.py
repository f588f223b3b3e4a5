"""Adam-mini (Zhang et al. 2024): one second-moment value per parameter block, from the authors' adam-mini.

Adam-mini partitions by architecture component (one lr per token for embedding and output rows, per head for
Q and K, per neuron for V, the attention output and the MLP) and finds them by parameter name. The builder
names embeddings, the head, norms and biases from their declared roles, so those are found whatever the model
calls them; hidden matrices keep the model's names (Llama naming: q_proj, k_proj, v_proj, o_proj, mlp)."""

from __future__ import annotations

from adam_mini import Adam_mini

from optimizers.spec import OptimizerSpec
from workloads.base import ParamRole

ROLE_PREFIX = {ParamRole.EMBEDDING: "embed", ParamRole.HEAD: "lm_head", ParamRole.NORM: "norm", ParamRole.BIAS: "bias"}


def build(params, roles, hp, ctx):
    # Role-named parameters get a bare role name (a model's own names, e.g. 'mlp_norm', could match another rule).
    named = [
        (f"{ROLE_PREFIX[roles[n]]}.{i}" if roles[n] in ROLE_PREFIX else n, p) for i, (n, p) in enumerate(params.items())
    ]
    # Q/K are split per head from the model's width and heads; a model without them (CNNs, the quadratic, a ViT
    # with a fused qkv that Adam-mini's names do not match) leaves them unspecified, as the authors allow.
    facts = ctx.model_facts
    heads = {"dim": facts["d_model"], "n_heads": facts["n_head"]} if "d_model" in facts else {}
    return Adam_mini(
        named,
        lr=hp["lr"],
        betas=tuple(hp["betas"]),
        eps=hp["eps"],
        weight_decay=hp["weight_decay"],
        verbose=False,
        **heads,
    )


SPEC = OptimizerSpec(
    name="adam_mini",
    build=build,
    packages=("torch", "adam-mini"),
)
