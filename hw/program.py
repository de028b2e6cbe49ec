"""The program file (``.lbp``): instructions, the initial DRAM image and tensor descriptors,
for one configuration and one ISA version.

On disk: ``b"LBP\\0"``, a little-endian u32 header length, a JSON header, then the segments'
bytes. The header names the ISA version, the configuration (and its hash), where each segment
goes in DRAM with its CRC-32, and the tensors a host reads and writes.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from hw.config import AccelConfig, from_dict
from hw.isa import INSN_BYTES, ISA_VERSION, from_bytes, to_bytes

MAGIC = b"LBP\0"
FORMAT_VERSION = 1
TEXT = "text"


class ProgramError(ValueError):
    """A program file that cannot be read or does not fit its configuration."""


@dataclass(frozen=True)
class TensorDesc:
    """A tensor in DRAM: row-major ``shape`` of ``dtype`` starting at ``dram_addr``."""

    name: str
    role: str  # "input", "output" or "constant"
    dram_addr: int
    shape: tuple[int, ...]
    dtype: str  # a NumPy dtype name ("int8", "int32")
    meta: dict = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize


@dataclass(frozen=True)
class Segment:
    name: str
    dram_addr: int
    data: bytes


@dataclass(frozen=True)
class Program:
    config: AccelConfig
    insns: tuple[int, ...]
    text_addr: int
    segments: tuple[Segment, ...]
    tensors: tuple[TensorDesc, ...] = ()
    meta: dict = field(default_factory=dict)
    isa_version: str = ISA_VERSION

    @property
    def all_segments(self) -> tuple[Segment, ...]:
        return (Segment(TEXT, self.text_addr, to_bytes(list(self.insns))), *self.segments)

    def tensor(self, name: str) -> TensorDesc:
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(f"program has no tensor {name!r}; it has {[t.name for t in self.tensors]}")

    def dram_image(self) -> np.ndarray:
        """The full initial DRAM contents (config.dram_bytes)."""
        dram = np.zeros(self.config.dram_bytes, np.uint8)
        for seg in self.all_segments:
            end = seg.dram_addr + len(seg.data)
            if end > dram.size:
                raise ProgramError(
                    f"segment {seg.name!r} ends at {end:#x}, past dram_bytes = {dram.size:#x}"
                )
            dram[seg.dram_addr : end] = np.frombuffer(seg.data, np.uint8)
        return dram

    # ---- file format ------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        payload, sections = b"", []
        for seg in self.all_segments:
            sections.append(
                {"name": seg.name, "dram_addr": seg.dram_addr, "offset": len(payload),
                 "length": len(seg.data), "crc32": zlib.crc32(seg.data)}
            )
            payload += seg.data
        header = {
            "format": FORMAT_VERSION,
            "isa_version": self.isa_version,
            "config": self.config.model_dump(mode="json"),
            "config_hash": self.config.hash,
            "insn_count": len(self.insns),
            "segments": sections,
            "tensors": [asdict(t) for t in self.tensors],
            "meta": self.meta,
        }
        blob = json.dumps(header, indent=1).encode()
        return MAGIC + len(blob).to_bytes(4, "little") + blob + payload

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def from_bytes(cls, raw: bytes, origin: str = "<bytes>") -> Program:
        if raw[:4] != MAGIC:
            raise ProgramError(f"{origin}: not a lowbit program (bad magic {raw[:4]!r})")
        n = int.from_bytes(raw[4:8], "little")
        try:
            header = json.loads(raw[8 : 8 + n])
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ProgramError(f"{origin}: corrupted header: {exc}") from None
        if header.get("format") != FORMAT_VERSION:
            raise ProgramError(f"{origin}: file format {header.get('format')}, expected {FORMAT_VERSION}")
        if header.get("isa_version") != ISA_VERSION:
            raise ProgramError(
                f"{origin}: built for ISA {header.get('isa_version')}, this lowbit runs ISA {ISA_VERSION}"
            )
        config = from_dict(header["config"], f"{origin} [config]")
        payload = raw[8 + n :]
        segments = []
        for s in header["segments"]:
            data = payload[s["offset"] : s["offset"] + s["length"]]
            if len(data) != s["length"] or zlib.crc32(data) != s["crc32"]:
                raise ProgramError(f"{origin}: segment {s['name']!r} is truncated or corrupted (CRC mismatch)")
            segments.append(Segment(s["name"], s["dram_addr"], data))
        text = [s for s in segments if s.name == TEXT]
        if len(text) != 1 or len(text[0].data) != header["insn_count"] * INSN_BYTES:
            raise ProgramError(f"{origin}: text segment missing or of the wrong length")
        tensors = tuple(TensorDesc(**{**t, "shape": tuple(t["shape"])}) for t in header["tensors"])
        return cls(
            config=config,
            insns=tuple(from_bytes(text[0].data)),
            text_addr=text[0].dram_addr,
            segments=tuple(s for s in segments if s.name != TEXT),
            tensors=tensors,
            meta=header.get("meta", {}),
        )

    @classmethod
    def load(cls, path: str | Path) -> Program:
        path = Path(path)
        if not path.is_file():
            raise ProgramError(f"{path}: no such program file")
        return cls.from_bytes(path.read_bytes(), str(path))
