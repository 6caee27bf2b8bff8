"""Serve an emulator over loopback HTTP (real sockets; used for timeouts, dropped connections, bench).

API
---
serve(emulator, host="127.0.0.1", port=0) -> LoopbackServer
    ThreadingHTTPServer (HTTP/1.1 keep-alive, TCP_NODELAY, one send per response) in a daemon thread;
    each request is adapted to emulator.handle(httpx.Request). If handle raises httpx.ReadError
    (drop_connections fault) the socket is closed without an answer.
    GET /_sandbox/stats is answered by the server itself (never reaches the emulator, never counted):
    {"vendor", "requests", "requests_by_route", "peak_rss_mb"} so a bench can read the counters of an
    emulator running in another process. So are the app's read/maintenance calls of a Sandbox in a child
    process (connectors/sandbox/remote.py), their bodies in the tagged JSON of to_wire()/from_wire()
    (tuples, sets and non-string keys come back as they were):
      GET  /_sandbox/snapshot[?max_members=N]   emulator.snapshot(max_members=N) (no parameter: None)
      GET  /_sandbox/contact?email=E            emulator.contact(E) (Iterable: .user(E)), null if unknown
      GET  /_sandbox/user?email=E               emulator.user(E) (Iterable)
      POST /_sandbox/records {"emails": [..]}   emulator.records(emails): one stored record (or null) each
      POST /_sandbox/reset                      emulator.reset() -> {"ok": true}
LoopbackServer: .url ("http://127.0.0.1:PORT"), .host, .port, .close(); context manager.
main(argv=None) -> int   `python manage.py sandbox --vendor iterable [--port 0] [--host 127.0.0.1]
    [--rate-limits | --no-rate-limits] [--job-delay-s S] [--credits N] [--seed-list NAME=EMAIL,...]
    [--parent-pid PID]`:
    --seed-list (repeatable) starts with a list (Omnisend: tag) already holding those members; prints the URL as the FIRST
    stdout line and serves a fresh emulator until Ctrl-C / SIGTERM. --job-delay-s sets the vendor's
    async delay (SendGrid job_delay_s, Omnisend batch_delay_s, Leadspace bulk_delay_s); --credits sets
    Leadspace credits. --parent-pid: the process dies with that parent (prctl PR_SET_PDEATHSIG SIGTERM,
    it exits at once when the parent is already gone, and within SIGNAL_CHECK_S once it is orphaned).
spawn(vendor, *flags, python=sys.executable) -> SandboxProcess   runs main() in a SEPARATE process
    (a vendor is a remote server: benches measure the client process alone). SandboxProcess: .url,
    .pid, .stats() -> dict (GET /_sandbox/stats), .peak_rss_mb() (the server's VmHWM), .alive(), .close();
    context manager. The first stdout line (the URL) is read with a deadline (start_timeout_s), the rest
    of stdout is drained by a daemon thread (a full pipe never blocks the child); stderr is inherited
    unless given. die_with_parent=True passes --parent-pid (see main()): the child never outlives us.
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
START_TIMEOUT_S = 60.0   # a child's start (imports) on a busy 2-core machine
# The app's read/maintenance calls, answered by the server itself (never reach the emulator, never counted).
CONTROL_PATHS = {("GET", "/_sandbox/snapshot"), ("GET", "/_sandbox/contact"), ("GET", "/_sandbox/user"),
                 ("POST", "/_sandbox/records"), ("POST", "/_sandbox/reset")}
_WIRE_TAG = "__sandbox_type__"


def to_wire(value: Any) -> Any:
    """A Python value as JSON-safe data that from_wire() turns back into the same value: tuples, sets and
    dicts with non-string keys are tagged ({"__sandbox_type__": "tuple", "items": [...]})."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and _WIRE_TAG not in value:
            return {k: to_wire(v) for k, v in value.items()}
        return {_WIRE_TAG: "dict", "items": [[to_wire(k), to_wire(v)] for k, v in value.items()]}
    if isinstance(value, list):
        return [to_wire(v) for v in value]
    if isinstance(value, tuple):
        return {_WIRE_TAG: "tuple", "items": [to_wire(v) for v in value]}
    if isinstance(value, (set, frozenset)):
        try:
            items = sorted(value)
        except TypeError:
            items = list(value)
        return {_WIRE_TAG: "frozenset" if isinstance(value, frozenset) else "set",
                "items": [to_wire(v) for v in items]}
    raise TypeError(f"sandbox wire: cannot encode {type(value).__name__}")


