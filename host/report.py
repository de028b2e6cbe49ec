"""Reports a person can read: Markdown with matplotlib plots (PNG next to it).

- per-layer cycles, utilization and efficiency (roofline / cycles) of a model run (RTL counters,
  or the compiler's estimates);
- a roofline of the configuration (peak MAC rate, DMA bandwidth) with every layer placed on it, and
  the lower compute roof of the bit-serial PE for each number of bit planes its layers take;
- quantization error (SQNR) of each weight datatype on a model's real weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hw.config import AccelConfig


@dataclass(frozen=True)
class LayerStat:
    """One accelerator layer of a run: its work and what it took."""

    model: str
    layer: str
    macs: int
    dma_bytes: int
    cycles: int
    measured: bool  # RTL counters (True) or the compiler's estimate
    bound_cycles: float = 0.0  # the layer's roofline (compiler/roofline.py)
    planes: int = 1  # cycles an activation row takes through the array

    def utilization(self, cfg: AccelConfig) -> float:
        return self.macs / (cfg.rows * cfg.cols * self.cycles) if self.cycles else 0.0

    @property
    def efficiency(self) -> float:
        return self.bound_cycles / self.cycles if self.cycles else 0.0

    @classmethod
    def of(cls, model: str, run) -> list[LayerStat]:
        """The accelerator layers of a run (host.runtime.Execution)."""
        return [cls(model, lr.layer, lr.macs, lr.dma_bytes, lr.cycles or lr.estimated_cycles, lr.cycles is not None,
                    lr.bound_cycles, lr.planes) for lr in run.layers]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_layers(stats: list[LayerStat], cfg: AccelConfig, path: Path, title: str) -> Path:
    """Bars of cycles per layer with the array utilization on a second axis."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(stats) + 2), 4))
    x = np.arange(len(stats))
    ax.bar(x, [s.cycles for s in stats], color=["tab:blue" if s.measured else "tab:gray" for s in stats])
    ax.set_ylabel("cycles")
    ax.set_xticks(x, [s.layer for s in stats], rotation=60, ha="right", fontsize=7)
    ax2 = ax.twinx()
    ax2.plot(x, [s.utilization(cfg) for s in stats], "o-", color="tab:red", label="utilization")
    ax2.plot(x, [s.efficiency for s in stats], "s--", color="tab:green", label="efficiency (roofline / cycles)")
    ax2.set_ylabel("utilization, efficiency")
    ax2.legend(fontsize=7, loc="upper right")
    ax2.set_ylim(0, 1.05)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def peak_gops(cfg: AccelConfig) -> float:
    """Two operations per MAC, every cell every cycle."""
    return 2 * cfg.rows * cfg.cols * cfg.clock_mhz / 1e3


def bandwidth_gbs(cfg: AccelConfig) -> float:
    """One AXI data beat per cycle."""
    return cfg.axi_data_bits / 8 * cfg.clock_mhz / 1e3


