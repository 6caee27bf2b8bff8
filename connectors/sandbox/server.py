"""Serve an emulator over loopback HTTP (real sockets; used for timeouts, dropped connections, bench).

API
---
serve(emulator, host="127.0.0.1", port=0) -> LoopbackServer
    ThreadingHTTPServer (HTTP/1.1 keep-alive, TCP_NODELAY, one send per response) in a daemon thread;
    each request is adapted to emulator.handle(httpx.Request). If handle raises httpx.ReadError
    (drop_connections fault) the socket is closed without an answer.
    GET /_sandbox/stats is answered by the server itself (never reaches the emulator, never counted):
    {"vendor", "requests", "requests_by_route", "peak_rss_mb"} so a bench can read the counters of an
    emulator running in another process.
LoopbackServer: .url ("http://127.0.0.1:PORT"), .host, .port, .close(); context manager.
main(argv=None) -> int   `python manage.py sandbox --vendor iterable [--port 0] [--host 127.0.0.1]
    [--rate-limits | --no-rate-limits] [--job-delay-s S] [--credits N] [--seed-list NAME=EMAIL,...]`:
    --seed-list (repeatable) starts with a list (Omnisend: tag) already holding those members; prints the URL as the FIRST
    stdout line and serves a fresh emulator until Ctrl-C / SIGTERM. --job-delay-s sets the vendor's
    async delay (SendGrid job_delay_s, Omnisend batch_delay_s, Leadspace bulk_delay_s); --credits sets
    Leadspace credits.
spawn(vendor, *flags, python=sys.executable) -> SandboxProcess   runs main() in a SEPARATE process
    (a vendor is a remote server: benches measure the client process alone). SandboxProcess: .url,
    .pid, .stats() -> dict (GET /_sandbox/stats), .peak_rss_mb() (the server's VmHWM), .close();
    context manager.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from connectors.http import get_logger

log = get_logger("connectors.sandbox.server")

_HOP_HEADERS = {"content-length", "transfer-encoding", "connection", "keep-alive", "content-encoding"}
STATS_PATH = "/_sandbox/stats"


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # StreamRequestHandler sets TCP_NODELAY in setup(): the response goes out in one send anyway, but
    # the client writes headers and body separately, and Nagle + delayed ACK would add ~40 ms/request.
    disable_nagle_algorithm = True
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:  # quiet; never log keys
        pass

    def _send(self, status: int, headers: list[tuple[str, str]], content: bytes) -> None:
        """Status line, headers and body in ONE write (no small-packet interplay, one syscall)."""
        reason = self.responses.get(status, ("",))[0]
        lines = [f"HTTP/1.1 {status} {reason}\r\n"]
        for k, v in headers:
            if k.lower() not in _HOP_HEADERS:
                lines.append(f"{k}: {v}\r\n")
        lines.append(f"Content-Length: {len(content)}\r\n")
        if self.close_connection:
            lines.append("Connection: close\r\n")
        lines.append("\r\n")
        head = "".join(lines).encode("latin-1", "strict")
        self.wfile.write(head + content if self.command != "HEAD" else head)

    def _stats(self) -> None:
        em = self.server.emulator
        with em.lock:
            body = {"vendor": getattr(em, "vendor", ""), "requests": em.request_count,
                    "requests_by_route": dict(em.requests_by_route), "peak_rss_mb": _peak_rss_mb()}
        self._send(200, [("Content-Type", "application/json")], json.dumps(body).encode())

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path == STATS_PATH and self.command == "GET":
            try:
                self._stats()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
            return
        url = f"{self.server.base_url}{self.path}"
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
            self._send(response.status_code, response.headers.multi_items(), content)
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
        host, port = self.server_address[:2]
        self.base_url = f"http://{host}:{port}"


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


# the async-delay knob of each vendor's emulator (--job-delay-s)
_DELAY_ATTRS = ("job_delay_s", "batch_delay_s", "bulk_delay_s")


def configure(emulator: Any, *, rate_limits: bool | None = None, job_delay_s: float | None = None,
              credits: int | None = None) -> None:
    if rate_limits is not None:
        emulator.rate_limits_enabled = bool(rate_limits)
    if job_delay_s is not None:
        for attr in _DELAY_ATTRS:
            if hasattr(emulator, attr):
                setattr(emulator, attr, float(job_delay_s))
    if credits is not None and hasattr(emulator, "credits"):
        emulator.initial_credits = int(credits)
        emulator.credits = int(credits)


def main(argv: list[str] | None = None) -> int:
    from connectors.sandbox.common import emulator_class, known_vendors

    parser = argparse.ArgumentParser(prog="manage.py sandbox", description="Serve a vendor sandbox over HTTP.")
    parser.add_argument("--vendor", required=True, choices=known_vendors())
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--rate-limits", dest="rate_limits", action="store_true", default=False,
                       help="enforce the vendor's documented/emulated limits")
    group.add_argument("--no-rate-limits", dest="rate_limits", action="store_false", help="no limits (default)")
    parser.add_argument("--job-delay-s", type=float, default=None,
                        help="async job delay (SendGrid jobs, Omnisend batches, Leadspace bulks)")
    parser.add_argument("--credits", type=int, default=None, help="Leadspace credits")
    parser.add_argument("--seed-list", action="append", default=[], metavar="NAME=EMAIL[,EMAIL...]",
                        help="a list (Omnisend: tag) that already holds these members before any export ran")
    args = parser.parse_args(argv)
    emulator = emulator_class(args.vendor)()  # a fresh one: this process serves nothing else
    configure(emulator, rate_limits=args.rate_limits, job_delay_s=args.job_delay_s, credits=args.credits)
    for spec in args.seed_list:
        name, _, emails = spec.partition("=")
        if not name or not hasattr(emulator, "seed_list"):
            parser.error(f"--seed-list {spec!r}: expected NAME=EMAIL[,EMAIL...] for an export vendor")
        emulator.seed_list(name, [e for e in emails.split(",") if e.strip()])
    if hasattr(emulator, "process_in_background"):
        emulator.process_in_background = True   # async jobs run beside the requests, as at the vendor
    server = serve(emulator, args.host, args.port)
    stop = threading.Event()
    try:
        signal.signal(signal.SIGTERM, lambda *a: stop.set())
    except ValueError:  # not the main thread (tests call main() in a thread)
        pass
    print(server.url, flush=True)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


class SandboxProcess:
    """An emulator served by `manage.py sandbox` in a child process."""

    def __init__(self, vendor: str, *flags: str, python: str | None = None, env: dict | None = None) -> None:
        root = Path(__file__).resolve().parents[2]
        cmd = [python or sys.executable, str(root / "manage.py"), "sandbox", "--vendor", vendor, "--port", "0",
               *flags]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=None, text=True, cwd=str(root),
                                     env={**os.environ, **(env or {})})
        line = self.proc.stdout.readline().strip() if self.proc.stdout else ""
        if not line.startswith("http://"):
            self.proc.kill()
            raise RuntimeError(f"sandbox {vendor} did not start (first line {line!r})")
        self.url = line
        self.pid = self.proc.pid
        self._http = httpx.Client(timeout=30.0)

    def stats(self) -> dict:
        return self._http.get(self.url + STATS_PATH).json()

    def peak_rss_mb(self) -> float | None:
        """The server process's high-water RSS (VmHWM), read from /proc."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024.0, 1)
        except OSError:
            pass
        try:
            return self.stats().get("peak_rss_mb")
        except httpx.HTTPError:
            return None

    def close(self) -> None:
        self._http.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc.stdout:
            self.proc.stdout.close()

    def __enter__(self) -> "SandboxProcess":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def spawn(vendor: str, *flags: str, python: str | None = None, env: dict | None = None) -> SandboxProcess:
    return SandboxProcess(vendor, *flags, python=python, env=env)


if __name__ == "__main__":
    sys.exit(main())
