"""Request bodies: the raw columns format (bit-exact), JSON, Arrow, pandas, and the
fallbacks without numpy or pyarrow."""
import json
import math
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from plotwire import _encoding
from plotwire._encoding import ARROW_STREAM, JSON, RAW_COLUMNS, dumps, encode_columns, encode_raw, nulls_to_nan

SPECIALS = [math.nan, math.inf, -math.inf, -0.0, 0.0, 5e-324, 1.7976931348623157e308, 0.1, -2.5]
STRUCT_CODES = {"float64": "d", "float32": "f", "int64": "q", "int32": "i", "int16": "h", "int8": "b",
                "uint32": "I", "uint16": "H", "uint8": "B", "bool": "?"}


def decode_raw(body: bytes) -> tuple[dict, dict[str, bytes]]:
    """An independent reader of the documented format: (header, column name -> its bytes)."""
    assert body[:4] == b"PWC1"
    (hlen,) = struct.unpack_from("<I", body, 4)
    header = json.loads(body[8:8 + hlen])
    offset = 8 + hlen
    out = {}
    for col in header["columns"]:
        offset += -offset % 8
        size = struct.calcsize("<" + STRUCT_CODES[col["dtype"]]) * col["length"]
        out[col["name"]] = body[offset:offset + size]
        offset += size
    assert offset == len(body), "trailing bytes after the last column"
    return header, out


def bits(values, code):
    return struct.pack(f"<{len(values)}{code}", *values)


# ---------------------------------------------------------------------------
# raw format
# ---------------------------------------------------------------------------

def test_raw_float64_is_bit_exact_with_nan_inf_and_negative_zero():
    x = np.array(SPECIALS, dtype=np.float64)
    ctype, body = encode_columns({"x": x})
    assert ctype == RAW_COLUMNS
    header, cols = decode_raw(body)
    assert header == {"columns": [{"name": "x", "dtype": "float64", "length": len(SPECIALS)}]}
    assert cols["x"] == bits(SPECIALS, "d")
    back = np.frombuffer(cols["x"], "<f8")
    assert math.copysign(1, back[3]) == -1.0 and np.isnan(back[0])


def test_raw_layout_exact_bytes():
    body = encode_raw({"a": np.array([1, 2, 3], dtype=np.int16), "b": np.array([1.5], dtype=np.float64),
                       "c": np.array([True, False, True])})
    head = json.dumps({"columns": [{"name": "a", "dtype": "int16", "length": 3},
                                   {"name": "b", "dtype": "float64", "length": 1},
                                   {"name": "c", "dtype": "bool", "length": 3}]}, separators=(",", ":")).encode()
    head += b" " * (-(8 + len(head)) % 8)
    expected = (b"PWC1" + struct.pack("<I", len(head)) + head
                + bits([1, 2, 3], "h") + b"\0\0"          # 6 bytes, padded to 8
                + bits([1.5], "d")
                + b"\x01\x00\x01")
    assert body == expected
    assert (8 + len(head)) % 8 == 0


@pytest.mark.parametrize("dtype", ["float64", "float32", "int64", "int32", "int16", "int8",
                                   "uint32", "uint16", "uint8", "bool"])
def test_raw_every_dtype_round_trips(dtype):
    rng = np.random.default_rng(7)
    if dtype == "bool":
        arr = rng.integers(0, 2, 37).astype(bool)
    elif dtype.startswith("float"):
        arr = np.concatenate([rng.standard_normal(30), SPECIALS[:5]]).astype(dtype)
    else:
        info = np.iinfo(dtype)
        arr = np.concatenate([rng.integers(info.min, info.max, 35, dtype=dtype, endpoint=True),
                              np.array([info.min, info.max], dtype=dtype)])
    ctype, body = encode_columns({"v": arr, "w": np.arange(5, dtype=np.int8)})
    assert ctype == RAW_COLUMNS
    header, cols = decode_raw(body)
    assert header["columns"][0] == {"name": "v", "dtype": dtype, "length": len(arr)}
    assert cols["v"] == arr.astype(arr.dtype.newbyteorder("<")).tobytes()
    starts = [body.index(cols[n]) for n in ("v",)]
    assert all(s % 8 == 0 for s in starts)


