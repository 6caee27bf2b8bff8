"""Arrow arrays built from Python lists without pyarrow importing pandas (issue 16: peak memory).

`pa.array(list)` asks pyarrow's pandas shim whether the list is "array-like" before converting it, and the
first such question imports pandas (~50 MB RSS, ~0.4 s) in a process that never uses it: a CLI or bench run
of an export. These builders assemble the array from its buffers (validity bitmap, int32 offsets, bytes)
instead, which never consults the shim. Same values and type as `pa.array(values, type=...)`."""
from __future__ import annotations

from array import array
from itertools import accumulate

import pyarrow as pa

_EMPTY_OFFSETS = pa.py_buffer(array("i", [0]).tobytes())


def int64_array(values) -> pa.Array:
    """A non-null int64 array of the given ints (e.g. row positions for Array.take)."""
    buf = array("q", values)
    return pa.Array.from_buffers(pa.int64(), len(buf), [None, pa.py_buffer(buf)])


def string_array(values) -> pa.Array:
    """A string array of str values; None becomes null."""
    n = len(values)
    if not n:
        return pa.Array.from_buffers(pa.string(), 0, [None, _EMPTY_OFFSETS, pa.py_buffer(b"")])
    validity = None
    null_count = values.count(None)
    if null_count == n:    # e.g. the reasons of a batch all accepted
        return pa.Array.from_buffers(pa.string(), n, [pa.py_buffer(bytes((n + 7) // 8)),
                                                      pa.py_buffer(bytes(4 * (n + 1))), pa.py_buffer(b"")],
                                     null_count=n)
    strings = values
    if null_count:
        # bit i set = value i present (Arrow's LSB-first bitmap): one binary literal, parsed in linear time
        bits = int("".join("0" if v is None else "1" for v in reversed(values)), 2)
        validity = pa.py_buffer(bits.to_bytes((n + 7) // 8, "little"))
        strings = ["" if v is None else v for v in values]
    try:
        encoded = [v.encode("utf-8") for v in strings]
    except AttributeError:     # not all str: pyarrow's own conversion (and its errors) decide
        return pa.array(values, type=pa.string())
    offsets = array("i", [0])     # int32 offsets: array("i") raises OverflowError past 2 GiB of text
    offsets.extend(accumulate(map(len, encoded)))
    return pa.Array.from_buffers(pa.string(), n, [validity, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))],
                                 null_count=null_count)
