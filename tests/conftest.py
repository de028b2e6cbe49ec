import zlib

import numpy as np
import pytest

from hw.config import load_config


@pytest.fixture(scope="session")
def tiny():
    return load_config("tiny")


@pytest.fixture(scope="session")
def default():
    return load_config("default")


@pytest.fixture
def rng(request):
    """A generator seeded from the test's name, so every failure reproduces."""
    seed = zlib.crc32(request.node.name.encode())
    print(f"numpy seed {seed}")
    return np.random.default_rng(seed)
