"""Deferred downloads must hand Streamlit a type it can send: the segment CSV service returns a
SpooledTemporaryFile, which Streamlit 1.67 refuses (the Download members button then did nothing)."""
from __future__ import annotations

import io
import tempfile

import pytest
from streamlit.runtime.download_data_util import convert_data_to_bytes_and_infer_mime
from streamlit.runtime.media_file_storage import MediaFileStorageError

from ui.downloads import deferred, read_all


def _streamlit_accepts(data) -> bytes:
    return convert_data_to_bytes_and_infer_mime(data, unsupported_error=MediaFileStorageError("unsupported"))[0]


def test_a_spooled_file_is_refused_by_streamlit_but_accepted_once_wrapped():
    def make():
        spool = tempfile.SpooledTemporaryFile(max_size=10, mode="w+b")
        spool.write(b"Customer ID,Email\nc1,a@example.com\n")
        return spool
    with pytest.raises(MediaFileStorageError):
        _streamlit_accepts(make())
    assert _streamlit_accepts(deferred(make)()) == b"Customer ID,Email\nc1,a@example.com\n"


def test_read_all_passes_text_and_bytes_through_and_closes_files():
    assert read_all("a,b\n") == "a,b\n" and read_all(b"x") == b"x"
    buf = io.BytesIO(b"abc")
    buf.read()
    assert read_all(buf) == b"abc" and buf.closed


def test_segment_members_csv_downloads(db, admin):
    from datetime import datetime

    from core.segments import SegmentRule
    from services import segments as svc

    with db.transaction() as cur:
        cur.execute("INSERT INTO profiles (customer_id, email, updated_at) VALUES ('c1', 'c1@example.com', ?)",
                    [datetime(2025, 1, 1)])
    sid = svc.save_segment(db, admin, "Everyone", "", SegmentRule(), "dynamic")
    data = _streamlit_accepts(deferred(lambda: svc.members_csv(db, admin, sid))())
    assert b"c1@example.com" in data
