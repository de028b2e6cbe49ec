"""Weight quantization error of each low-bit datatype and of the per-group mixtures (BitMoD's
ER/EA sets, ANT's INT/FLINT baseline) on real trained weights: every weight matrix of Silero
VAD, whose TorchScript model ships inside the `silero-vad` wheel (MIT licence).

Errors are pooled over all layers: ``mse`` is the mean squared error over every weight,
``sqnr_db`` is ``10 log10(sum w^2 / sum (w - wq)^2)``; per-layer SQNRs are listed too.
"""

from __future__ import annotations

import warnings
from importlib import resources
from importlib.metadata import version

import numpy as np

from compiler.weight_quant import CLIP_RATIOS, MIXTURES, REFINE_STEPS, quantize_groups
from hw.datatypes import DATATYPES

DESCRIPTION = "weight quantization error (MSE, SQNR) of each datatype and the per-group mixtures on Silero VAD"

PACKAGE = "silero-vad"
GROUP_SIZE = 128
GROUP_SIZES = (32, 64, 128)
# every 2- to 4-bit type, binary below them and int8 as the high-precision reference
SINGLE = tuple(n for n, dt in DATATYPES.items() if 2 <= dt.bits <= 4 or n in ("binary", "int8"))


def layers() -> dict[str, np.ndarray]:
    """Silero VAD's trained weight matrices as K x N GEMM operands (K, the reduction, first):
    a conv (out, in, taps) becomes (in * taps) x out, an LSTM or linear (out, in) in x out."""
    import torch

    path = resources.files("silero_vad") / "data" / "silero_vad.jit"
    with warnings.catch_warnings():  # torch.jit.load is deprecated, but this model is TorchScript
        warnings.simplefilter("ignore", DeprecationWarning)
        model = torch.jit.load(str(path), map_location="cpu")
    out = {}
    for name, t in model.state_dict().items():
        if t.ndim < 2 or "stft" in name:  # the STFT basis is a fixed Fourier transform, not trained
            continue
        w = t.detach().double().numpy()
        out[name.removeprefix("_model.").replace("_model_8k.", "8k.")] = w.reshape(w.shape[0], -1).T
    return out


def _pooled(mats: dict[str, np.ndarray], name: str, group_size: int) -> tuple[dict, dict, dict]:
    """Pooled error of one datatype or mixture over all layers, per-layer SQNR, tag shares."""
    sse = signal = count = 0.0
    per_layer, tags = {}, {}
    for layer, w in mats.items():
        g = quantize_groups(w, group_size, name, pad=True)
        sse += float(g.group_sse.sum())
        signal += g.signal
        count += w.size
        per_layer[layer] = round(g.sqnr_db, 2)
        for c, share in g.tag_share().items():
            tags[c] = tags.get(c, 0.0) + share * g.tags.size
    total = sum(tags.values())
    pooled = {"mse": sse / count, "sqnr_db": round(float(10 * np.log10(signal / sse)), 3)}
    return pooled, per_layer, {c: round(v / total, 3) for c, v in tags.items()}


def _summary(results: dict, layer_mean: dict, bits: dict) -> str:
    """A narrow text table for the terminal; the JSON holds the same figures."""
    lines = [f"{'datatype':<11}{'b':>2}{'sqnr':>7}{'layer':>7}{'mse':>10}{'gain':>7}"]
    for name, r in results.items():
        gain = ""
        if name in MIXTURES:
            gain = f"{r['sqnr_db'] - max(results[c]['sqnr_db'] for c in MIXTURES[name]):+.2f}"
        lines.append(f"{name:<11}{bits[name]:>2}{r['sqnr_db']:>7.2f}{layer_mean[name]:>7.2f}{r['mse']:>10.2e}{gain:>7}")
    lines += ["sqnr: dB, all weights pooled", "layer: dB, mean of the per-layer SQNRs",
              "gain: dB, mixture over its best member"]
    return "\n".join(lines)


def run(group_size: int = GROUP_SIZE) -> dict:
    mats = layers()
    bits = {n: DATATYPES[n].bits for n in SINGLE} | {m: DATATYPES[c[0]].bits for m, c in MIXTURES.items()}
    names = sorted(bits, key=bits.get)  # by width; singles before the mixtures of their width
    results, per_layer, tag_share, by_group = {}, {}, {}, {}
    for name in names:
        results[name], per_layer[name], shares = _pooled(mats, name, group_size)
        if name in MIXTURES:
            tag_share[name] = shares
    for g in GROUP_SIZES:
        if g != group_size:
            by_group[g] = {n: _pooled(mats, n, g)[0]["sqnr_db"] for n in names}
    by_group[group_size] = {n: r["sqnr_db"] for n, r in results.items()}
    layer_mean = {n: round(float(np.mean(list(per_layer[n].values()))), 3) for n in names}
    return {
        "summary": _summary(results, layer_mean, bits),
        "layers": [{"name": n, "shape": list(w.shape)} for n, w in mats.items()],
        "results": results,
        "package": {"name": PACKAGE, "version": version(PACKAGE), "model": "silero_vad.jit (16 kHz and 8 kHz)"},
        "group_size": group_size,
        "weights": int(sum(w.size for w in mats.values())),
        "bits": bits,
        "mixtures": {m: list(c) for m, c in MIXTURES.items()},
        "tag_share": tag_share,
        "mean_layer_sqnr_db": layer_mean,
        "per_layer_sqnr_db": per_layer,
        "sqnr_db_by_group_size": {str(g): by_group[g] for g in sorted(by_group)},
        "scale_search": {"clip_ratios": list(CLIP_RATIOS), "refine_steps": REFINE_STEPS,
                         "padding": "K zero-padded to a multiple of the group size; padding not counted"},
    }
