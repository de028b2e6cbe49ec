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


@pytest.fixture(scope="session")
def tiny_serial(tiny):
    """A small bit-serial configuration that runs every datatype the serial PE can."""
    from hw.config import from_dict
    from hw.datatypes import DATATYPES

    serial_types = [n for n, d in DATATYPES.items() if "serial" in d.pe_kinds]
    return from_dict({**tiny.model_dump(), "name": "tiny_serial", "rows": 8, "pe": "serial",
                      "weight_dtypes": serial_types, "param_buf_bytes": 1024})