def test_raw_big_endian_and_strided_input_is_converted():
    big = np.array([1.0, -0.0, math.inf], dtype=">f8")
    strided = np.arange(10, dtype=np.int32)[::3]
    _, cols = decode_raw(encode_columns({"big": big, "strided": strided})[1])
    assert cols["big"] == bits([1.0, -0.0, math.inf], "d")
    assert cols["strided"] == bits([0, 3, 6, 9], "i")


def test_raw_from_python_lists_when_numpy_is_present():
    ctype, body = encode_columns({"x": [1, 2, 3], "y": [0.5, math.nan, -math.inf], "b": [True, False, True]})
    assert ctype == RAW_COLUMNS
    header, cols = decode_raw(body)
    assert [c["dtype"] for c in header["columns"]] == ["int64", "float64", "bool"]
    assert cols["y"] == bits([0.5, math.nan, -math.inf], "d")


def test_datetime64_goes_as_float_milliseconds():
    t = np.array(["1970-01-01T00:00:01", "NaT", "2024-01-02T03:04:05.006"], dtype="datetime64[ms]")
    header, cols = decode_raw(encode_columns({"t": t})[1])
    assert header["columns"][0]["dtype"] == "float64"
    got = struct.unpack("<3d", cols["t"])
    assert got[0] == 1000.0 and math.isnan(got[1]) and got[2] == 1704164645006.0


def test_raw_header_names_are_utf8():
    header, _ = decode_raw(encode_columns({"température": np.zeros(2)})[1])
    assert header["columns"][0]["name"] == "température"


@pytest.mark.parametrize("columns", [
    {"s": ["a", "b"]},
    {"x": np.zeros(2), "s": ["a", "b"]},
    {"x": [1.0, None]},
    {"x": []},
    {"img": np.zeros((2, 2))},
    {"u": np.array([1, 2], dtype=np.uint64)},
    {"big": [2 ** 70]},
])
def test_not_raw_encodable_bodies_fall_back_to_json(columns):
    ctype, body = encode_columns(columns)
    assert ctype == JSON
    json.loads(body)


# ---------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------

def test_json_specials_are_spelled_as_the_contract_says():
    body = dumps({"x": SPECIALS, "n": None, "s": "NaN \"q\"", "b": [True, False]})
    assert body == (b'{"x":[null,1e999,-1e999,-0.0,0.0,5e-324,1.7976931348623157e+308,0.1,-2.5],'
                    b'"n":null,"s":"NaN \\"q\\"","b":[true,false]}')
    back = json.loads(body)
    assert back["x"][1] == math.inf and back["x"][2] == -math.inf
    assert math.copysign(1, back["x"][3]) == -1.0
    assert bits([v for v in back["x"][1:]], "d") == bits(SPECIALS[1:], "d")


def test_json_numpy_values_and_nested_structures():
    body = dumps({"a": np.array([1.5, np.nan]), "i": np.int32(4), "f": np.float32(0.5), "t": (1, (2, 3)),
                  "m": np.array([[1, 2], [3, 4]]), "ok": np.bool_(True)})
    assert json.loads(body) == {"a": [1.5, None], "i": 4, "f": 0.5, "t": [1, [2, 3]], "m": [[1, 2], [3, 4]],
                                "ok": True}


def test_json_fast_path_for_finite_values_is_the_same_text():
    obj = {"x": [1, 2.5, -0.0], "é": "ü"}
    assert dumps(obj) == json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def test_json_rejects_what_is_not_json():
    with pytest.raises(TypeError):
        dumps({"x": object()})
    with pytest.raises(TypeError):
        dumps({1: math.nan})


def test_json_fallback_without_numpy(monkeypatch):
    monkeypatch.setitem(_encoding._modules, "numpy", None)
    ctype, body = encode_columns({"x": [1, 2.5, math.nan, math.inf, -math.inf, -0.0], "label": ("a", "b", "c",
                                                                                              "d", "e", "f")})
    assert ctype == JSON
    assert body == b'{"x":[1,2.5,null,1e999,-1e999,-0.0],"label":["a","b","c","d","e","f"]}'


