"""The text encoding of an imported CSV file, decided over the WHOLE file, never silently.

* UTF-8 (with or without BOM) and UTF-16 with a BOM are read as they are.
* A file that is not UTF-8 anywhere is a single-byte file: Windows-1252 when it has bytes
  0x80-0x9F (€, smart quotes, … are there; in Latin-1 they would be invisible control characters),
  Latin-1 otherwise. The preview and the import say which.
* A file that is UTF-8 except on some lines (two exports pasted together) keeps its UTF-8 lines
  exactly; the other lines are read as Windows-1252 and the warning names them, so nobody finds
  `ZoÃ«` later. Valid UTF-8 is never re-decoded.
* UTF-16 without a byte-order mark cannot be told apart reliably from binary data: refused with
  a message that says how to save the file.

DuckDB reads UTF-8, UTF-16 and Latin-1 itself; for Windows-1252 and mixed files a UTF-8 copy with the
same lines is written to a private temporary file (line numbers in later messages stay right).
"""
from __future__ import annotations

import atexit
import codecs
import os
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from core.importing import ProfileImportError

CHUNK_BYTES = 4 << 20
SAMPLE_BYTES = 4096               # enough to recognise UTF-16 without a BOM
UTF16_NUL_SHARE = 0.25            # share of NUL bytes in a text sample that means "UTF-16"
EXAMPLE_LINES = 5
CACHE_ENTRIES = 4                 # scans remembered: the preview runs again on every page interaction
WINDOWS_1252 = "Windows-1252"
_C1_BYTES = bytes(range(0x80, 0xA0))


def _cp1252_or_latin1(error: UnicodeDecodeError):
    """Bytes Windows-1252 leaves undefined (0x81, 0x8D, 0x8F, 0x90, 0x9D) are read as Latin-1."""
    return error.object[error.start:error.end].decode("latin-1"), error.end


codecs.register_error("ir_cp1252_or_latin1", _cp1252_or_latin1)


def decode_single_byte(raw: bytes) -> str:
    return raw.decode("cp1252", errors="ir_cp1252_or_latin1")


@dataclass
class EncodingScan:
    duckdb_encoding: str               # what DuckDB is told: utf-8 | utf-16 | latin-1
    label: str                         # what people are told: UTF-8, UTF-16, Windows-1252, Latin-1 ...
    read_path: Path                    # the file DuckDB reads: the original or a UTF-8 copy
    copy: Path | None = None           # the UTF-8 copy, if one was written (removed by release())
    warnings: list[str] = field(default_factory=list)


def _lines(numbers: list[int], total: int) -> str:
    shown = ", ".join(f"{n:,}" for n in numbers[:EXAMPLE_LINES])
    more = f" and {total - EXAMPLE_LINES:,} more" if total > EXAMPLE_LINES else ""
    return f"line{'s' if total > 1 else ''} {shown}{more}"


def _check_not_utf16_without_bom(path: Path, sample: bytes, file_name: str) -> None:
    nuls = sample.count(0)
    if not nuls:
        return
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    if nuls >= UTF16_NUL_SHARE * len(sample) and min(even, odd) <= 0.1 * max(even, odd):
        raise ProfileImportError(
            f"{file_name} looks like UTF-16 text without a byte-order mark, which cannot be read reliably. "
            "Save it as UTF-8 (in Excel: “CSV UTF-8”) and import again.")
    raise ProfileImportError(f"{file_name} is not a text (CSV) file.")


