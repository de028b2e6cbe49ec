import numpy as np
import pytest

from compiler.weight_quant import MIXTURES, quantize_groups
from hw.datatypes import DATATYPES, quantize


def _weights(rng, k=256, n=24):
    """Heavy-tailed columns of different spread, like trained layers."""
    return rng.standard_t(4, size=(k, n)) * rng.uniform(0.01, 0.2, n)


def test_mixture_sets():
    assert MIXTURES["mixture3"] == ("fp3_er_pos", "fp3_er_neg", "fp3_ea_pos", "fp3_ea_neg")
    assert MIXTURES["mixture4"] == ("fp4_er_pos", "fp4_er_neg", "fp4_ea_pos", "fp4_ea_neg")
    assert MIXTURES["ant3"] == ("int3", "fp3") and MIXTURES["ant4"] == ("int4", "flint4")
    for name, cands in MIXTURES.items():
        assert {DATATYPES[c].bits for c in cands} == {int(name[-1])}


@pytest.mark.parametrize("mixture", MIXTURES)
@pytest.mark.parametrize("group_size", [32, 128])
def test_mixture_is_never_worse_than_a_single_datatype_on_any_group(rng, mixture, group_size):
    w = _weights(rng)
    mix = quantize_groups(w, group_size, mixture)
    singles = np.stack([quantize_groups(w, group_size, [c]).group_sse for c in MIXTURES[mixture]])
    assert np.all(mix.group_sse <= singles.min(axis=0) * (1 + 1e-12))
    assert np.allclose(mix.group_sse, singles.min(axis=0), rtol=1e-12, atol=0)
    assert np.allclose(mix.candidate_sse, singles, rtol=1e-12, atol=0)
    best_single = min(e["mse"] for e in mix.candidate_errors().values())
    assert mix.mse <= best_single * (1 + 1e-12)


@pytest.mark.parametrize("mixture", MIXTURES)
def test_tags_index_candidates_and_values_lie_in_them(rng, mixture):
    w = _weights(rng, k=128, n=16)
    q = quantize_groups(w, 32, mixture)
    assert q.tags.shape == q.scale.shape == q.zero_point.shape == (4, 16)
    assert q.tags.dtype == np.uint8 and q.tags.max() < len(q.candidates)
    assert q.codes.shape == (128, 16) and q.codes.dtype == np.uint8
    assert np.array_equal(q.dtype_codes, np.array([DATATYPES[q.candidates[t]].code for t in q.tags.ravel()])
                          .reshape(q.tags.shape))
    for g in range(4):
        for n in range(16):
            dt = DATATYPES[q.candidates[q.tags[g, n]]]
            rows = slice(g * 32, (g + 1) * 32)
            assert np.array_equal(q.values[rows, n], dt.decode(q.codes[rows, n]))
            assert np.isin(q.values[rows, n], dt.values).all()
    assert sum(q.tag_share().values()) == pytest.approx(1.0)


@pytest.mark.parametrize("candidates", [*MIXTURES, "int4", "uint4", "fp4", "flint4", "ternary", "binary", "int8"])
def test_reported_error_is_the_dequantized_error(rng, candidates):
    w = _weights(rng)
    q = quantize_groups(w, 64, candidates)
    err = q.dequantize() - w
    assert q.mse == pytest.approx(np.mean(err**2), rel=1e-12)
    assert q.sqnr_db == pytest.approx(10 * np.log10(np.sum(w**2) / np.sum(err**2)), rel=1e-12)


def test_exactly_representable_group_picks_its_datatype_with_zero_error():
    s = 0.05
    w = np.zeros((16, 4))
    w[:8, 0] = np.array([6, 4, 2, 1, 0, -1, -2, -4]) * s  # only fp3_ea_pos holds +6 and -4
    w[:8, 1] = np.array([-6, -4, 2, 1, 0, -1, -2, 4]) * s  # fp3_ea_neg
    w[:8, 2] = np.array([3, 4, 2, 1, 0, -1, -2, -4]) * s  # fp3_er_pos
    w[:8, 3] = np.array([-3, -4, 2, 1, 0, -1, -2, 4]) * s  # fp3_er_neg
    q = quantize_groups(w, 8, "mixture3")
    assert [q.candidates[t] for t in q.tags[0]] == ["fp3_ea_pos", "fp3_ea_neg", "fp3_er_pos", "fp3_er_neg"]
    assert np.allclose(q.group_sse, 0, atol=1e-30) and np.allclose(q.scale[0], s)