def from_wire(data: Any) -> Any:
    if isinstance(data, list):
        return [from_wire(v) for v in data]
    if not isinstance(data, dict):
        return data
    kind = data.get(_WIRE_TAG)
    if kind is None:
        return {k: from_wire(v) for k, v in data.items()}
    items = data["items"]
    if kind == "dict":
        return {_hashable(from_wire(k)): from_wire(v) for k, v in items}
    if kind == "tuple":
        return tuple(from_wire(v) for v in items)
    if kind == "set":
        return {_hashable(from_wire(v)) for v in items}
    if kind == "frozenset":
        return frozenset(_hashable(from_wire(v)) for v in items)
    raise ValueError(f"sandbox wire: unknown type {kind!r}")


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


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

    def _control(self, path: str, query: str, body: bytes) -> None:
        """The app's read/maintenance calls (CONTROL_PATHS): 200 with the tagged JSON of the result, 400 for a
        call this emulator does not have or a bad parameter."""
        from urllib.parse import parse_qs

        em = self.server.emulator
        params = {k: v[-1] for k, v in parse_qs(query).items()}
        status, result = 200, None
        try:
            if path == "/_sandbox/snapshot":
                raw = params.get("max_members")
                result = em.snapshot(max_members=None if raw in (None, "", "none") else int(raw))
            elif path == "/_sandbox/contact":
                result = em.record(params["email"])
            elif path == "/_sandbox/user":
                if not callable(getattr(em, "user", None)):
                    raise AttributeError("this sandbox has no users")
                result = em.user(params["email"])
            elif path == "/_sandbox/records":
                emails = json.loads(body or b"{}").get("emails") or []
                result = em.records([str(e) for e in emails])
            elif path == "/_sandbox/reset":
                em.reset()
                result = {"ok": True}
            content = json.dumps(to_wire(result)).encode()
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            status, content = 400, json.dumps({"message": f"{type(exc).__name__}: {exc}"}).encode()
        except Exception as exc:  # an emulator bug: answer, never hang the app
            log.exception("sandbox control call %s failed: %s", path, type(exc).__name__)
            status, content = 500, json.dumps({"message": "sandbox emulator error"}).encode()
        self._send(status, [("Content-Type", "application/json")], content)

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path.startswith("/_sandbox/"):
            path, _, query = self.path.partition("?")
            try:
                if path == STATS_PATH and self.command == "GET":
                    self._stats()
                    return
                if (self.command, path) in CONTROL_PATHS:
                    self._control(path, query, body)
                    return
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


PR_SET_PDEATHSIG = 1
SIGNAL_CHECK_S = 0.5   # how often the serving process looks at SIGTERM and at whether its parent is gone


