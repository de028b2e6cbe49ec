"""Shared pieces of the cocotb testbenches: the configuration under test, seeded randomness,
clock and reset."""

from __future__ import annotations

import json
import os
from functools import cache

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles

from hw.config import AccelConfig, from_dict

CONFIG_ENV = "LOWBIT_CONFIG_JSON"


def config_env(cfg: AccelConfig) -> dict[str, str]:
    """Environment that hands a configuration to a testbench."""
    return {CONFIG_ENV: json.dumps(cfg.model_dump(mode="json"))}


@cache
def config() -> AccelConfig:
    return from_dict(json.loads(os.environ[CONFIG_ENV]), CONFIG_ENV)


def rng(dut) -> np.random.Generator:
    seed = cocotb.RANDOM_SEED
    dut._log.info("numpy seed %d (rerun with COCOTB_RANDOM_SEED=%d)", seed, seed)
    return np.random.default_rng(seed)


async def start(dut, period_ns: int = 10) -> None:
    """Start the clock and hold reset for two cycles."""
    Clock(dut.clk, period_ns, unit="ns").start()
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
