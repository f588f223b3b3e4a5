"""The image-classification workload family: a model from `models.py` on images from `data.py`, trained for a
number of epochs with the standard augmentation, scored by held-out accuracy."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from workloads.base import Metric, ParamRole, Workload, roles_by_module
from workloads.vision.data import Images, load_images
from workloads.vision.models import MODELS

CROP_PADDING = 4  # random 32x32 crop of the zero-padded 40x40 image, as in the standard CIFAR recipes


def augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random crop with zero padding of CROP_PADDING and a horizontal flip with probability 1/2, per image."""
    b, c, h, w = x.shape
    p = CROP_PADDING
    padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    dy, dx = rng.integers(0, 2 * p + 1, size=(2, b))
    rows = (dy[:, None] + np.arange(h))[:, None, :, None]
    cols = (dx[:, None] + np.arange(w))[:, None, None, :]
    out = padded[np.arange(b)[:, None, None, None], np.arange(c)[None, :, None, None], rows, cols]
    flip = rng.random(b) < 0.5
    out[flip] = out[flip][..., ::-1]
    return out


class ImageClassification(Workload):
    primary_metric = Metric("accuracy", lower_is_better=False)

    def __init__(self, cfg: dict):
        self.name = cfg["name"]
        self.target = cfg.get("target")
        self.cfg = cfg
        batch = cfg["batch_size"]
        self.examples_per_step = self.tokens_per_step = batch
        self.set_micro_batch_size(cfg["micro_batch_size"])
        if cfg["model"]["arch"] not in MODELS:
            raise ValueError(f"unknown model arch {cfg['model']['arch']!r}; valid: {', '.join(MODELS)}")
        self.cuda_precision = "bf16" if cfg["model"]["arch"] == "vit" else "fp32"  # ViTs train in bf16 (timm)
        self.images: Images = load_images(cfg["data"])
        n_train = len(self.images.train_x)
        budget = cfg.get("tokens") or cfg["epochs"] * n_train  # examples: explicit, or epochs over the train set
        self.steps = max(1, math.ceil(budget / batch))
        self.label_smoothing = cfg["label_smoothing"]
        self.augment = cfg["augment"]
        self.bn_recompute_batches = cfg["bn_recompute_batches"]
        pixels = self.images.train_x.astype(np.float32) / 255
        self.mean = pixels.mean(axis=(0, 2, 3), keepdims=True)  # per channel, from the training images
        self.std = pixels.std(axis=(0, 2, 3), keepdims=True)
        self.eval_x = self.normalise(self.images.test_x)
        self.eval_y = torch.from_numpy(self.images.test_y)
        self._perms: dict[tuple[int, int], np.ndarray] = {}
        self._facts: dict | None = None

    def normalise(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy((x.astype(np.float32) / 255 - self.mean) / self.std)

    def build_model(self, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return MODELS[self.cfg["model"]["arch"]](self.cfg["model"], self.images.classes)

    @staticmethod
    def embeddings(model: nn.Module) -> tuple[nn.Module, ...]:
        return (model.embed, model.embed.proj) if hasattr(model, "embed") else ()

    @staticmethod
    def stems(model: nn.Module) -> tuple[nn.Module, ...]:
        """A CNN's first convolution (a ViT's input layer is its patch embedding)."""
        return () if hasattr(model, "embed") else (next(m for m in model.modules() if isinstance(m, nn.Conv2d)),)

    def param_roles(self, model: nn.Module) -> dict[str, ParamRole]:
        return roles_by_module(model, embeddings=self.embeddings(model), heads=(model.head,), stems=self.stems(model))

    def non_embedding_params(self, model: nn.Module) -> int:
        """Kaplan's N: every parameter outside the embedding and the output head (their biases included)."""
        outside = {id(p) for m in (*self.embeddings(model), model.head) for p in m.parameters()}
        return sum(p.numel() for p in model.parameters() if id(p) not in outside)

    def permutation(self, data_seed: int, epoch: int) -> np.ndarray:
        key = (data_seed, epoch)
        if key not in self._perms:
            if len(self._perms) > 4:
                self._perms.clear()
            self._perms[key] = np.random.default_rng([data_seed, epoch]).permutation(len(self.images.train_x))
        return self._perms[key]

    def train_batch(self, step: int, data_seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Examples step*B .. step*B+B-1 of the epoch-wise shuffled stream (each epoch a fresh permutation), then
        the augmentation drawn from (data_seed, step): a pure function of both."""
        n = len(self.images.train_x)
        positions = step * self.examples_per_step + np.arange(self.examples_per_step)
        index = np.array([self.permutation(data_seed, int(p // n))[p % n] for p in positions])
        x = self.images.train_x[index]
        if self.augment:
            x = augment(x, np.random.default_rng([data_seed, step, 1]))
        return self.normalise(x), torch.from_numpy(self.images.train_y[index])

    def eval_batches(self):
        size = self.cfg["eval_batch_size"]
        return zip(self.eval_x.split(size), self.eval_y.split(size), strict=True)

    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(model(x).float(), y, label_smoothing=self.label_smoothing)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, device: torch.device, autocast: torch.autocast) -> dict[str, float]:
        total = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        for x, y in self.eval_batches():
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with autocast:
                logits = model(x).float()
            total += F.cross_entropy(logits, y, reduction="sum")
            correct += (logits.argmax(1) == y).sum()
        n = len(self.eval_y)
        return {"accuracy": correct.item() / n, "loss": total.item() / n}

    def facts(self) -> dict:
        if self._facts is None:
            with torch.device("meta"):
                model = self.build_model(0)
            with FlopCounterMode(display=False) as counter:
                model(torch.zeros(1, *self.images.train_x.shape[1:], device="meta"))
            self._facts = {
                "flops_per_example": 3 * counter.get_total_flops(),  # forward, and about twice that backward
                "params_non_embedding": self.non_embedding_params(model),
                "train_examples": len(self.images.train_x),
                "eval_examples": len(self.images.test_x),
                "classes": self.images.classes,
                "data_fingerprint": self.images.fingerprint,
            }
            if self.cfg["model"]["arch"] == "vit":
                self._facts["head_dim"] = self.cfg["model"]["dim"] // self.cfg["model"]["heads"]
        return self._facts
