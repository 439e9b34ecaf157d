"""Request bodies: JSON (with the contract's NaN/infinity spelling), the raw
``application/x-plotwire-columns`` format, and Arrow IPC.

numpy, pandas and pyarrow are optional. They are looked up in ``sys.modules`` or imported
lazily, so importing plotwire never imports them.
"""
from __future__ import annotations

import importlib
import io
import json
import math
import struct
import sys
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

JSON = "application/json"
RAW_COLUMNS = "application/x-plotwire-columns"
ARROW_STREAM = "application/vnd.apache.arrow.stream"

RAW_MAGIC = b"PWC1"
RAW_ALIGN = 8
RAW_DTYPES = ("float64", "float32", "int64", "int32", "int16", "int8",
              "uint32", "uint16", "uint8", "bool")
"""The dtypes of the raw format, by their numpy names."""

_MISSING = object()
_modules: dict[str, Any] = {}


def optional_module(name: str) -> ModuleType | None:
    """The module ``name`` if it can be imported, else ``None`` (the answer is cached)."""
    cached = _modules.get(name, _MISSING)
    if cached is not _MISSING:
        return cached
    try:
        module: ModuleType | None = importlib.import_module(name)
    except ImportError:
        module = None
    _modules[name] = module
    return module


def numpy() -> ModuleType | None:
    """numpy, or ``None`` when it is not installed."""
    return optional_module("numpy")


# ---------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------

def _float_json(value: float) -> str:
    if value != value:
        return "null"
    if value == math.inf:
        return "1e999"
    if value == -math.inf:
        return "-1e999"
    return float.__repr__(value)


def _json_default(obj: Any) -> Any:
    """``json.dumps`` hook: numpy arrays and scalars, tuples of any depth, sets."""
    np = sys.modules.get("numpy")
    if np is not None:
        if isinstance(obj, np.ndarray):
            if obj.dtype.kind == "M":
                return datetime64_to_ms(obj).tolist()
            return obj.tolist()
        if isinstance(obj, np.generic):
            return obj.item()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"values of type {type(obj).__name__} cannot be sent as JSON")


def _dump_exact(obj: Any, out: list[str]) -> None:
    """Append the JSON of ``obj`` to ``out``, writing NaN as ``null`` and ±infinity as
    ``±1e999`` (the contract's spelling; Python's json writes ``NaN`` and ``Infinity``)."""
    if isinstance(obj, float):
        out.append(_float_json(obj))
    elif obj is None or isinstance(obj, (str, bool, int)):
        out.append(json.dumps(obj))
    elif isinstance(obj, Mapping):
        out.append("{")
        for i, (key, value) in enumerate(obj.items()):
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be strings, not {type(key).__name__}")
            if i:
                out.append(",")
            out.append(json.dumps(key))
            out.append(":")
            _dump_exact(value, out)
        out.append("}")
    elif isinstance(obj, (list, tuple)):
        out.append("[")
        for i, value in enumerate(obj):
            if i:
                out.append(",")
            _dump_exact(value, out)
        out.append("]")
    else:
        _dump_exact(_json_default(obj), out)


def dumps(obj: Any) -> bytes:
    """``obj`` as compact UTF-8 JSON, with numpy values converted, NaN as ``null`` and
    ±infinity as ``1e999``/``-1e999``; ``-0.0`` stays ``-0.0``.

    The C encoder runs first; only a body that holds a non-finite float takes the slower
    exact path.
    """
    try:
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                          default=_json_default)
    except ValueError:
        out: list[str] = []
        _dump_exact(obj, out)
        text = "".join(out)
    return text.encode("utf-8")


# ---------------------------------------------------------------------------
# column bodies
# ---------------------------------------------------------------------------

def datetime64_to_ms(array: Any) -> Any:
    """A numpy ``datetime64`` array as float64 milliseconds since the epoch (Bokeh's
    convention, computed from microseconds as Bokeh does); NaT becomes NaN."""
    np = numpy()
    assert np is not None
    us = array.astype("datetime64[us]")
    out = us.astype("int64").astype("float64") / 1e3
    out[np.isnat(us)] = np.nan
    return out


def _raw_array(value: Any, np: ModuleType) -> Any | None:
    """``value`` as a 1-D little-endian contiguous numpy array of a raw dtype, or ``None``
    when it cannot go into the raw format."""
    if isinstance(value, np.ndarray):
        array = value
    elif isinstance(value, (list, tuple)):
        if not value:
            return None
        try:
            array = np.asarray(value)
        except (ValueError, TypeError, OverflowError):
            return None
    else:
        return None
    if array.ndim != 1:
        return None
    if array.dtype.kind == "M":
        array = datetime64_to_ms(array)
    name = "bool" if array.dtype.kind == "b" else array.dtype.name
    if name not in RAW_DTYPES:
        return None
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))


