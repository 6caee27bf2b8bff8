"""Serve an emulator over loopback HTTP (real sockets; used for timeouts, dropped connections, bench).

API
---
serve(emulator, host="127.0.0.1", port=0) -> LoopbackServer
    ThreadingHTTPServer (HTTP/1.1 keep-alive) in a daemon thread; each request is adapted to
    emulator.handle(httpx.Request). If handle raises httpx.ReadError (drop_connections fault) the
    socket is closed without an answer.
LoopbackServer: .url ("http://127.0.0.1:PORT"), .host, .port, .close(); context manager.
main(argv=None) -> int   `python manage.py sandbox --vendor iterable [--port 0] [--host 127.0.0.1]
    [--rate-limits]`: prints the URL and serves the process-wide emulator until Ctrl-C.
"""
from __future__ import annotations

import argparse
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from connectors.http import get_logger

log = get_logger("connectors.sandbox.server")

_HOP_HEADERS = {"content-length", "transfer-encoding", "connection", "keep-alive", "content-encoding"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:  # quiet; never log keys
        pass

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without NODELAY, Nagle + delayed ACK add ~40 ms/request
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        host, port = self.server.server_address[:2]
        url = f"http://{host}:{port}{self.path}"
        request = httpx.Request(self.command, url, headers=list(self.headers.items()), content=body)
        try:
            response = self.server.emulator.handle(request)
            content = response.read()
        except httpx.ReadError:
            # drop_connections fault: close without answering
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        except Exception as exc:  # emulator bug: answer 500 rather than hanging the client
            log.exception("sandbox emulator failed: %s", type(exc).__name__)
            content = b'{"message":"sandbox emulator error"}'
            response = httpx.Response(500, headers={"content-type": "application/json"})
        try:
            self.send_response(response.status_code)
            for k, v in response.headers.multi_items():
                if k.lower() not in _HOP_HEADERS:
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(content)
        except (BrokenPipeError, ConnectionResetError):  # client gave up (e.g. its timeout fired)
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, addr: tuple[str, int], emulator: Any) -> None:
        self.emulator = emulator
        super().__init__(addr, _Handler)


class LoopbackServer:
    def __init__(self, emulator: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.emulator = emulator
        self._server = _Server((host, port), emulator)
        self.host, self.port = self._server.server_address[:2]
        self.url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"sandbox-{getattr(emulator, 'vendor', '')}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "LoopbackServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def serve(emulator: Any, host: str = "127.0.0.1", port: int = 0) -> LoopbackServer:
    return LoopbackServer(emulator, host, port)


def main(argv: list[str] | None = None) -> int:
    from connectors.sandbox.common import get_emulator, known_vendors

    parser = argparse.ArgumentParser(prog="manage.py sandbox", description="Serve a vendor sandbox over HTTP.")
    parser.add_argument("--vendor", required=True, choices=known_vendors())
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rate-limits", action="store_true", help="enforce the vendor's documented limits")
    args = parser.parse_args(argv)
    emulator = get_emulator(args.vendor)
    emulator.rate_limits_enabled = args.rate_limits
    server = serve(emulator, args.host, args.port)
    print(server.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
