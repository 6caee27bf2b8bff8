"""connectors.http per-request fast path (issue 16): prepared headers and URLs, requests straight to the
transport, and head + body in one socket write. The wire must stay what httpx.Client would send."""
from __future__ import annotations

import http.server
import threading

import httpx
import orjson
import pytest

from connectors.errors import TransientError
from connectors.http import (
    COALESCE_MAX_BYTES,
    DEFAULT_TIMEOUT,
    URL_CACHE_SIZE,
    HttpClient,
    RetryPolicy,
    _CoalescingBackend,
    _CoalescingStream,
    coalesce_writes,
)

KEY = "Omnisend-API-Key secret-123456"
HEADERS = {"Accept": "application/json", "User-Agent": "insight-relay", "Omnisend-Version": "2026-03-15"}


def recording_client(base_url: str = "https://api.example.com/api", **kw):
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        request.read()
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    client = HttpClient("omnisend", base_url, headers=HEADERS, auth_headers={"Authorization": KEY},
                        secrets=["secret-123456"], transport=httpx.MockTransport(handler), **kw)
    return client, seen


@pytest.mark.parametrize("method, path, kw", [
    ("GET", "/lists", {"params": {"email": "a+b@x.com", "q": "x y", "n": 3, "t": True, "l": ["a", "b"]}}),
    ("GET", "/users/a+b@x.com", {}),
    ("POST", "/batches", {"json": {"items": [1, 2]}}),
    ("POST", "/batches", {"json": {"items": []}, "headers": {"X-Extra": "1"}}),
    ("PUT", "/raw", {"content": b"raw", "headers": {"Content-Type": "text/csv"}}),
    ("DELETE", "/tags", {"json": {"tags": ["t"]}}),
    ("GET", "/x?already=1", {"params": {"more": 2}}),
    ("GET", "https://api.example.com/api/absolute", {}),
])
def test_requests_are_byte_for_byte_what_httpx_client_builds(method, path, kw):
    client, seen = recording_client()
    client.request(method, path, **kw)
    sent = seen[0]
    reference = httpx.Client(base_url="https://api.example.com/api", headers={**HEADERS, "Authorization": KEY},
                             timeout=DEFAULT_TIMEOUT)
    content, headers = kw.get("content"), kw.get("headers")
    if "json" in kw:     # what the client did before the fast path: orjson bytes and a Content-Type header
        content, headers = orjson.dumps(kw["json"]), {**(headers or {}), "Content-Type": "application/json"}
    expect = reference.build_request(method, path, params=kw.get("params"), content=content, headers=headers)
    assert str(sent.url) == str(expect.url)
    assert sent.headers.raw == expect.headers.raw
    assert sent.content == expect.content
    assert sent.extensions["timeout"] == reference.timeout.as_dict() != {}


def test_timeouts_of_the_client_go_with_every_request():
    client, seen = recording_client(timeout=httpx.Timeout(3.0, connect=1.0))
    client.get("/a")
    client.post("/b", json={})
    assert [r.extensions["timeout"]["connect"] for r in seen] == [1.0, 1.0]
    assert [r.extensions["timeout"]["read"] for r in seen] == [3.0, 3.0]


def test_key_never_goes_to_another_origin_with_the_fast_path():
    client, seen = recording_client()
    client.get("https://storage.example.net/errors.csv")
    client.get("/own")
    assert "authorization" not in seen[0].headers and seen[1].headers["authorization"] == KEY


def test_prepared_headers_are_not_changed_by_a_request():
    client, seen = recording_client()
    client.post("/a", json={}, headers={"X-Once": "1"})
    client.post("/b", json={})
    client.get("/c")
    assert "x-once" not in seen[1].headers and seen[1].headers["content-type"] == "application/json"
    assert "content-type" not in seen[2].headers


def test_a_closed_client_refuses_to_send_as_httpx_does():
    client, seen = recording_client()
    client.close()
    with pytest.raises(RuntimeError, match="closed"):
        client.get("/a")
    assert seen == []


def test_url_cache_is_bounded():
    client, _ = recording_client()
    for i in range(URL_CACHE_SIZE + 10):
        client.get(f"/batches/{i}/items")
    assert len(client._urls) <= URL_CACHE_SIZE


class FakeStream:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.writes.append(bytes(buffer))

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return b"HTTP/1.1 200 OK\r\n"

    def close(self) -> None:
        self.closed = True

    def start_tls(self, *a, **kw):
        return FakeStream()

    def get_extra_info(self, info: str):
        return f"info:{info}"


def test_coalescing_stream_sends_head_and_small_body_in_one_write():
    inner = FakeStream()
    s = _CoalescingStream(inner)
    s.write(b"POST / HTTP/1.1\r\n\r\n")
    s.write(b"")
    s.write(b"x" * 30_000)
    assert inner.writes == []                      # held until the response is awaited
    s.read(100)
    assert inner.writes == [b"POST / HTTP/1.1\r\n\r\n" + b"x" * 30_000]
    s.read(100)
    assert len(inner.writes) == 1                  # nothing held: nothing more written
    assert s.get_extra_info("is_readable") == "info:is_readable"


def test_coalescing_stream_writes_a_large_body_as_it_comes():
    inner = FakeStream()
    s = _CoalescingStream(inner)
    big = b"y" * (COALESCE_MAX_BYTES + 1)
    s.write(b"HEAD")
    s.write(big)
    assert inner.writes == [b"HEAD", big]          # head flushed first, body not copied into a join
    s.write(b"tail")
    s.close()
    assert inner.closed and inner.writes == [b"HEAD", big]   # a closed stream sends nothing held


def test_default_transport_coalesces_and_a_given_transport_is_left_alone():
    real = HttpClient("omnisend", "http://127.0.0.1:9")
    assert isinstance(real._client._transport._pool._network_backend, _CoalescingBackend)
    assert coalesce_writes(real._client) is False          # never wrapped twice
    mocked, _ = recording_client()
    assert coalesce_writes(httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200)))) is False
    real.close()
    mocked.close()


class _Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    drop_next = 0

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if _Echo.drop_next:
            _Echo.drop_next -= 1
            self.close_connection = True
            self.connection.close()
            return
        out = str(len(body)).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *a):
        pass


@pytest.fixture
def echo_url():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_loopback_bodies_small_and_large_arrive_whole(echo_url):
    client = HttpClient("omnisend", echo_url, retry=RetryPolicy(max_attempts=3, base_backoff_s=0.01, max_backoff_s=0.02))
    for size in (0, 10, 30_000, COALESCE_MAX_BYTES, 300_000):
        resp = client.post("/echo", content=b"z" * size)
        assert resp.text == str(size)
    _Echo.drop_next = 1                             # a dropped connection is retried as before
    assert client.post("/echo", content=b"abc").text == "3"
    _Echo.drop_next = 5
    with pytest.raises(TransientError):
        client.post("/echo", content=b"abc")
    _Echo.drop_next = 0
    client.close()
