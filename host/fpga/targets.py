"""FPGA targets: what a ``bitstreams/targets/NAME.toml`` file says about a device, validated.

A target is a device and package on a board (pins for the synthesis wrapper, nextpnr's options,
the device's resources and, on ECP5, where its DSP blocks stand) or the generic Yosys target with
no device. ``load_target`` reads one file into a frozen :class:`Target`; a file with a wrong or
unknown key is refused with a message naming the file and the field, as ``hw.config`` does for
accelerator configurations.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from host.fpga.wrapper import WRAPPER_PINS

__all__ = ["BUILD_DIR", "DspSites", "FlowConfigError", "TARGETS_DIR", "Target", "load_target", "target_names",
           "validated"]

ROOT = Path(__file__).resolve().parents[2]
TARGETS_DIR = ROOT / "bitstreams" / "targets"
BUILD_DIR = ROOT / "bitstreams" / "build"

Resource = Literal["luts", "ffs", "dsps", "brams", "sprams"]
NonEmpty = Annotated[tuple[int, ...], Field(min_length=1)]


class FlowConfigError(ValueError):
    """A target file or flow options the flow cannot run with; the message names the source and the field."""


def validated(model: type[BaseModel], data: dict, source: str) -> BaseModel:
    """``model(**data)``, or a FlowConfigError with one line per problem: ``source: field: message``."""
    try:
        return model(**data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key; valid keys: " + ", ".join(model.model_fields)
            lines.append(f"{source}: {where}: {msg}" if where else f"{source}: {msg}")
        raise FlowConfigError("\n".join(lines)) from None


class DspSites(BaseModel):
    """A device's DSP sites: ``rows`` (tile Y), ``columns`` (tile X of each site along a row) and
    ``bels`` (the site names, repeating along a row: the k-th site is ``bels[k % len]``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cell: str  # the DSP cell type the sites hold (MULT18X18D)
    rows: NonEmpty
    columns: NonEmpty
    bels: Annotated[tuple[str, ...], Field(min_length=1)]

    def __len__(self) -> int:
        return len(self.rows) * len(self.columns)

    def path(self) -> list[str]:
        """Every site once, row after row, alternating direction (nextpnr BEL names)."""
        out = []
        for n, y in enumerate(self.rows):
            ks = range(len(self.columns))
            for k in (reversed(ks) if n % 2 else ks):
                out.append(f"X{self.columns[k]}/Y{y}/{self.bels[k % len(self.bels)]}")
        return out


class Target(BaseModel):
    """One FPGA target: a device and package on a board, or the generic synthesis target."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    description: str
    family: Literal["ecp5", "ice40", "generic"]
    device: str | None = None
    package: str | None = None
    nextpnr: tuple[str, ...] = ()
    yosys: tuple[str, ...] = ()
    board: str | None = None
    board_clock_mhz: Annotated[float, Field(gt=0)] | None = None
    openfpgaloader_board: str | None = None
    capacity: dict[Resource, Annotated[int, Field(ge=0)]] = {}
    pins: dict[str, str] = {}
    pin_polarity: dict[str, Literal["active-high", "active-low"]] = {}
    lut_width: Annotated[int, Field(ge=2, le=8)] = 4
    dsp_sites: DspSites | None = None  # where the DSP blocks are, for the PEs' floorplan

    @property
    def places(self) -> bool:
        return self.family in ("ecp5", "ice40")

    @model_validator(mode="after")
    def _wrapper_pins(self) -> Target:
        unknown = sorted((set(self.pins) | set(self.pin_polarity)) - set(WRAPPER_PINS))
        if unknown:
            raise ValueError(f"pins: no wrapper pin named {', '.join(unknown)}; pins: {', '.join(WRAPPER_PINS)}")
        if self.places:
            missing = [p for p in WRAPPER_PINS if p not in self.pins]
            if missing or not (self.device and self.package):
                raise ValueError(f"an {self.family} target needs device, package and [pins] for "
                                 f"{', '.join(WRAPPER_PINS)}" + (f" (missing pins: {', '.join(missing)})"
                                                                 if missing else ""))
        return self


def target_names() -> list[str]:
    return sorted(p.stem for p in TARGETS_DIR.glob("*.toml"))


def load_target(name: str, directory: Path = TARGETS_DIR) -> Target:
    """The target ``directory/NAME.toml``; FlowConfigError naming the file and field if it is not one."""
    path = directory / f"{name}.toml"
    if not path.is_file():
        raise FlowConfigError(f"no FPGA target named {name!r}; targets: {', '.join(target_names())}")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise FlowConfigError(f"{path}: not valid TOML: {exc}") from None
    return validated(Target, {"name": name, **raw}, str(path))
