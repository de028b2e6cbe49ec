"""A small CNN trained at run time on scikit-learn's bundled handwritten digits (1,797 8x8
images, 10 classes): seconds on a CPU with a fixed seed, so the demo runs a model with real,
learned weights and measures real accuracy without downloading anything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SEED = 0
TEST_FRACTION = 0.2
EPOCHS = 30
BATCH = 64
LEARNING_RATE = 5e-3


@dataclass(frozen=True)
class Digits:
    """The data set split once with a fixed seed; images are (N, 1, 8, 8) float32 in [0, 1]."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def load_digits_split(seed: int = SEED) -> Digits:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    xtr, xte, ytr, yte = train_test_split(x, d.target, test_size=TEST_FRACTION, random_state=seed, stratify=d.target)
    return Digits(torch.from_numpy(xtr), torch.from_numpy(ytr), torch.from_numpy(xte), torch.from_numpy(yte))


class DigitsCNN(nn.Module):
    """conv3x3 -> conv3x3 stride 2 -> depthwise conv3x3 + 1x1 conv with a residual add -> linear -> linear."""

    def __init__(self, channels: int = 8, hidden: int = 32, classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1)
        self.depthwise = nn.Conv2d(2 * channels, 2 * channels, 3, padding=1, groups=2 * channels)
        self.pointwise = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.fc1 = nn.Linear(2 * channels * 16, hidden)
        self.fc2 = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        y = self.pointwise(F.relu(self.depthwise(x)))
        x = F.relu(x + y)
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc2(x)


def train(data: Digits, epochs: int = EPOCHS, seed: int = SEED) -> DigitsCNN:
    """Adam on cross-entropy, fixed seed and batch order, one thread (these tensors are too small
    for more to help, and one thread keeps the result the same on every machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(data, epochs, seed)
    finally:
        torch.set_num_threads(threads)


def _train(data: Digits, epochs: int, seed: int) -> DigitsCNN:
    torch.manual_seed(seed)
    model = DigitsCNN()
    opt = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(data.x_train), generator=gen)
        for i in range(0, len(order), BATCH):
            idx = order[i : i + BATCH]
            opt.zero_grad()
            F.cross_entropy(model(data.x_train[idx]), data.y_train[idx]).backward()
            opt.step()
    return model.eval()


def accuracy(logits: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor) -> float:
    return float((np.asarray(logits).argmax(axis=1) == np.asarray(labels)).mean())
