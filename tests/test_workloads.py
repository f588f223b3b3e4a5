"""The non-LM workloads: the quadratic's exact optimum, the digits split, the CIFAR-10 binary reader on files the
tests write, augmentation, parameter counts of every scale, and batch norm with every optimizer."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from optimizers import NAMES, get_spec
from suite import CONF_DIR
from suite.trainer import evaluate, recompute_batch_norm, train_step
from suite.trial import build_optimization
from tests.conftest import cli, compose_config, only_run_dir, read_metrics, read_summary
from workloads import build_workload
from workloads.base import ParamRole
from workloads.vision.data import CIFAR_TEST, CIFAR_TRAIN, digits, read_cifar_file, split_indices, write_cifar_file
from workloads.vision.models import ViT, digits_cnn_params, resnet18_params, vit_non_embedding_params
from workloads.vision.workload import CROP_PADDING, augment

NO_AUTOCAST = torch.autocast("cpu", enabled=False)
WORKLOADS = sorted(p.stem for p in (CONF_DIR / "workload").glob("*.yaml"))
VISION = [name for name in WORKLOADS if "cifar10" in name or "digits" in name]
CPU = torch.device("cpu")


def workload_cfg(*overrides: str) -> dict:
    return OmegaConf.to_container(compose_config(list(overrides)), resolve=True)


def write_cifar(directory: Path, per_file: int = 16, seed: int = 0) -> Path:
    """A small CIFAR-10 directory in the official binary layout: five train batches and a test batch."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for name in (*CIFAR_TRAIN, CIFAR_TEST):
        images = rng.integers(0, 256, size=(per_file, 3, 32, 32), dtype=np.uint8)
        write_cifar_file(directory / name, images, rng.integers(0, 10, size=per_file))
    return directory


# --- quadratic -------------------------------------------------------------------------------------------------


def test_quadratic_reports_the_loss_at_its_analytic_optimum():
    workload = build_workload(workload_cfg("workload=quadratic")["workload"])
    model = workload.build_model(0)
    facts = workload.facts()
    with torch.no_grad():
        model.theta.copy_(workload.optimum)
    at_optimum = workload.evaluate(model, CPU, NO_AUTOCAST)
    assert at_optimum["loss"] == pytest.approx(facts["optimal_loss"], rel=1e-5)
    assert abs(at_optimum["excess_loss"]) < 1e-3 * facts["optimal_loss"]
    model.zero_grad()
    model(workload.eval_x).backward()  # the held-out loss is stationary there ...
    assert model.theta.grad.norm() < 1e-3
    for seed in range(3):  # ... and its minimum: every perturbation costs
        with torch.no_grad():
            model.theta.copy_(
                workload.optimum + 0.1 * torch.randn(10, 10, generator=torch.Generator().manual_seed(seed))
            )
        assert workload.evaluate(model, CPU, NO_AUTOCAST)["excess_loss"] > 0
    assert facts["condition_number"] > 30  # ill-conditioned by construction (eigenvalues from 1e-4..1 and 30..60)


def test_quadratic_problem_is_fixed_and_batches_are_pure():
    a = build_workload(workload_cfg("workload=quadratic")["workload"])
    b = build_workload(workload_cfg("workload=quadratic")["workload"])
    assert a.facts()["data_fingerprint"] == b.facts()["data_fingerprint"]
    assert torch.equal(a.train_batch(3, 1), b.train_batch(3, 1))
    assert not torch.equal(a.train_batch(3, 1), a.train_batch(4, 1))
    other = build_workload(workload_cfg("workload=quadratic", "workload.problem_seed=1")["workload"])
    assert other.facts()["data_fingerprint"] != a.facts()["data_fingerprint"]


# --- data ------------------------------------------------------------------------------------------------------


def test_digits_split_is_fixed_and_disjoint():
    train, test = split_indices(1797, 0.2, 0)
    again_train, again_test = split_indices(1797, 0.2, 0)
    assert np.array_equal(train, again_train) and np.array_equal(test, again_test)
    assert len(test) == 359 and not set(train) & set(test) and sorted([*train, *test]) == list(range(1797))
    from sklearn.datasets import load_digits

    images = digits(0.2, 0)
    assert np.array_equal(images.test_y, load_digits().target[test]) and len(images.train_x) == 1438
    assert images.fingerprint == digits(0.2, 0).fingerprint != digits(0.2, 1).fingerprint


