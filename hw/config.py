"""The accelerator configuration: one frozen, validated record that every generator reads.

A configuration comes from a named preset (``hw/presets/NAME.toml``) or a TOML file path.
Every width and size the RTL, compiler and golden model use is derived from it.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hw.datatypes import DATATYPES, Datatype
from hw.isa import PARAM_BYTES
from hw.numerics import act_range

PRESET_DIR = Path(__file__).parent / "presets"

AXI_WIDTHS = (32, 64, 128, 256)
ACC_WIDTHS = (16, 24, 32)


class ConfigError(ValueError):
    """A configuration that cannot describe a buildable accelerator."""


def _pow2(name: str, value: int) -> int:
    if value & (value - 1):
        raise ValueError(f"{name} must be a power of two, got {value}")
    return value


Dim = Annotated[int, Field(ge=1, le=64)]
Bytes = Annotated[int, Field(ge=1, le=1 << 24)]


class AccelConfig(BaseModel):
    """Parameters of one accelerator instance. Units are in the field names."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = "custom"
    description: str = ""
    rows: Dim = Field(16, description="systolic array rows (reduction dimension K per pass)")
    cols: Dim = Field(16, description="systolic array columns (output channels N per pass)")
    pe: Literal["parallel", "serial"] = Field("parallel", description="PE family")
    act_bits: Annotated[int, Field(ge=2, le=8)] = Field(8, description="activation bits")
    weight_dtypes: tuple[str, ...] = Field(("int2", "int4", "int8"), min_length=1)
    acc_bits: int = Field(32, description="accumulator bits (16, 24 or 32)")
    group_size: Annotated[int, Field(ge=1, le=1024)] = Field(
        32, description="weights per quantization group along K"
    )
    input_buf_bytes: Bytes = 32768
    weight_buf_bytes: Bytes = 32768
    acc_buf_bytes: Bytes = 32768
    out_buf_bytes: Bytes = 8192
    param_buf_bytes: Bytes = 4096
    double_buffer: bool = True
    postproc_lanes: Annotated[int, Field(ge=0, le=64)] = Field(
        4, description="requantization lanes: columns post-processed per cycle (0, or cols and up: "
        "one per column, a row per cycle)"
    )
    dep_queue_depth: Annotated[int, Field(ge=1, le=255)] = Field(
        8, description="dependency tokens each queue-to-queue channel holds"
    )
    insn_queue_depth: Annotated[int, Field(ge=1, le=255)] = Field(
        16, description="decoded instructions each of the load/compute/store queues holds"
    )
    dma_movers: Literal["per_engine", "per_buffer"] = Field(
        "per_buffer", description="DMA movers: one per engine (LOAD's reader takes rows of every "
        "loadable buffer, STORE's writer of every storable one: less logic) or one per buffer "
        "(a reader or writer for each row width, behind an arbiter or multiplexer)"
    )
    dma_outstanding: Annotated[int, Field(ge=1, le=64)] = Field(
        32, description="AXI bursts each DMA mover keeps in flight: the depth of its descriptor, "
        "burst-length and response FIFOs (flip-flops on an iCE40) and of the read arbiter's routing FIFO"
    )
    axi_data_bits: int = 128
    axi_addr_bits: Annotated[int, Field(ge=16, le=32)] = 32
    dram_bytes: Annotated[int, Field(ge=4096, le=1 << 32)] = 1 << 25
    clock_mhz: Annotated[float, Field(gt=0, le=1000)] = 100.0

    @field_validator("weight_dtypes")
    @classmethod
    def _known_dtypes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [d for d in v if d not in DATATYPES]
        if unknown:
            raise ValueError(f"unknown datatype(s) {unknown}; known: {sorted(DATATYPES)}")
        if len(set(v)) != len(v):
            raise ValueError(f"datatypes listed twice in {list(v)}")
        return v

    @field_validator("acc_bits")
    @classmethod
    def _acc_width(cls, v: int) -> int:
        if v not in ACC_WIDTHS:
            raise ValueError(f"must be one of {ACC_WIDTHS}, got {v}")
        return v

    @field_validator("axi_data_bits")
    @classmethod
    def _axi_width(cls, v: int) -> int:
        if v not in AXI_WIDTHS:
            raise ValueError(f"must be one of {AXI_WIDTHS}, got {v}")
        return v

    @field_validator("dram_bytes")
    @classmethod
    def _dram_pow2(cls, v: int) -> int:
        return _pow2("dram_bytes", v)

    @field_validator("rows", "cols")
    @classmethod
    def _dim_pow2(cls, v: int, info) -> int:
        # power-of-two rows and AXI beats divide one another, so the DMA packs beats into
        # scratchpad rows without a general byte gearbox
        return _pow2(info.field_name, v)

    @model_validator(mode="after")
    def _consistent(self) -> AccelConfig:
        for name in self.weight_dtypes:
            dt = DATATYPES[name]
            if self.pe not in dt.pe_kinds:
                raise ValueError(
                    f"weight_dtypes: {name} cannot run on pe = {self.pe!r} "
                    f"(it runs on {', '.join(dt.pe_kinds)})"
                )
            if (self.rows * dt.bits) % 8:
                raise ValueError(
                    f"rows = {self.rows}: a {name} weight tile row must fill whole bytes; "
                    f"rows * {dt.bits} must be a multiple of 8"
                )
        if self.group_size % self.rows:
            raise ValueError(
                f"group_size = {self.group_size}: must be a multiple of rows = {self.rows} "
                "so that one array pass never spans two groups"
            )
        if 1 << self.axi_addr_bits < self.dram_bytes:
            raise ValueError(
                f"dram_bytes = {self.dram_bytes}: does not fit axi_addr_bits = {self.axi_addr_bits}"
            )
        for field, need in self.min_buffer_bytes().items():
            have = getattr(self, field)
            if have < need:
                raise ValueError(
                    f"{field} = {have}: too small for one tile; needs at least {need} bytes "
                    f"({self.rows}x{self.cols} array, double_buffer = {self.double_buffer})"
                )
            row = self.buffer_row_bytes(field)
            if have % row:
                raise ValueError(f"{field} = {have}: must be a multiple of its row, {row} bytes")
        if self.postproc_lanes & (self.postproc_lanes - 1):
            raise ValueError(
                f"postproc_lanes = {self.postproc_lanes}: must be 0 (one per column) or a power of two"
            )
        return self

    # ---- derived quantities -------------------------------------------------------------

    @property
    def pp_lanes(self) -> int:
        """Requantization lanes: ``postproc_lanes``, or one per column when that is 0 or more
        than ``cols``."""
        return min(self.postproc_lanes or self.cols, self.cols)

    @property
    def pp_row_cycles(self) -> int:
        """Cycles the post-processing unit takes per accumulator row."""
        return self.cols // self.pp_lanes

    @property
    def slots(self) -> int:
        """Buffer halves the compiler ping-pongs between (2 when double-buffered)."""
        return 2 if self.double_buffer else 1

    @property
    def acc_bytes(self) -> int:
        return self.acc_bits // 8

    @property
    def act_min(self) -> int:
        return act_range(self.act_bits)[0]

    @property
    def act_max(self) -> int:
        return act_range(self.act_bits)[1]

    def buffer_row_bytes(self, field: str) -> int:
        """Width in bytes of one row of the scratchpad named by its size field."""
        return {
            "input_buf_bytes": self.rows,
            "weight_buf_bytes": self.cols,
            "acc_buf_bytes": self.cols * self.acc_bytes,
            "out_buf_bytes": self.cols,
            "param_buf_bytes": self.cols * PARAM_BYTES,
        }[field]

    def buffer_depth(self, field: str) -> int:
        """Rows in the scratchpad named by its size field."""
        return getattr(self, field) // self.buffer_row_bytes(field)

    def min_buffer_bytes(self) -> dict[str, int]:
        """Smallest buffers that hold one rows x rows x cols tile (per slot)."""
        widest = max(DATATYPES[d].bits for d in self.weight_dtypes)
        tile_w_rows = self.rows * widest // 8
        return {
            "input_buf_bytes": self.slots * self.rows * self.buffer_row_bytes("input_buf_bytes"),
            "weight_buf_bytes": self.slots * tile_w_rows * self.buffer_row_bytes("weight_buf_bytes"),
            "acc_buf_bytes": self.rows * self.buffer_row_bytes("acc_buf_bytes"),
            "out_buf_bytes": self.slots * self.rows * self.buffer_row_bytes("out_buf_bytes"),
            "param_buf_bytes": self.buffer_row_bytes("param_buf_bytes"),
        }

    def weight_tile_rows(self, dtype: Datatype | str) -> int:
        """Weight-buffer rows taken by one packed rows x cols weight tile."""
        dt = DATATYPES[dtype] if isinstance(dtype, str) else dtype
        return self.rows * dt.bits // 8

    def hardware_dict(self) -> dict:
        """The fields that change the hardware (everything but name and description)."""
        d = self.model_dump(mode="json")
        d.pop("name")
        d.pop("description")
        return d

    @cached_property
    def hash(self) -> str:
        """Stable short hash of the hardware fields; names build caches."""
        blob = json.dumps(self.hardware_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml"))


def _allowed(field: str) -> str:
    """The allowed range of a numeric field, read from its constraints."""
    info = AccelConfig.model_fields.get(field)
    if info is None:
        return ""
    lo = hi = None
    for c in info.metadata:
        lo = getattr(c, "ge", None) if getattr(c, "ge", None) is not None else lo
        lo = f">{c.gt}" if getattr(c, "gt", None) is not None else lo
        hi = getattr(c, "le", None) if getattr(c, "le", None) is not None else hi
    if lo is None and hi is None:
        return ""
    return f"; allowed {lo if lo is not None else ''}..{hi if hi is not None else ''}"


def from_dict(data: dict, source: str = "<dict>") -> AccelConfig:
    """Validate a mapping into an AccelConfig; errors name the source and the field."""
    try:
        return AccelConfig(**data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = f"unknown key; valid keys: {', '.join(AccelConfig.model_fields)}"
            elif err["type"].startswith(("greater_than", "less_than")):
                msg = f"{msg}, got {err['input']!r}{_allowed(field)}"
            lines.append(f"{source}: {field}: {msg}" if field else f"{source}: {msg}")
        raise ConfigError("\n".join(lines)) from None


def load_config(name_or_path: str | Path) -> AccelConfig:
    """Load a preset by name (``tiny``, ``default``, ``large``) or a TOML file by path."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = PRESET_DIR / f"{name_or_path}.toml"
        if not path.exists():
            raise ConfigError(
                f"no configuration named {str(name_or_path)!r}; presets: "
                f"{', '.join(preset_names())}, or give a path to a .toml file"
            )
    if not path.is_file():
        raise ConfigError(f"{path}: no such configuration file")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    data.setdefault("name", path.stem)
    return from_dict(data, str(path))