def _valid_utf8(path: Path, skip: int) -> bool:
    """Fast path: the whole file decodes as UTF-8 (chunk by chunk; a character may span chunks)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with open(path, "rb") as fh:
        fh.seek(skip)
        try:
            while chunk := fh.read(CHUNK_BYTES):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


def _line_census(path: Path, skip: int) -> tuple[list[int], int, bool, bool]:
    """(first bad line numbers, number of bad lines, any valid non-ASCII UTF-8 line, any 0x80-0x9F byte)."""
    bad: list[int] = []
    n_bad, utf8_text, c1 = 0, False, False
    with open(path, "rb") as fh:
        fh.seek(skip)
        for number, line in enumerate(fh, start=1):
            if line.isascii():
                continue
            try:
                line.decode("utf-8")
                utf8_text = True
            except UnicodeDecodeError:
                n_bad += 1
                if len(bad) < EXAMPLE_LINES:
                    bad.append(number)
                c1 = c1 or any(b in _C1_BYTES for b in line)
    return bad, n_bad, utf8_text, c1


def _write_utf8_copy(path: Path, skip: int, keep_utf8_lines: bool) -> Path:
    """A private UTF-8 copy, line for line: UTF-8 lines as they are (when kept), others as Windows-1252."""
    fd, name = tempfile.mkstemp(prefix="insight-relay-import-", suffix=".csv")   # mode 0600
    try:
        with open(path, "rb") as src, os.fdopen(fd, "wb") as out:
            src.seek(skip)
            for line in src:
                if keep_utf8_lines:
                    try:
                        line.decode("utf-8")
                        out.write(line)
                        continue
                    except UnicodeDecodeError:
                        pass
                out.write(decode_single_byte(line).encode("utf-8"))
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def scan(path: Path, file_name: str | None = None) -> EncodingScan:
    """Decide the encoding over the whole file (see the module docstring)."""
    file_name = file_name or path.name
    with open(path, "rb") as fh:
        sample = fh.read(SAMPLE_BYTES)
    if sample.startswith(codecs.BOM_UTF16_LE) or sample.startswith(codecs.BOM_UTF16_BE):
        return EncodingScan("utf-16", "UTF-16", path)
    bom = len(codecs.BOM_UTF8) if sample.startswith(codecs.BOM_UTF8) else 0
    _check_not_utf16_without_bom(path, sample[bom:], file_name)
    if _valid_utf8(path, bom):
        return EncodingScan("utf-8", "UTF-8", path)
    bad, n_bad, utf8_text, c1 = _line_census(path, bom)
    if utf8_text:
        copy = _write_utf8_copy(path, bom, keep_utf8_lines=True)
        return EncodingScan("utf-8", f"UTF-8 (with {n_bad:,} line{'s' if n_bad > 1 else ''} in {WINDOWS_1252})",
                            copy, copy, [
            f"The file is UTF-8 except on {_lines(bad, n_bad)} (counting the header as line 1), which "
            f"{'are' if n_bad > 1 else 'is'} not valid UTF-8. Those lines were read as {WINDOWS_1252} "
            "(Western European); check their accented letters. Every other line was read as UTF-8."])
    if c1:
        copy = _write_utf8_copy(path, bom, keep_utf8_lines=False)
        return EncodingScan("utf-8", WINDOWS_1252, copy, copy, [
            f"The file is not UTF-8; it was read as {WINDOWS_1252} (Western European: €, “smart quotes”, "
            "accented letters)."])
    return EncodingScan("latin-1", "Latin-1", path, None, [
        "The file is not UTF-8; it was read as Latin-1 (ISO-8859-1, Western European)."])


# -- the scan of a file is remembered while the file is unchanged ---------------------------------------
_cache: OrderedDict[tuple, EncodingScan] = OrderedDict()
_lock = threading.Lock()


def _key(path: Path) -> tuple:
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


def _drop(key: tuple) -> None:
    entry = _cache.pop(key)
    if entry.copy is not None:
        entry.copy.unlink(missing_ok=True)


def _drop_all() -> None:
    with _lock:
        for key in list(_cache):
            _drop(key)


atexit.register(_drop_all)   # copies hold personal data: none outlives the process


def scan_cached(path: Path, file_name: str | None = None) -> EncodingScan:
    key = _key(path)
    with _lock:
        for gone in [k for k in _cache if not Path(k[0]).exists()]:   # a discarded upload: drop its copy
            _drop(gone)
        hit = _cache.get(key)
        if hit is not None and (hit.copy is None or hit.copy.exists()):
            _cache.move_to_end(key)
            return hit
    result = scan(path, file_name)
    with _lock:
        old = _cache.pop(key, None)
        if old is not None and old.copy is not None and old.copy != result.copy:
            old.copy.unlink(missing_ok=True)
        _cache[key] = result
        while len(_cache) > CACHE_ENTRIES:
            _drop(next(iter(_cache)))
    return result


def release(path: Path) -> None:
    """Forget the scan of `path` and remove its UTF-8 copy (after an import, or when it is discarded)."""
    with _lock:
        for key in [k for k in _cache if k[0] == str(Path(path).resolve())]:
            _drop(key)