def test_cifar_binary_reader_round_trips_and_refuses_truncated_files(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(5, 3, 32, 32), dtype=np.uint8)
    labels = np.array([0, 9, 3, 3, 7])
    write_cifar_file(tmp_path / "b.bin", images, labels)
    assert (tmp_path / "b.bin").stat().st_size == 5 * 3073
    x, y = read_cifar_file(tmp_path / "b.bin")
    assert np.array_equal(x, images) and y.tolist() == labels.tolist()
    raw = (tmp_path / "b.bin").read_bytes()
    (tmp_path / "b.bin").write_bytes(raw[:-100])
    with pytest.raises(ValueError, match="not a whole number of CIFAR-10 records"):
        read_cifar_file(tmp_path / "b.bin")


@pytest.mark.slow
def test_cifar_workloads_refuse_missing_or_damaged_data_in_one_line(tmp_path):
    proc = cli(["workload=resnet18_w16_cifar10", f"results_dir={tmp_path / 'r'}"])
    assert proc.returncode == 2 and "cifar-10-binary.tar.gz" in proc.stderr and len(proc.stderr.splitlines()) == 1
    data = write_cifar(tmp_path / "cifar")
    (data / "data_batch_3.bin").write_bytes((data / "data_batch_3.bin").read_bytes()[:5000])
    proc = cli(["workload=vit_tiny_cifar10", f"workload.data.path={data}", f"results_dir={tmp_path / 'r'}"])
    assert proc.returncode == 2 and "data_batch_3.bin" in proc.stderr and "truncated" in proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and not (tmp_path / "r").exists()


def test_augmentation_is_a_padded_crop_and_flip_and_pure():
    x = np.random.default_rng(0).integers(0, 256, size=(6, 3, 32, 32), dtype=np.uint8)
    out = augment(x, np.random.default_rng([7, 3, 1]))
    assert np.array_equal(out, augment(x, np.random.default_rng([7, 3, 1])))
    p = CROP_PADDING
    for image, result in zip(x, out, strict=True):
        padded = np.pad(image, ((0, 0), (p, p), (p, p)))
        crops = [padded[:, i : i + 32, j : j + 32] for i in range(2 * p + 1) for j in range(2 * p + 1)]
        assert any(np.array_equal(result, c) or np.array_equal(result, c[..., ::-1]) for c in crops)


def test_image_batches_are_pure_and_cover_each_epoch_once(tmp_path):
    cfg = workload_cfg("workload=cnn_digits")["workload"]
    workload = build_workload(cfg)
    x, y = workload.train_batch(5, 2)
    x2, y2 = workload.train_batch(5, 2)
    assert torch.equal(x, x2) and torch.equal(y, y2) and x.shape == (64, 1, 8, 8)
    n = len(workload.images.train_x)
    per_epoch = [workload.permutation(2, 0)]
    assert sorted(per_epoch[0].tolist()) == list(range(n))
    assert not np.array_equal(workload.permutation(2, 0), workload.permutation(2, 1))


# --- models ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", VISION)
def test_every_vision_scale_matches_its_parameter_formula(name, tmp_path):
    cfg = workload_cfg(f"workload={name}")["workload"]
    if cfg["data"]["source"] == "cifar10":
        cfg["data"]["path"] = str(write_cifar(tmp_path / "cifar", per_file=2))
    workload = build_workload(cfg)
    with torch.device("meta"):  # no memory, no training: the big scales are counted, not built for real
        model = workload.build_model(0)
    total = sum(p.numel() for p in model.parameters())
    arch = cfg["model"]
    if arch["arch"] == "resnet18":
        assert total == resnet18_params(arch["width"])
    elif arch["arch"] == "digits_cnn":
        assert total == digits_cnn_params(arch["width"])
    else:
        assert workload.facts()["params_non_embedding"] == vit_non_embedding_params(arch["dim"], arch["depth"])
    assert workload.facts()["flops_per_example"] > 0