def die_with_parent(parent_pid: int) -> None:
    """This process gets SIGTERM when its parent dies, even by SIGKILL (Linux prctl PR_SET_PDEATHSIG; the
    parent must spawn from a thread that lives as long as it does: the signal follows the spawning thread).
    Exits at once when the parent is already gone (it died before the prctl took effect)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the parent's atexit cleanup remains
        pass
    if os.getppid() != parent_pid:
        os._exit(0)


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
    parser.add_argument("--parent-pid", type=int, default=None,
                        help="die with this process (the app that started this sandbox)")
    args = parser.parse_args(argv)
    if args.parent_pid:
        die_with_parent(args.parent_pid)
    emulator = emulator_class(args.vendor)()  # a fresh one: this process serves nothing else
    configure(emulator, rate_limits=args.rate_limits, job_delay_s=args.job_delay_s, credits=args.credits)
    for spec in args.seed_list:
        name, _, emails = spec.partition("=")
        if not name or not hasattr(emulator, "seed_list"):
            parser.error(f"--seed-list {spec!r}: expected NAME=EMAIL[,EMAIL...] for an export vendor")
        emulator.seed_list(name, [e for e in emails.split(",") if e.strip()])
    if hasattr(emulator, "process_in_background"):
        emulator.process_in_background = True   # async jobs run beside the requests, as at the vendor
    try:
        server = serve(emulator, args.host, args.port)
    except OSError as exc:   # e.g. the port is taken (a restart asks for its old one first): one line, no traceback
        print(f"sandbox {args.vendor}: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
              file=sys.stderr, flush=True)
        return 1
    stop = threading.Event()   # set by a caller running main() in a thread; SIGTERM sets `terminated`
    terminated: list[int] = []

    def on_sigterm(signum: int, frame: Any) -> None:
        # Nothing that takes a lock: the signal can come again while this runs (PR_SET_PDEATHSIG fires once
        # per thread of the dying parent), and Event.set() re-entered on its own lock deadlocks.
        terminated.append(signum)

    try:
        signal.signal(signal.SIGTERM, on_sigterm)
    except ValueError:  # not the main thread (tests call main() in a thread)
        pass
    print(server.url, flush=True)
    try:
        # Timed waits: a signal the kernel hands to the server's thread rather than this one would never wake
        # a wait without a timeout (only this thread runs Python's signal handlers).
        while not terminated and not stop.wait(SIGNAL_CHECK_S):
            if args.parent_pid and os.getppid() != args.parent_pid:   # orphaned, whatever the signals did
                break
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


class SandboxProcess:
    """An emulator served by `manage.py sandbox` in a child process."""

    def __init__(self, vendor: str, *flags: str, python: str | None = None, env: dict | None = None,
                 die_with_parent: bool = False, stderr: Any = None, start_timeout_s: float = START_TIMEOUT_S) -> None:
        root = Path(__file__).resolve().parents[2]
        cmd = [python or sys.executable, str(root / "manage.py"), "sandbox", "--vendor", vendor, "--port", "0",
               *flags]
        if die_with_parent:
            cmd += ["--parent-pid", str(os.getpid())]
        self.vendor = vendor
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr,
                                     cwd=str(root), env={**os.environ, **(env or {})})
        self.pid = self.proc.pid
        try:
            line = self._first_line(start_timeout_s)
        except BaseException:
            self._stop()
            self.proc.stdout.close()
            raise
        if not line.startswith("http://"):
            self._stop()
            self.proc.stdout.close()
            raise RuntimeError(f"sandbox {vendor} did not start (first line {line!r})")
        self.url = line
        self._http = httpx.Client(timeout=30.0)
        # the rest of stdout is read and dropped: the child never blocks on a full pipe
        threading.Thread(target=self._drain, name=f"sandbox-{vendor}-stdout", daemon=True).start()

    def _first_line(self, timeout_s: float) -> str:
        """The first stdout line, without waiting past the deadline or on a child that exited."""
        import selectors
        import time

        fd = self.proc.stdout.fileno()
        buf = b""
        deadline = time.monotonic() + timeout_s
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"sandbox {self.vendor} did not start within {timeout_s:.0f} s")
                if not sel.select(min(left, 0.5)):
                    continue
                chunk = os.read(fd, 4096)
                if not chunk:   # the child exited
                    break
                buf += chunk
        return buf.split(b"\n", 1)[0].decode("utf-8", "replace").strip()

    def _drain(self) -> None:
        """Reads stdout to its end (the child's exit), then closes it: only this thread touches it now."""
        fd = self.proc.stdout.fileno()
        try:
            while os.read(fd, 65536):
                pass
        except OSError:
            pass
        finally:
            self.proc.stdout.close()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def settle(self, timeout_s: float) -> bool:
        """Wait up to timeout_s for the child to exit (one being killed is reaped only once all its threads
        ended); True when it has exited."""
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True

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

    def _stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def close(self) -> None:
        http = getattr(self, "_http", None)
        if http is not None:
            http.close()
        self._stop()   # the drain thread then reads EOF and closes stdout

    def __enter__(self) -> "SandboxProcess":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def spawn(vendor: str, *flags: str, python: str | None = None, env: dict | None = None,
          die_with_parent: bool = False, stderr: Any = None, start_timeout_s: float = START_TIMEOUT_S) -> SandboxProcess:
    return SandboxProcess(vendor, *flags, python=python, env=env, die_with_parent=die_with_parent, stderr=stderr,
                          start_timeout_s=start_timeout_s)


if __name__ == "__main__":
    sys.exit(main())
