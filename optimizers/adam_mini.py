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


# the substrings by which Adam-mini recognises embeddings and output layers (adam_mini.Adam_mini.__init__)
ADAM_MINI_ROWWISE = ("embed", "embd", "wte", "lm_head", "output", "final_layer")


def adam_mini_name(i: int, name: str, role: ParamRole, p) -> str:
    """The name Adam-mini sees: a bare role name for norms, biases and (token x width) embedding and head matrices;
    a neutral one for other embeddings (a ViT's class token and position table) and for any parameter whose model
    name Adam-mini would misread as an embedding or output layer (a ViT's `embed.proj` patch convolution); the
    model's own name otherwise (Llama names: q_proj, k_proj, ...)."""
    rowwise = role in (ParamRole.EMBEDDING, ParamRole.HEAD)
    if role in ROLE_PREFIX and (not rowwise or p.ndim == 2):
        return f"{ROLE_PREFIX[role]}.{i}"
    if rowwise or any(s in name for s in ADAM_MINI_ROWWISE):
        return f"param.{i}"
    return name


def build(params, roles, hp, ctx):
    # Role-named parameters get a bare role name (a model's own names, e.g. 'mlp_norm', could match another rule).
    named = [(adam_mini_name(i, n, roles[n], p), p) for i, (n, p) in enumerate(params.items())]
    # Q/K are split per head from the model's width and heads; a model without them (CNNs, the quadratic, a ViT
    # with a fused qkv that Adam-mini's names do not match) leaves them unspecified, as the authors allow.
    facts = ctx.model_facts
    heads = {"dim": facts["d_model"], "n_heads": facts["n_head"]} if "d_model" in facts else {}
    optimizer = Adam_mini(
        named,
        lr=hp["lr"],
        betas=tuple(hp["betas"]),
        eps=hp["eps"],
        weight_decay=hp["weight_decay"],
        verbose=False,
        **heads,
    )
    # The package decays every block but norms and biases; here, as for every other optimizer, the roles in
    # no_decay_roles (embeddings by default) are exempt too. One parameter per group, in the order given.
    exempt = {ParamRole(r) for r in hp["no_decay_roles"]}
    for group, name in zip(optimizer.param_groups, params, strict=True):
        if roles[name] in exempt:
            group["weight_decay"] = 0.0
    return optimizer


SPEC = OptimizerSpec(
    name="adam_mini",
    build=build,
    packages=("torch", "adam-mini"),
)