def test_known_parameter_counts_and_ladders():
    assert resnet18_params(64) == 11_173_962  # ResNet-18 for CIFAR-10 as in kuangliu/pytorch-cifar
    # at ImageNet shapes (16x16 patches of 224x224, 1000 classes) the ViTs have DeiT-Ti/S and ViT-B/16's published
    # sizes (5.72M, 22.05M, 86.57M; exact counts as in timm)
    for (dim, heads), count in {(192, 3): 5_717_416, (384, 6): 22_050_664, (768, 12): 86_567_656}.items():
        with torch.device("meta"):
            model = ViT(dim, 12, heads, patch=16, image=224, classes=1000)
        assert sum(p.numel() for p in model.parameters()) == count
    for name, dim in {"quadratic": 100, "quadratic_400": 400, "quadratic_1600": 1600}.items():
        quadratic = build_workload(workload_cfg(f"workload={name}")["workload"])
        assert quadratic.facts()["params_non_embedding"] == dim == quadratic.build_model(0).theta.numel()
    for family in ("resnet18", "vit_", "cnn_digits", "quadratic", "lm_"):
        assert sum(family in name for name in WORKLOADS) >= 3


def test_vit_and_resnet_roles(tmp_path):
    data = write_cifar(tmp_path / "cifar", per_file=2)
    vit = build_workload(workload_cfg("workload=vit_tiny_cifar10", f"workload.data.path={data}")["workload"])
    roles = vit.param_roles(vit.build_model(0))
    assert roles["embed.proj.weight"] == roles["embed.cls"] == roles["embed.pos"] == ParamRole.EMBEDDING
    assert roles["embed.proj.bias"] == ParamRole.BIAS and roles["head.weight"] == ParamRole.HEAD
    assert roles["blocks.0.qkv.weight"] == ParamRole.HIDDEN_MATRIX and roles["norm.weight"] == ParamRole.NORM
    resnet = build_workload(workload_cfg("workload=resnet18_w16_cifar10", f"workload.data.path={data}")["workload"])
    roles = resnet.param_roles(resnet.build_model(0))
    assert roles["stem.0.weight"] == ParamRole.STEM  # the input layer (Muon's reference gives it to AdamW)
    assert roles["blocks.0.conv1.weight"] == roles["blocks.2.shortcut.0.weight"] == ParamRole.CONV_KERNEL
    assert roles["blocks.0.bn1.weight"] == ParamRole.NORM and roles["head.bias"] == ParamRole.BIAS


# --- from the CLI ----------------------------------------------------------------------------------------------

CLI_CASES = {
    "quadratic": ["workload.steps=6"],
    "cnn_digits": ["workload.epochs=0.3"],
    "resnet18_w16_cifar10": ["workload.epochs=0.25", "workload.batch_size=8", "workload.micro_batch_size=4"],
    "vit_tiny_cifar10": ["workload.epochs=0.25", "workload.batch_size=8", "workload.micro_batch_size=8"],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CLI_CASES))
def test_each_workload_trains_from_the_cli(name, tmp_path):
    data = [f"workload.data.path={write_cifar(tmp_path / 'cifar')}"] if "cifar" in name else []
    args = [f"workload={name}", *CLI_CASES[name], *data, "eval_every=2", "log_every=1", "progress=false"]
    proc = cli([*args, f"results_dir={tmp_path / 'r'}"])
    assert proc.returncode == 0, proc.stderr
    run = only_run_dir(tmp_path / "r")
    summary, rows = read_summary(run), read_metrics(run)
    assert summary["status"] == "completed" and summary["steps"] == rows[-1]["step"] >= 2
    metric = summary["metric"]["name"]
    assert summary["final"][metric] == rows[-1][f"eval/{metric}"]
    assert summary["flops_per_example"] > 0 and summary["params_non_embedding"] > 0
    assert summary["data_fingerprint"]
    assert (summary["target"] is None) == ("cifar" in name)  # GPU scales: no target until measured


# --- batch norm with every optimizer ---------------------------------------------------------------------------


def digits_setup(name: str):
    cfg = workload_cfg(f"optimizer={name}", "workload=cnn_digits", "workload.epochs=0.5")
    workload = build_workload(cfg["workload"])
    model = workload.build_model(0)
    return workload, model, build_optimization(get_spec(name), cfg, model, workload)


@pytest.mark.parametrize("name", sorted(NAMES))
def test_every_optimizer_trains_and_evaluates_a_batch_norm_model(name):
    workload, model, opt = digits_setup(name)
    before = copy.deepcopy(model.state_dict())
    opt.train_mode()
    losses = [
        train_step(model, opt, workload, workload.train_batch(s, 0), NO_AUTOCAST, 1.0)[0].item() for s in range(4)
    ]
    metrics = evaluate(model, opt, workload, CPU, NO_AUTOCAST)
    assert all(np.isfinite(losses)) and np.isfinite(metrics["loss"]) and 0 <= metrics["accuracy"] <= 1
    changed = [k for k, v in model.state_dict().items() if "weight" in k and not torch.equal(v, before[k])]
    assert {"features.0.weight", "features.3.weight", "head.weight"} <= set(changed), changed  # every kind learns