def test_the_package_works_without_numpy_installed(tmp_path):
    """In a fresh interpreter where numpy cannot be imported at all."""
    code = textwrap.dedent("""
        import sys, math
        sys.modules["numpy"] = None
        import plotwire
        from plotwire._encoding import encode_columns
        ctype, body = encode_columns({"x": [1.0, math.nan, -0.0]})
        assert ctype == "application/json", ctype
        print(body.decode())
        assert "numpy" not in [m for m, v in sys.modules.items() if v is not None]
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == '{"x":[1.0,null,-0.0]}'


def test_importing_plotwire_imports_no_optional_dependency():
    code = "import sys, plotwire; print(sorted(m for m in ('numpy', 'pandas', 'pyarrow', 'bokeh') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("bad", [[1, 2], "xy", {"x": 3}, {"x": "abc"}, {1: [1]}, {}, {"c": np.array([1 + 2j])}])
def test_bad_column_arguments(bad):
    with pytest.raises((TypeError, ValueError)):
        encode_columns(bad)


# ---------------------------------------------------------------------------
# Arrow and pandas
# ---------------------------------------------------------------------------

def read_stream(body: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.BufferReader(body)).read_all()


def test_pyarrow_table_goes_as_an_arrow_stream():
    table = pa.table({"x": pa.array(SPECIALS, pa.float64()), "s": ["a"] * len(SPECIALS)})
    ctype, body = encode_columns(table)
    assert ctype == ARROW_STREAM
    back = read_stream(body)
    assert back.schema == table.schema
    assert back.column("x").to_numpy().tobytes() == bits(SPECIALS, "d")


def test_pyarrow_record_batch():
    batch = pa.record_batch({"i": pa.array([1, 2], pa.int32())})
    ctype, body = encode_columns(batch)
    assert ctype == ARROW_STREAM and read_stream(body).column("i").to_pylist() == [1, 2]


def test_pandas_goes_as_arrow_when_pyarrow_is_present():
    df = pd.DataFrame({"x": SPECIALS, "n": range(len(SPECIALS))}, index=range(10, 10 + len(SPECIALS)))
    ctype, body = encode_columns(df)
    assert ctype == ARROW_STREAM
    back = read_stream(body)
    assert back.column_names == ["x", "n"]
    assert back.column("x").to_numpy().tobytes() == bits(SPECIALS, "d")


def test_pandas_goes_as_raw_numpy_columns_without_pyarrow(monkeypatch):
    monkeypatch.setitem(_encoding._modules, "pyarrow", None)
    df = pd.DataFrame({"x": SPECIALS, "n": np.arange(len(SPECIALS), dtype=np.int32)})
    ctype, body = encode_columns(df)
    assert ctype == RAW_COLUMNS
    header, cols = decode_raw(body)
    assert [c["dtype"] for c in header["columns"]] == ["float64", "int32"]
    assert cols["x"] == bits(SPECIALS, "d")


def test_pandas_strings_without_pyarrow_go_as_json(monkeypatch):
    monkeypatch.setitem(_encoding._modules, "pyarrow", None)
    ctype, body = encode_columns(pd.DataFrame({"s": ["a", "b"], "x": [1.0, math.nan]}))
    assert ctype == JSON
    assert json.loads(body) == {"s": ["a", "b"], "x": [1.0, None]}


# ---------------------------------------------------------------------------
# answers
# ---------------------------------------------------------------------------

def test_nulls_become_nan_only_in_numeric_columns():
    data = json.loads('{"x":[1,null,1e999,-1e999],"s":["a",null],"e":[null],"b":[true,null]}')
    out = nulls_to_nan(data)
    assert out["x"][0] == 1 and math.isnan(out["x"][1]) and out["x"][2:] == [math.inf, -math.inf]
    assert out["s"] == ["a", None] and out["e"] == [None] and out["b"] == [True, None]