def encode_raw(columns: Mapping[str, Any]) -> bytes:
    """``columns`` (name → 1-D numpy array of a raw dtype) in the raw
    ``application/x-plotwire-columns`` format.

    The header JSON is padded with spaces so that the first column starts at a multiple of
    8; each further column starts at the next multiple of 8 after the previous one, the
    gap filled with zero bytes.
    """
    np = numpy()
    if np is None:
        raise RuntimeError("the raw columns format needs numpy")
    arrays: list[tuple[str, Any]] = []
    for name, value in columns.items():
        array = _raw_array(value, np)
        if array is None:
            raise TypeError(f"column {name!r} is not a 1-D array of one of {', '.join(RAW_DTYPES)}")
        arrays.append((name, array))
    header = {"columns": [{"name": name, "dtype": "bool" if a.dtype.kind == "b" else a.dtype.name,
                           "length": int(a.shape[0])} for name, a in arrays]}
    head = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    head += b" " * (-(8 + len(head)) % RAW_ALIGN)
    parts = [RAW_MAGIC, struct.pack("<I", len(head)), head]
    offset = 8 + len(head)
    for _, array in arrays:
        pad = -offset % RAW_ALIGN
        if pad:
            parts.append(b"\0" * pad)
            offset += pad
        data = array.view(np.uint8) if array.dtype.kind == "b" else array
        parts.append(memoryview(data).cast("B"))
        offset += array.nbytes
    return b"".join(parts)


def _is_arrow(obj: Any) -> bool:
    pa = sys.modules.get("pyarrow")
    return pa is not None and isinstance(obj, (pa.Table, pa.RecordBatch))


def _is_pandas(obj: Any) -> bool:
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(obj, pd.DataFrame)


def encode_arrow(table: Any) -> bytes:
    """A pyarrow ``Table`` or ``RecordBatch`` as an Arrow IPC stream."""
    import pyarrow as pa

    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        if isinstance(table, pa.RecordBatch):
            writer.write_batch(table)
        else:
            writer.write_table(table)
    return sink.getvalue()


def _pandas_columns(frame: Any) -> dict[str, Any]:
    columns: dict[str, Any] = {}
    for name in frame.columns:
        if not isinstance(name, str):
            raise TypeError(f"DataFrame column names must be strings, not {name!r}")
        columns[name] = frame[name].to_numpy()
    return columns


def encode_columns(columns: Any) -> tuple[str, bytes]:
    """The ``(Content-Type, body)`` of a stream or replace request.

    - a pyarrow ``Table``/``RecordBatch``: an Arrow IPC stream;
    - a pandas ``DataFrame``: an Arrow IPC stream when pyarrow is installed (the index is
      dropped), else its columns as numpy arrays, as below;
    - a mapping of column name → values: the raw binary format when numpy is installed and
      every column is (or converts to) a non-empty 1-D numeric or bool array; otherwise
      JSON columns.
    """
    if _is_arrow(columns):
        return ARROW_STREAM, encode_arrow(columns)
    if _is_pandas(columns):
        pa = optional_module("pyarrow")
        if pa is not None:
            return ARROW_STREAM, encode_arrow(pa.Table.from_pandas(columns, preserve_index=False))
        columns = _pandas_columns(columns)
    if not isinstance(columns, Mapping):
        raise TypeError("columns must be a mapping of column name to values, a pandas DataFrame "
                        f"or a pyarrow Table, not {type(columns).__name__}")
    if not columns:
        raise ValueError("no columns to send")
    for name, values in columns.items():
        if not isinstance(name, str):
            raise TypeError(f"column names must be strings, not {name!r}")
        if isinstance(values, (str, bytes, Mapping)) or not _is_sequence(values):
            raise TypeError(f"column {name!r} must be a sequence of values, not {type(values).__name__}")
    np = numpy()
    if np is not None:
        arrays = {name: _raw_array(values, np) for name, values in columns.items()}
        if all(a is not None for a in arrays.values()):
            return RAW_COLUMNS, encode_raw(arrays)
    return JSON, dumps({name: _as_json_column(values) for name, values in columns.items()})


def _is_sequence(values: Any) -> bool:
    if isinstance(values, Sequence):
        return True
    np = sys.modules.get("numpy")
    return np is not None and isinstance(values, np.ndarray)


def _as_json_column(values: Any) -> Any:
    np = sys.modules.get("numpy")
    if np is not None and isinstance(values, np.ndarray):
        return _json_default(values)
    return list(values) if isinstance(values, tuple) else values


# ---------------------------------------------------------------------------
# answers
# ---------------------------------------------------------------------------

def nulls_to_nan(data: Mapping[str, Any]) -> dict[str, Any]:
    """Read-back columns with ``null`` turned back into NaN in numeric columns.

    The server writes NaN as ``null``. A column whose values are all numbers or ``None``
    (and at least one number) gets ``float('nan')`` for each ``None``; other columns are
    left as they are. ``1e999`` already parses as infinity.
    """
    out: dict[str, Any] = {}
    for name, values in data.items():
        if isinstance(values, list) and None in values:
            numbers = [v for v in values if v is not None]
            if numbers and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
                values = [math.nan if v is None else v for v in values]
        out[name] = values
    return out