def bn_stats(model: nn.Module) -> list[torch.Tensor]:
    return [b.clone() for n, b in model.named_buffers() if "running" in n]


def test_schedule_free_evaluation_recomputes_batch_norm_statistics():
    workload, model, opt = digits_setup("sf_adamw")
    opt.train_mode()
    for s in range(6):
        train_step(model, opt, workload, workload.train_batch(s, 0), NO_AUTOCAST, 1.0)
    trained_stats = bn_stats(model)
    # what the statistics should be: Schedule-Free's x weights, statistics gathered afresh in train mode
    reference = copy.deepcopy(model)
    opt.eval_mode()
    expected_model = copy.deepcopy(model)
    opt.train_mode()
    recompute_batch_norm(expected_model, workload, CPU, NO_AUTOCAST)
    evaluate(model, opt, workload, CPU, NO_AUTOCAST)
    # (close, not bitwise: Schedule-Free's switch between y and x is not an exact inverse in floating point)
    for got, want, old in zip(bn_stats(model), bn_stats(expected_model), trained_stats, strict=True):
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-6)
        assert not torch.allclose(got, old, rtol=1e-2)  # recomputed, not the training-time ones
    # and the training weights are back in place afterwards (y, not x), up to the switch's last-bit rounding
    y, x = reference.features[0].weight, expected_model.features[0].weight
    assert torch.allclose(model.features[0].weight, y, rtol=1e-6, atol=1e-8)
    assert not torch.allclose(model.features[0].weight, x, rtol=1e-3, atol=1e-5)


def test_muon_gives_the_first_convolution_to_its_adamw_companion_as_the_reference_does():
    workload, model, opt = digits_setup("muon")
    muon, companion = opt.optimizer.optimizers
    in_muon = {id(p) for g in muon.param_groups for p in g["params"]}
    in_companion = {id(p) for g in companion.param_groups for p in g["params"]}
    first = model.features[0].weight
    assert workload.param_roles(model)["features.0.weight"] == ParamRole.STEM
    assert id(first) in in_companion and id(first) not in in_muon
    assert id(model.features[3].weight) in in_muon  # the hidden convolutions stay with Muon
    assert {g["weight_decay"] for g in companion.param_groups} == {0.01}  # the reference's companion decay


def test_dog_starts_with_the_authors_reps_rel_for_batch_norm_models_and_for_others():
    _, _, digits = digits_setup("dog")  # a batch-norm CNN
    assert {g["reps_rel"] for g in digits.optimizer.param_groups} == {1e-4}
    cfg = workload_cfg("optimizer=dog", "workload=quadratic")
    quadratic = build_workload(cfg["workload"])
    model = quadratic.build_model(0)
    plain = build_optimization(get_spec("dog"), cfg, model, quadratic)
    assert {g["reps_rel"] for g in plain.optimizer.param_groups} == {1e-6}


def test_muon_updates_conv_kernels_as_their_flattened_matrices():
    workload, model, opt = digits_setup("muon")
    muon = opt.optimizer.optimizers[0]
    muon.ns_dtype = torch.bfloat16  # (torch's Muon iterates in bf16 on every device)
    kernel = model.features[3].weight  # (16, 16, 3, 3)
    flat = nn.Parameter(kernel.detach().clone().view(16, -1))
    settings = {k: muon.defaults[k] for k in ("lr", "weight_decay", "momentum", "adjust_lr_fn", "ns_steps")}
    reference = torch.optim.Muon([flat], nesterov=True, **settings)
    for step in range(3):
        workload.loss(model, workload.train_batch(step, 0)).backward()
        flat.grad = kernel.grad.view(16, -1).clone()
        opt.optimizer.step()
        reference.step()  # the same gradient through torch's Muon on a 2-D parameter ...
        opt.optimizer.zero_grad(set_to_none=True)
    assert torch.equal(kernel.detach().view(16, -1), flat.detach())  # ... gives the same kernel, bit for bit