@pytest.mark.parametrize("candidates", ["mixture4", "ant3", "uint4", "binary", "ternary"])
def test_all_zero_group(rng, candidates):
    w = _weights(rng, k=64, n=3)
    w[:32, 1] = 0
    q = quantize_groups(w, 32, candidates)
    assert np.all(np.isfinite(q.scale)) and np.all(q.scale > 0)
    assert np.all(np.abs(q.dequantize()[:32, 1]) <= np.finfo(np.float64).tiny)
    assert q.group_sse[0, 1] == pytest.approx(0, abs=1e-300)
    all_zero = quantize_groups(np.zeros((32, 2)), 32, candidates)
    assert all_zero.mse == pytest.approx(0, abs=1e-300) and all_zero.sqnr_db == np.inf


def test_k_must_be_a_multiple_of_the_group_size_unless_padded(rng):
    w = _weights(rng, k=100, n=8)
    with pytest.raises(ValueError, match="K = 100 is not a multiple of group_size = 32; pad=True"):
        quantize_groups(w, 32, "mixture4")
    q = quantize_groups(w, 32, "mixture4", pad=True)
    assert q.codes.shape == (128, 8) and q.tags.shape == (4, 8) and q.shape == (100, 8)
    assert q.dequantize().shape == (100, 8)
    assert q.mse == pytest.approx(np.mean((q.dequantize() - w) ** 2), rel=1e-12)
    # the padding is not counted: the last group is quantized as its 4 real weights alone
    last = quantize_groups(w[96:], 4, "mixture4")
    assert np.allclose(q.group_sse[3], last.group_sse[0], rtol=1e-12, atol=0)
    assert np.allclose(q.scale[3], last.scale[0], rtol=1e-12) and np.array_equal(q.tags[3], last.tags[0])
    assert np.all(q.values[100:] == 0)  # padding rounds to the value 0 in these types


@pytest.mark.parametrize(
    "w, group_size, candidates, match",
    [
        (np.zeros(64), 32, "int4", "K x N matrix"),
        (np.full((32, 2), np.nan), 32, "int4", "finite"),
        (np.zeros((32, 2)), 0, "int4", "group_size must be positive"),
        (np.zeros((32, 2)), 32, "fp5", "unknown datatype 'fp5'"),
        (np.zeros((32, 2)), 32, [], "no candidate"),
        (np.zeros((32, 2)), 32, ["fp4", "fp4"], "listed twice"),
    ],
)
def test_bad_inputs(w, group_size, candidates, match):
    with pytest.raises(ValueError, match=match):
        quantize_groups(w, group_size, candidates)


def test_scale_search_beats_absmax_and_absmax_matches_the_datatype_library(rng):
    w = _weights(rng)
    absmax = quantize_groups(w, 32, "fp4", ratios=(1.0,), refine=0)
    searched = quantize_groups(w, 32, "fp4")
    assert np.all(searched.group_sse <= absmax.group_sse * (1 + 1e-12))
    assert searched.mse < absmax.mse
    # absmax mode is the datatype library's per-group quantization: absmax maps to +-12
    ref = quantize(w, "fp4", scale=np.abs(w).reshape(8, 32, -1).max(axis=1) / 12, group_axis=0, group_size=32)
    assert np.array_equal(absmax.values, ref.values)
    assert np.allclose(absmax.dequantize(), ref.dequantize())


def test_unsigned_candidates_are_asymmetric_with_a_zero_point(rng):
    w = _weights(rng, k=64) + 0.05  # off-centre groups
    q = quantize_groups(w, 32, "uint4", ratios=(1.0,), refine=0)
    ref = quantize(w, "uint4", group_axis=0, group_size=32, symmetric=False)
    assert np.allclose(q.scale, ref.scale) and np.array_equal(q.zero_point, ref.zero_point)
    assert np.array_equal(q.values, ref.values)
    assert q.zero_point.any()


def test_real_weights_mixture_beats_its_singles():
    """On a trained layer (Silero VAD's LSTM input weights) the mixtures gain over their members."""
    pytest.importorskip("silero_vad")
    from bench.datatypes import layers

    w = layers()["decoder.rnn.weight_ih"]
    for mixture in MIXTURES:
        q = quantize_groups(w, 128, mixture)
        best = max(e["sqnr_db"] for e in q.candidate_errors().values())
        assert q.sqnr_db > best