def plot_roofline(stats: list[LayerStat], cfg: AccelConfig, path: Path) -> Path:
    """Achieved GOPS against operational intensity (operations per DMA byte), under the roofs."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    peak, bw = peak_gops(cfg), bandwidth_gbs(cfg)
    xs = np.logspace(-1, 4, 200)
    ax.loglog(xs, np.minimum(peak, bw * xs), "k-", label=f"roof: {peak:.1f} GOPS, {bw:.2f} GB/s")
    for p in sorted({s.planes for s in stats if s.planes > 1}):  # the bit-serial PE: peak over its bit planes
        ax.loglog(xs, np.minimum(peak / p, bw * xs), ":", color="gray",
                  label=f"roof at {p} bit planes: {peak / p:.1f} GOPS")
    for model in sorted({s.model for s in stats}):
        pts = [s for s in stats if s.model == model and s.dma_bytes and s.cycles]
        oi = [2 * s.macs / s.dma_bytes for s in pts]
        gops = [2 * s.macs / (s.cycles / (cfg.clock_mhz * 1e6)) / 1e9 for s in pts]
        ax.loglog(oi, gops, "o", label=model, alpha=0.8)
    ax.set_xlabel("operational intensity (operations / DMA byte)")
    ax.set_ylabel("achieved GOPS")
    ax.set_title(f"roofline of {cfg.name} ({cfg.rows}x{cfg.cols} at {cfg.clock_mhz:g} MHz)")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_quant_error(errors: dict[str, dict[str, float]], path: Path) -> Path:
    """SQNR (dB) per weight datatype, one group of bars per model."""
    plt = _plt()
    models = list(errors)
    names = list(dict.fromkeys(n for m in models for n in errors[m]))
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(names) + 2), 4))
    width = 0.8 / max(1, len(models))
    x = np.arange(len(names))
    for i, m in enumerate(models):
        ax.bar(x + i * width, [errors[m].get(n, np.nan) for n in names], width, label=m)
    ax.set_xticks(x + width * (len(models) - 1) / 2, names, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("weight SQNR (dB)")
    ax.set_title("quantization error per datatype (higher is better)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def weight_sqnr(weights: list[np.ndarray], datatypes: list[str], group_size: int | None) -> dict[str, float]:
    """SQNR of quantizing these (N, K...) weights in each datatype or mixture, all layers together."""
    from compiler.weight_quant import quantize_groups

    out = {}
    for name in datatypes:
        signal = noise = 0.0
        for w in weights:
            mat = np.asarray(w, np.float64).reshape(w.shape[0], -1).T  # K x N
            size = mat.shape[0] if group_size is None else min(group_size, mat.shape[0])
            q = quantize_groups(mat, size, name, pad=True)
            signal += q.signal
            noise += float(q.group_sse.sum())
        out[name] = float(10 * np.log10(signal / noise)) if noise else float("inf")
    return out


def layers_table(stats: list[LayerStat], cfg: AccelConfig) -> list[str]:
    lines = ["| model | layer | MACs | DMA bytes | cycles | roofline cycles | efficiency | utilization | source |",
             "|---|---|---|---|---|---|---|---|---|"]
    for s in stats:
        lines.append(f"| {s.model} | {s.layer} | {s.macs} | {s.dma_bytes} | {s.cycles} | {s.bound_cycles:g} | "
                     f"{s.efficiency:.3f} | {s.utilization(cfg):.3f} | {'RTL' if s.measured else 'estimate'} |")
    return lines


def write_report(out_dir: str | Path, cfg: AccelConfig, stats: list[LayerStat], title: str,
                 summary_lines: list[str] = (), quant_errors: dict[str, dict[str, float]] | None = None,
                 extra_configs: dict[str, AccelConfig] | None = None) -> Path:
    """report.md and its PNGs in `out_dir`; layers of models compiled for other configurations are
    plotted against their own config (``extra_configs``: model name -> config)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = [f"# {title}", ""]
    md += list(summary_lines) + ([""] if summary_lines else [])
    configs = {s.model: (extra_configs or {}).get(s.model, cfg) for s in stats}
    for c in {c.name: c for c in configs.values()}.values():
        mine = [s for s in stats if configs[s.model].name == c.name]
        slug = c.name.replace("/", "_")
        plot_layers(mine, c, out / f"layers_{slug}.png", f"per-layer cycles and utilization on {c.name}")
        plot_roofline(mine, c, out / f"roofline_{slug}.png")
        md += [f"## Layers on `{c.name}`", "", f"![layers](layers_{slug}.png)", "",
               f"![roofline](roofline_{slug}.png)", "",
               f"Peak {peak_gops(c):.1f} GOPS ({c.rows}x{c.cols} MACs at {c.clock_mhz:g} MHz), DMA "
               f"{bandwidth_gbs(c):.2f} GB/s ({c.axi_data_bits}-bit AXI). Gray bars are estimates.", ""]
        md += layers_table(mine, c) + [""]
    if quant_errors:
        plot_quant_error(quant_errors, out / "quant_error.png")
        md += ["## Quantization error per datatype", "", "![quantization error](quant_error.png)", "",
               "| model | " + " | ".join(next(iter(quant_errors.values()))) + " |",
               "|---|" + "---|" * len(next(iter(quant_errors.values())))]
        for m, errs in quant_errors.items():
            md.append(f"| {m} | " + " | ".join(f"{v:.2f}" for v in errs.values()) + " |")
        md.append("")
    path = out / "report.md"
    path.write_text("\n".join(md) + "\n")
    return path
