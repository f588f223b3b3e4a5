"""The LM family: parameter counts per scale against the formula, roles, causality."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import compose_config
from workloads.base import ParamRole, roles_by_module
from workloads.lm.model import LMShape, Transformer
from workloads.lm.workload import lm_shape

# (layers, width, SwiGLU width worked out by hand: 8/3 x width rounded up to a multiple of 64)
SCALES = {
    "lm_tiny": (5, 128, 384),
    "lm_20m": (6, 512, 1408),
    "lm_125m": (12, 768, 2048),
    "lm_350m": (24, 1024, 2752),
    "lm_760m": (24, 1536, 4096),
    "lm_1_3b": (24, 2048, 5504),
}
NOMINAL = {"lm_tiny": 1e6, "lm_20m": 20e6, "lm_125m": 85e6, "lm_350m": 302e6, "lm_760m": 680e6, "lm_1_3b": 1.2e9}


@pytest.mark.parametrize("name", sorted(SCALES))
def test_non_embedding_parameter_count(name):
    cfg = compose_config([f"workload={name}"]).workload
    shape = lm_shape(cfg, vocab_size=50304)
    layers, d, h = SCALES[name]
    expected = layers * (4 * d * d + 3 * d * h + 2 * d) + d
    assert (shape.n_layer, shape.d_model, shape.mlp_hidden) == (layers, d, h)
    with torch.device("meta"):  # count without allocating the large ones
        model = Transformer(shape)
    counted = sum(p.numel() for n, p in model.named_parameters() if not n.startswith(("embed.", "lm_head.")))
    assert counted == shape.non_embedding_params == expected
    assert abs(expected - NOMINAL[name]) / NOMINAL[name] < 0.1  # the names are honest


def test_roles_cover_every_parameter():
    model = Transformer(LMShape(vocab_size=64, n_layer=2, n_head=2, d_model=32, seq_len=16))
    roles = roles_by_module(model, embeddings=(model.embed,), heads=(model.lm_head,))
    assert roles.keys() == dict(model.named_parameters()).keys()
    assert roles["embed.weight"] == ParamRole.EMBEDDING and roles["lm_head.weight"] == ParamRole.HEAD
    assert {n for n, r in roles.items() if r == ParamRole.NORM} == {
        "blocks.0.attn_norm.weight",
        "blocks.0.mlp_norm.weight",
        "blocks.1.attn_norm.weight",
        "blocks.1.mlp_norm.weight",
        "norm.weight",
    }
    assert sum(r == ParamRole.HIDDEN_MATRIX for r in roles.values()) == 2 * 7  # q, k, v, o, gate, up, down


def test_model_is_causal_and_seeded():
    shape = LMShape(vocab_size=64, n_layer=2, n_head=2, d_model=32, seq_len=16)
    torch.manual_seed(0)
    model = Transformer(shape)
    x = torch.randint(0, 64, (2, 16))
    y = x.clone()
    y[:, 10:] = (y[:, 10:] + 1) % 64  # change only the future
    with torch.no_grad():
        a, b = model(x), model(y)
    assert torch.equal(a[:, :10], b[:, :10]) and not torch.equal(a[:, 10:], b[:, 10:])
    torch.manual_seed(0)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), Transformer(shape).parameters(), strict=True))
