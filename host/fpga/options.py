"""What one run of the flow asks for: one frozen, validated record (``FlowOptions``).

``lowbit synth``'s flags, the synth-sweep benchmark and the tests all build one; the flow reads
nothing else but the configuration and the target. ``flow_options(**fields)`` validates and
names the field that is wrong (``flow options: tries: ...``), as targets and configurations do.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from host.fpga.targets import validated

__all__ = ["DEFAULT_FANOUT", "DEFAULT_JOBS", "DEFAULT_TRIES", "FlowOptions", "LUT_PE_FORMS", "STAGE_OPTIONS",
           "STEPS", "UNITS", "flow_options"]

# seeds tried and nextpnr runs at a time by default: on two cores, three rounds of two seeds
DEFAULT_TRIES = 6
DEFAULT_JOBS = min(2, os.cpu_count() or 1)
DEFAULT_FANOUT = 64  # the most sinks of a register or LUT before placement (host/fpga/passes/fanout.py)
UNITS = ("accelerator", "array")
LUT_PE_FORMS = ("product", "halves", "booth")  # how a PE without a DSP block multiplies (hw/array.py)
# the flow's steps in order (host/fpga/flow.py); a run can resume from any of them
STEPS = ("generate", "synthesis", "analysis", "netlist-passes", "place-and-route", "bitstream")
# nextpnr options that would stop it short of a routed design, which the flow would then pack
STAGE_OPTIONS = ("--no-route", "--no-place", "--pack-only")

Count = Annotated[int, Field(ge=1)]


class FlowOptions(BaseModel):
    """One run of the flow. Units are in the field names; see docs/fpga.md for each choice."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    out_dir: Path | None = Field(None, description="output folder (default bitstreams/build/CONFIG-TARGET[-array])")
    unit: Literal["accelerator", "array"] = Field("accelerator", description="the whole accelerator or its "
                                                  "systolic array alone, in the same wrapper")
    freq_mhz: Annotated[float, Field(gt=0)] | None = Field(None, description="clock constraint (default: the "
                                                                             "config's clock_mhz)")
    place: bool = Field(True, description="False: stop after synthesis (counts and the fit check only)")
    route: bool = Field(True, description="False: stop after placement (utilisation and nextpnr's estimate)")
    reuse: bool = Field(True, description="reuse the folder's synthesis, or its whole run, when identical")
    resume_from: Literal[STEPS] | None = Field(None, description="take the steps before this one from the "
                                                                 "folder as they are; run it and the rest")
    seed: int = Field(1, description="first nextpnr placement seed")
    tries: Count = Field(DEFAULT_TRIES, description="seeds to try: seed, seed + 1, ...")
    jobs: Count = Field(DEFAULT_JOBS, description="nextpnr runs at a time, each on its own seed")
    pnr_args: tuple[str, ...] = Field((), description="nextpnr options after the target's own")
    pnr_time_limit: Annotated[float, Field(gt=0)] | None = Field(None, description="seconds before nextpnr "
                                                                                   "is stopped (an error)")
    dsp_budget: Annotated[int, Field(ge=0)] | None = Field(None, description="DSP blocks multipliers may take "
                                                                             "(default: all of the device's)")
    lut_pe: Literal[LUT_PE_FORMS] = Field("product", description="the form of the PEs the DSP budget leaves "
                                                                 "without a DSP block")
    floorplan: bool = Field(True, description="fix the PEs' DSP blocks to the target's DSP sites")
    dsp_registers: bool = Field(True, description="move product registers into the DSP blocks (ECP5)")
    max_fanout: Annotated[int, Field(ge=0)] = Field(DEFAULT_FANOUT, description="copy cells with more sinks "
                                                    "before placement, reset on a global (ECP5); 0: neither")

    @field_validator("pnr_args")
    @classmethod
    def _no_stage_option(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        stops = [a for a in v if a.split("=")[0] in STAGE_OPTIONS]
        if stops:
            raise ValueError(f"nextpnr option {stops[0]} stops before routing, and the flow would pack the "
                             "unrouted design into a bitstream: use place-only (--place-only) instead")
        return v


def flow_options(source: str = "flow options", **fields) -> FlowOptions:
    """FlowOptions from keyword fields; a FlowConfigError names the field that is wrong."""
    return validated(FlowOptions, fields, source)
