"""pyarrow on first use (arrow()), and Arrow arrays built from Python lists without it importing pandas (issue 16).

A small export run never needs pyarrow (its plan and columns stay Python lists): it is imported by arrow() only,
after the allocator and BLAS choices below.

`pa.array(list)` asks pyarrow's pandas shim whether the list is "array-like" before converting it, and the
first such question imports pandas (~50 MB RSS, ~0.4 s) in a process that never uses it: a CLI or bench run
of an export. These builders assemble the array from its buffers (validity bitmap, int32 offsets, bytes)
instead, which never consults the shim. Same values and type as `pa.array(values, type=...)`."""
from __future__ import annotations

import os
import sys
from array import array
from itertools import accumulate

# Arrow's default memory pool is mimalloc, which keeps what a run's plan reading and outcome columns freed in its
# own segments: a 1 M SendGrid export peaked ~35 MB higher with it (326 vs 291 MB, same time), and glibc's
# malloc_trim (storage.db.release_memory, after every run) cannot hand those back. The system allocator can.
# Arrow's C++ side reads ARROW_DEFAULT_MEMORY_POOL once, so it is set before pyarrow's first import (the export
# modules import pyarrow through this one: `arrow()`); where pyarrow came first
# (Streamlit imports it), pyarrow's own default is switched, which covers what pyarrow allocates for us. An
# explicit ARROW_DEFAULT_MEMORY_POOL is left alone.
ARROW_POOL_ENV = "ARROW_DEFAULT_MEMORY_POOL"
_POOL_CHOSEN = bool(os.environ.get(ARROW_POOL_ENV))
os.environ.setdefault(ARROW_POOL_ENV, "system")

# pyarrow imports numpy, whose OpenBLAS starts one thread per core at import, and they spin a while: ~0.1 s of CPU in
# a short run (a 1 M re-run took 0.87-0.97 s of CPU with one BLAS thread, 0.98-1.18 s without). Nothing here does
# linear algebra. An explicit OPENBLAS_NUM_THREADS is left alone; where numpy came first (Streamlit), it is too late
# and harmless.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

_pa = None   # pyarrow, once arrow() imported it


def _system_pool(pa) -> None:
    if not _POOL_CHOSEN and pa.default_memory_pool().backend_name != "system":
        pa.set_memory_pool(pa.system_memory_pool())


def arrow():
    """The pyarrow module, imported on first use, after the choices above. A small run never needs it: its plan,
    columns and writes stay Python lists (jobs/export_run.py, storage/exports.py), and pyarrow's import (with the
    numpy it imports) is ~60 ms and ~35 MB of a short process."""
    global _pa
    if _pa is None:
        import pyarrow

        _system_pool(pyarrow)
        _pa = pyarrow
    return _pa


def is_arrow(values) -> bool:
    """values is an Arrow array or chunked array (never imports pyarrow: without it, nothing is)."""
    pa = sys.modules.get("pyarrow")
    return pa is not None and isinstance(values, (pa.Array, pa.ChunkedArray))


if "pyarrow" in sys.modules:   # it came first (Streamlit): its default pool is switched now, as before
    arrow()


def int64_array(values):
    """A non-null int64 array of the given ints (e.g. row positions for Array.take)."""
    pa = arrow()
    buf = array("q", values)
    return pa.Array.from_buffers(pa.int64(), len(buf), [None, pa.py_buffer(buf)])


def string_array(values):
    """A string array of str values; None becomes null."""
    pa = arrow()
    n = len(values)
    if not n:
        return pa.Array.from_buffers(pa.string(), 0, [None, pa.py_buffer(array("i", [0]).tobytes()),
                                                      pa.py_buffer(b"")])
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
