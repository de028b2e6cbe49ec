import pytest

from hw.config import ConfigError, from_dict, load_config, preset_names


def test_presets_load_and_are_distinct():
    names = preset_names()
    assert {"tiny", "default", "large"} <= set(names)
    hashes = {load_config(n).hash for n in names}
    assert len(hashes) == len(names)


def test_hash_follows_hardware_fields_only(tiny):
    renamed = from_dict({**tiny.model_dump(), "name": "other", "description": "x"})
    assert renamed.hash == tiny.hash
    wider = from_dict({**tiny.model_dump(), "axi_data_bits": 64})
    assert wider.hash != tiny.hash
    assert load_config("tiny").hash == tiny.hash  # stable across loads


def test_config_is_frozen(tiny):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="frozen"):
        tiny.rows = 8


def test_derived_buffer_geometry(default):
    assert default.buffer_row_bytes("input_buf_bytes") == default.rows
    assert default.buffer_depth("acc_buf_bytes") == default.acc_buf_bytes // (default.cols * 4)
    assert default.weight_tile_rows("int4") == default.rows // 2


@pytest.mark.parametrize(
    "change, needles",
    [
        ({"rows": 0}, ["rows", "1..64", "got 0"]),
        ({"cols": 65}, ["cols", "1..64"]),
        ({"pe": "gpu"}, ["pe", "parallel", "serial"]),
        ({"weight_dtypes": ["int3"]}, ["weight_dtypes", "int3", "parallel"]),
        ({"weight_dtypes": ["fp9"]}, ["weight_dtypes", "fp9", "known"]),
        ({"acc_bits": 20}, ["acc_bits", "16, 24, 32"]),
        ({"axi_data_bits": 48}, ["axi_data_bits", "32, 64, 128, 256"]),
        ({"input_buf_bytes": 64}, ["input_buf_bytes", "too small for one tile", "512"]),
        ({"weight_buf_bytes": 100}, ["weight_buf_bytes"]),
        ({"group_size": 24}, ["group_size", "multiple of rows"]),
        ({"clock_mhz": 0}, ["clock_mhz", "1000"]),
        ({"postproc_lanes": 3}, ["postproc_lanes = 3", "power of two"]),
        ({"postproc_lanes": 128}, ["postproc_lanes", "0..64"]),
        ({"frobnicate": 1}, ["frobnicate", "unknown key"]),
    ],
)
def test_invalid_values_name_the_field(default, change, needles):
    with pytest.raises(ConfigError) as err:
        from_dict({**default.model_dump(), **change}, "my.toml")
    msg = str(err.value)
    assert msg.startswith("my.toml: ")
    for needle in needles:
        assert needle in msg, msg


def test_int1_needs_rows_multiple_of_8():
    with pytest.raises(ConfigError, match="rows = 4: a int1 weight tile row"):
        from_dict(dict(rows=4, cols=4, pe="serial", weight_dtypes=["int1"], group_size=32,
                       input_buf_bytes=1024, weight_buf_bytes=1024, acc_buf_bytes=1024,
                       out_buf_bytes=1024, param_buf_bytes=1024))


def test_load_by_path_and_errors(tmp_path):
    good = tmp_path / "mine.toml"
    good.write_text('rows = 8\ncols = 8\n')
    cfg = load_config(good)
    assert (cfg.name, cfg.rows, cfg.cols) == ("mine", 8, 8)
    bad = tmp_path / "bad.toml"
    bad.write_text("rows = [")
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="no configuration named 'nope'"):
        load_config("nope")
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_config(tmp_path / "missing.toml")


def test_field_defaults_are_the_default_preset(default):
    from hw.config import AccelConfig

    assert AccelConfig().hardware_dict() == default.hardware_dict()
