import numpy as np
import pytest
import torch

from hw.datatypes import DATATYPES, Datatype, choose_params, pack, quantize, unpack


@pytest.mark.parametrize("bits", range(1, 9))
def test_integer_code_tables(bits):
    s, u = DATATYPES[f"int{bits}"], DATATYPES[f"uint{bits}"]
    codes = np.arange(1 << bits)
    twos = np.where(codes >= 1 << (bits - 1), codes - (1 << bits), codes)
    assert np.array_equal(s.decode(codes), twos)
    assert np.array_equal(u.decode(codes), codes)
    assert (s.qmin, s.qmax) == (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    assert np.array_equal(s.encode(twos), codes)


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8])
def test_pack_matches_integer_bitstream(rng, bits):
    codes = rng.integers(0, 1 << bits, 8 * 16)
    stream = sum(int(c) << (bits * i) for i, c in enumerate(codes))
    expected = np.frombuffer(stream.to_bytes(codes.size * bits // 8, "little"), np.uint8)
    packed = pack(codes, bits)
    assert np.array_equal(packed, expected)
    assert np.array_equal(unpack(packed, bits), codes)


def test_pack_rejects_partial_bytes_and_wide_codes():
    with pytest.raises(ValueError, match="whole bytes"):
        pack(np.zeros(3), 3)
    with pytest.raises(ValueError, match="does not fit"):
        pack(np.array([16, 0]), 4)


def test_encode_rejects_unrepresentable():
    with pytest.raises(ValueError, match="int4 cannot represent"):
        DATATYPES["int4"].encode(np.array([8]))


def _ref_symmetric(x, qmin, qmax):
    s = np.abs(x).max() / ((qmax - qmin) / 2)
    return np.clip(np.round(x / s), qmin, qmax), s


@pytest.mark.parametrize("name", ["int8", "int4", "int3", "int2"])
def test_per_tensor_symmetric(rng, name):
    dt = DATATYPES[name]
    x = rng.normal(size=(17, 40))
    q = quantize(x, dt)
    ref, s = _ref_symmetric(x, dt.qmin, dt.qmax)
    assert np.allclose(q.scale, s)
    assert np.array_equal(q.values, ref)
    assert np.allclose(q.dequantize(), ref * s)


def test_per_channel_and_per_group(rng):
    dt = DATATYPES["int4"]
    w = rng.normal(size=(6, 64)) * rng.uniform(0.1, 3, (6, 1))
    qc = quantize(w, dt, axis=0)
    qg = quantize(w, dt, group_axis=1, group_size=16)
    for r in range(6):
        ref, s = _ref_symmetric(w[r], dt.qmin, dt.qmax)
        assert np.array_equal(qc.values[r], ref) and np.isclose(qc.scale[r], s)
        for g in range(4):
            blk = w[r, g * 16 : (g + 1) * 16]
            ref, s = _ref_symmetric(blk, dt.qmin, dt.qmax)
            assert np.array_equal(qg.values[r, g * 16 : (g + 1) * 16], ref)
            assert np.isclose(qg.scale[r, g], s)
    err_c = np.abs(qc.dequantize() - w).mean()
    err_g = np.abs(qg.dequantize() - w).mean()
    assert err_g < err_c  # finer scales never lose on this data


def test_group_size_must_divide(rng):
    with pytest.raises(ValueError, match="not a multiple of group_size"):
        quantize(rng.normal(size=(4, 30)), "int4", group_axis=1, group_size=16)


def _torch_fake_quant(x, scale, zp, qmin, qmax, axis=None):
    t = torch.tensor(x, dtype=torch.float32)
    if axis is None:
        return torch.fake_quantize_per_tensor_affine(t, float(scale), int(zp), qmin, qmax).numpy()
    return torch.fake_quantize_per_channel_affine(
        t, torch.tensor(scale, dtype=torch.float32), torch.tensor(zp, dtype=torch.int32), axis, qmin, qmax
    ).numpy()


def test_asymmetric_uint8_matches_torch(rng):
    x = (rng.normal(size=1000) * 3 + 1).astype(np.float32).astype(np.float64)
    q = quantize(x, "uint8", symmetric=False)
    q = quantize(x, "uint8", scale=np.float32(q.scale), zero_point=q.zero_point)
    ref = _torch_fake_quant(x, q.scale, q.zero_point, 0, 255)
    assert np.allclose(q.dequantize(), ref, rtol=0, atol=1e-5 * float(q.scale))


def test_per_channel_int8_matches_torch(rng):
    w = rng.normal(size=(8, 50)).astype(np.float32).astype(np.float64)
    q = quantize(w, "int8", axis=0)
    # a scale off the data-chosen one keeps values away from the +-127.5 tie boundary
    q = quantize(w, "int8", scale=(q.scale * 1.01).astype(np.float32), axis=0)
    ref = _torch_fake_quant(w, q.scale, np.zeros(8, np.int64), -128, 127, axis=0)
    assert np.allclose(q.dequantize(), ref, rtol=0, atol=1e-5 * q.scale.max())


def test_value_set_types_round_to_nearest():
    """A listed value set (the shape FP3/FP4 take) rounds to the nearest value, ties to the
    smaller magnitude; checked against brute force."""
    fp3 = Datatype("fp3_test", 3, (0, 1, 2, 4, 0, -1, -2, -4))
    assert not fp3.is_integer_range
    x = np.linspace(-6, 6, 481)
    vals = np.array(sorted(set(fp3.values)))
    dist = np.abs(x[:, None] - vals[None, :])
    best = dist.min(axis=1, keepdims=True)
    cands = np.where(np.isclose(dist, best), np.abs(vals)[None, :], np.inf)
    ref = vals[np.argmin(cands, axis=1)]
    ref = np.where(np.isclose(dist, best).sum(1) > 1, np.sign(x) * np.abs(ref), ref)
    assert np.array_equal(fp3.round(x), ref)
    q = quantize(x, fp3)
    assert np.isclose(q.scale, 6 / 4)


def test_choose_params_asymmetric_contains_zero():
    scale, zp = choose_params(np.array([2.0, 5.0]), DATATYPES["uint8"], symmetric=False)
    assert zp == 0 and np.isclose(scale, 5 / 255)


# ---- the value-set types and the unified (sign, mant, exp) form ------------------------------

# Value sets as published: BitMoD's quantizer (abdelfattah-lab/BitMoD-HPCA-25,
# bitmod_quant/quant_utils/quant_weight.py) and ANT's flint_value() (clevercool/ANT-Quantization,
# ant_quantization/antquant/quant_modules.py), which gives FLINT4 = {0, +-1/4, ..., +-4} times 4.
FP3_SET = [-4, -2, -1, 0, 1, 2, 4]
FP4_SET = [-12, -8, -6, -4, -3, -2, -1, 0, 1, 2, 3, 4, 6, 8, 12]
PUBLISHED = {
    "fp3": FP3_SET,
    "fp3_er_pos": [-4, -2, -1, 0, 1, 2, 3, 4],
    "fp3_er_neg": [-4, -3, -2, -1, 0, 1, 2, 4],
    "fp3_ea_pos": [-4, -2, -1, 0, 1, 2, 4, 6],
    "fp3_ea_neg": [-6, -4, -2, -1, 0, 1, 2, 4],
    "fp4": FP4_SET,
    "fp4_er_pos": [-12, -8, -6, -4, -3, -2, -1, 0, 1, 2, 3, 4, 6, 8, 10, 12],
    "fp4_er_neg": [-12, -10, -8, -6, -4, -3, -2, -1, 0, 1, 2, 3, 4, 6, 8, 12],
    "fp4_ea_pos": [-12, -8, -6, -4, -3, -2, -1, 0, 1, 2, 3, 4, 6, 8, 12, 16],
    "fp4_ea_neg": [-16, -12, -8, -6, -4, -3, -2, -1, 0, 1, 2, 3, 4, 6, 8, 12],
    "flint4": [-16, -8, -6, -4, -3, -2, -1, 0, 1, 2, 3, 4, 6, 8, 16],
    "ternary": [-1, 0, 1],
    "binary": [-1, 1],
}
# (bits, mant_bits, exp_bits) as docs/datatypes.md tabulates them
WIDTHS = {
    "int2": (2, 2, 0), "int3": (3, 3, 0), "int4": (4, 4, 0), "int8": (8, 8, 0),
    "uint2": (2, 2, 0), "uint4": (4, 4, 0), "uint8": (8, 8, 0),
    "fp3": (3, 1, 2), "fp3_er_pos": (3, 2, 2), "fp3_er_neg": (3, 2, 2), "fp3_ea_pos": (3, 2, 2),
    "fp3_ea_neg": (3, 2, 2), "fp4": (4, 2, 2), "fp4_er_pos": (4, 3, 2), "fp4_er_neg": (4, 3, 2),
    "fp4_ea_pos": (4, 2, 3), "fp4_ea_neg": (4, 2, 3), "flint4": (4, 2, 3),
    "ternary": (2, 1, 0), "binary": (1, 1, 0),
}


@pytest.mark.parametrize("name", PUBLISHED)
def test_value_sets_match_the_published_ones(name):
    dt = DATATYPES[name]
    assert sorted(set(dt.values)) == PUBLISHED[name]
    assert len(dt.values) == 1 << dt.bits
    assert dt.pe_kinds == ("serial",)


def test_special_value_takes_the_code_of_minus_zero():
    assert DATATYPES["fp4"].decode(8) == 0 and DATATYPES["fp3"].decode(4) == 0
    assert [DATATYPES[f"fp3_{v}"].decode(4) for v in ("er_pos", "er_neg", "ea_pos", "ea_neg")] == [3, -3, 6, -6]
    assert [DATATYPES[f"fp4_{v}"].decode(8) for v in ("er_pos", "er_neg", "ea_pos", "ea_neg")] == [10, -10, 16, -16]
    # E2M1 in code order, as the OCP MX FP4 table (0, 0.5, 1, 1.5, 2, 3, 4, 6) times 2
    assert DATATYPES["fp4"].values[:8] == (0, 1, 2, 3, 4, 6, 8, 12)


def test_table_codes_stay_and_fit_the_isa_field():
    names = list(DATATYPES)
    assert names[:16] == [f"int{b}" for b in range(1, 9)] + [f"uint{b}" for b in range(1, 9)]
    assert len(names) <= 32  # WeightType is a 5-bit field
    assert {n for n, dt in DATATYPES.items() if "parallel" in dt.pe_kinds} == {"int2", "int4", "int8"}


@pytest.mark.parametrize("name", list(DATATYPES))
def test_encode_decode_pack_round_trip(rng, name):
    dt = DATATYPES[name]
    codes = np.arange(1 << dt.bits)
    values = dt.decode(codes)
    canon = dt.encode(values)
    assert np.array_equal(dt.decode(canon), values)
    assert np.all(canon <= codes)  # a value two codes stand for (0, -0) takes the lower code
    assert np.array_equal(np.sort(dt.encode(dt._sorted)), np.unique(canon))  # one code per value
    stream = rng.choice(canon, 8 * 16)
    assert np.array_equal(unpack(pack(stream, dt.bits), dt.bits), stream)


@pytest.mark.parametrize("name", list(DATATYPES))
def test_terms_reconstruct_values_with_smallest_mant(name):
    dt = DATATYPES[name]
    codes = np.arange(1 << dt.bits)
    sign, mant, exp = dt.terms(codes)
    assert np.array_equal((1 - 2 * sign) * mant * (1 << exp), dt.decode(codes))
    assert set(np.unique(sign)) <= {0, 1} and mant.min() >= 0 and exp.min() >= 0
    for v, m, e in zip(dt.decode(codes).tolist(), mant.tolist(), exp.tolist()):
        if dt.is_integer_range:
            assert (m, e) == (abs(v), 0)
        else:
            smallest = min((abs(v) >> k, k) for k in range(8) if abs(v) % (1 << k) == 0)
            assert (m, e) == (smallest if v else (0, 0))
    assert dt.mant_bits == int(mant.max()).bit_length()
    assert dt.exp_bits == int(exp.max()).bit_length()
    assert np.array_equal(dt.terms(codes.reshape(2, -1))[1], mant.reshape(2, -1))  # any shape


@pytest.mark.parametrize("name", WIDTHS)
def test_mant_and_exp_bits(name):
    dt = DATATYPES[name]
    assert (dt.bits, dt.mant_bits, dt.exp_bits) == WIDTHS[name]


@pytest.mark.parametrize("name", [n for n in DATATYPES if not DATATYPES[n].is_integer_range])
def test_table_value_sets_round_to_nearest(name):
    dt = DATATYPES[name]
    vals = dt._sorted
    x = np.arange((vals[0] - 2) * 64, (vals[-1] + 2) * 64 + 1) / 64  # exact, ties included
    dist = np.abs(x[:, None] - vals[None, :])
    # nearest value; of two equally near, the one of smaller magnitude (binary at 0: the first)
    nearest = np.where(dist == dist.min(axis=1, keepdims=True), np.abs(vals)[None, :], np.inf)
    assert np.array_equal(dt.round(x), vals[np.argmin(nearest, axis=1)])


@pytest.mark.parametrize("name", [n for n in PUBLISHED])
def test_config_keeps_value_set_types_off_the_parallel_pe(default, name):
    from hw.config import ConfigError, from_dict

    with pytest.raises(ConfigError, match=f"{name} cannot run on pe = 'parallel'"):
        from_dict({**default.model_dump(), "weight_dtypes": [name]})
    cfg = from_dict({**default.model_dump(), "pe": "serial", "weight_dtypes": ["int4", name]})
    assert name in cfg.weight_dtypes
