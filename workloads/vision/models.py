"""Image classifiers: a small batch-norm CNN (digits), ResNet-18 for 32x32 inputs at several widths, and ViT.
Each has a parameter-count formula the tests check against the built model."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn(c_in: int, c_out: int, stride: int = 1, kernel: int = 3) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, bias=False), nn.BatchNorm2d(c_out)]


class DigitsCNN(nn.Module):
    """conv-BN-ReLU x2 at 8x8, max-pool to 4x4, conv-BN-ReLU, global average pool, linear head."""

    def __init__(self, width: int, classes: int = 10, channels: int = 1):
        super().__init__()
        self.features = nn.Sequential(
            *conv_bn(channels, width),
            nn.ReLU(),
            *conv_bn(width, width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            *conv_bn(width, 2 * width),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(2 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def digits_cnn_params(width: int, classes: int = 10, channels: int = 1) -> int:
    w = width
    convs = 9 * channels * w + 9 * w * w + 9 * w * 2 * w
    norms = 2 * (w + w + 2 * w)
    return convs + norms + 2 * w * classes + classes


class BasicBlock(nn.Module):
    """He et al. 2016: two 3x3 conv-BN, identity shortcut (1x1 conv-BN when the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1, self.bn1 = conv_bn(c_in, c_out, stride)
        self.conv2, self.bn2 = conv_bn(c_out, c_out)
        self.shortcut = nn.Sequential(*conv_bn(c_in, c_out, stride, kernel=1)) if stride != 1 or c_in != c_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (self.shortcut(x) if self.shortcut is not None else x))


class ResNet18(nn.Module):
    """ResNet-18 for 32x32 images (3x3 stem, no max-pool; as in kuangliu/pytorch-cifar); `width` is the first
    stage's channels (64 in the original), the later stages have 2, 4 and 8 times as many."""

    def __init__(self, width: int = 64, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(*conv_bn(3, width), nn.ReLU())
        stages, c_in = [], width
        for i, stride in enumerate((1, 2, 2, 2)):
            c_out = width * 2**i
            stages += [BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out, 1)]
            c_in = c_out
        self.blocks = nn.Sequential(*stages)
        self.head = nn.Linear(c_in, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))


def resnet18_params(width: int, classes: int = 10) -> int:
    def block(c_in: int, c_out: int, stride: int) -> int:
        n = 9 * c_in * c_out + 9 * c_out * c_out + 4 * c_out
        return n + (c_in * c_out + 2 * c_out if stride != 1 or c_in != c_out else 0)

    total, c_in = 27 * width + 2 * width, width
    for i, stride in enumerate((1, 2, 2, 2)):
        c_out = width * 2**i
        total += block(c_in, c_out, stride) + block(c_out, c_out, 1)
        c_in = c_out
    return total + c_in * classes + classes


class PatchEmbedding(nn.Module):
    """Patches to vectors, a class token and learned positions: the ViT's embedding parameters."""

    def __init__(self, image: int, patch: int, dim: int, channels: int = 3):
        super().__init__()
        self.proj = nn.Conv2d(channels, dim, patch, stride=patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, (image // patch) ** 2 + 1, dim) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x).flatten(2).transpose(1, 2)  # (B, patches, dim)
        return torch.cat([self.cls.expand(len(x), -1, -1), x], dim=1) + self.pos


class EncoderBlock(nn.Module):
    """Pre-norm: x + attention(LN(x)), then x + MLP(LN(x)) with GELU and 4x hidden width."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.attn_norm, self.mlp_norm = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.attn_norm(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        x = x + self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d))
        return x + self.fc2(F.gelu(self.fc1(self.mlp_norm(x))))


class ViT(nn.Module):
    """Dosovitskiy et al. 2021 with DeiT's shapes (Touvron et al. 2021); the class token's output is classified."""

    def __init__(self, dim: int, depth: int, heads: int, patch: int = 4, image: int = 32, classes: int = 10):
        super().__init__()
        self.embed = PatchEmbedding(image, patch, dim)
        self.blocks = nn.Sequential(*(EncoderBlock(dim, heads) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.blocks(self.embed(x)))[:, 0])


def vit_non_embedding_params(dim: int, depth: int) -> int:
    """Per block: two LayerNorms (4d), qkv (3d² + 3d), projection (d² + d), MLP (8d² + 5d); plus the final norm."""
    return depth * (12 * dim * dim + 13 * dim) + 2 * dim


MODELS = {
    "digits_cnn": lambda cfg, classes: DigitsCNN(cfg["width"], classes),
    "resnet18": lambda cfg, classes: ResNet18(cfg["width"], classes),
    "vit": lambda cfg, classes: ViT(cfg["dim"], cfg["depth"], cfg["heads"], cfg["patch"], classes=classes),
}
