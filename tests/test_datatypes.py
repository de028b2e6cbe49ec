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
