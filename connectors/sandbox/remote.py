"""A vendor's Sandbox in a child process: the app talks to it over loopback HTTP, like to any vendor.

Why: an emulator keeps everything it received (a million contacts after a big export) and its request
handling costs CPU; held in the Streamlit server's own process, that memory stayed after the run (small
long-lived strings pin the allocator's arenas) and the pages competed with it for the CPU. In a child
process the server returns to its starting memory after a run.

API
---
RemoteEmulator(vendor, *flags)   the proxy get_emulator(vendor) returns in "process" mode (common.py)
    .remote = True; .vendor
    .base_url() -> str       the child's URL ("http://127.0.0.1:PORT"): registry.make_client's base_url.
                             Starts the child on first use; restarts it if it died (a restarted Sandbox is
                             empty, as after a reset; it takes the old port back when it can, so clients
                             made before keep working)
    .snapshot(max_members=100) -> dict, .contact(email), .user(email) (Iterable), .records(emails) -> list,
    .reset()                 the emulator's own accessors, answered by the child's server itself
                             (server.py CONTROL_PATHS), never counted as vendor requests
    .stats() -> dict         GET /_sandbox/stats; .pid -> int | None (None before the first use)
    .close()                 stops the child (the next use starts a new, empty one)
  Every call raises SandboxUnavailableError (a connectors.errors.VendorUnreachableError, so a
  core.errors.Unavailable: its message is for people) when the child cannot be started or does not answer.
get_remote(vendor) -> RemoteEmulator    one per vendor per process (thread-safe); close_all() stops them
    (atexit does it too).

Lifecycle: children are started lazily, one per vendor, under a per-vendor lock (sessions and job threads
call at once). The child must never outlive the app: it runs `manage.py sandbox --parent-pid <our pid>`,
which sets prctl(PR_SET_PDEATHSIG, SIGTERM) (it dies even when the app is SIGKILLed). That signal fires
when the *thread* that forked the child ends, so every child is forked by one long-lived daemon thread of
ours (_Spawner), never by a page run's or a job's thread, which end. atexit stops the children on a
normal exit. The child's stdout is read for its URL and then drained; its stderr is the app's (its
errors show in the app's log).
"""
from __future__ import annotations

import atexit
import queue
import threading
from concurrent.futures import Future
from typing import Any, Callable

import httpx

from connectors.errors import VendorUnreachableError
from connectors.http import get_logger
from connectors.sandbox.server import SandboxProcess, from_wire, spawn

log = get_logger("connectors.sandbox.remote")
CALL_TIMEOUT_S = 60.0       # a snapshot of a big Sandbox takes a moment; never wait forever
START_TIMEOUT_S = 60.0
DEATH_WAIT_S = 1.0          # after a failed call: how long to give a dying child to be gone before retrying


class SandboxUnavailableError(VendorUnreachableError):
    """The Sandbox's process could not be started or did not answer (a connector error, as for a vendor that
    cannot be reached: its message is shown as is)."""


def _label(vendor: str) -> str:
    from connectors.errors import vendor_label

    return vendor_label(vendor)


class _Spawner:
    """One long-lived daemon thread that forks every Sandbox child (see the module doc: PR_SET_PDEATHSIG
    follows the forking thread)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def run(self, fn: Callable[[], Any]) -> Any:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="sandbox-spawner", daemon=True)
                self._thread.start()
        future: Future = Future()
        self._jobs.put((fn, future))
        return future.result()

    def _loop(self) -> None:
        while True:
            fn, future = self._jobs.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the caller
                future.set_exception(exc)


_SPAWNER = _Spawner()


class RemoteEmulator:
    """The Sandbox of `vendor` in a child process, with the accessors the app uses (see the module doc)."""

    remote = True

    def __init__(self, vendor: str, *flags: str) -> None:
        self.vendor = vendor
        self.flags = flags
        self._proc: SandboxProcess | None = None
        self._port: int | None = None
        self._lock = threading.Lock()
        self._http = httpx.Client(timeout=CALL_TIMEOUT_S)

    # ------------------------------------------------------------ the child
    def _start(self) -> SandboxProcess:
        """Fork the child on the spawner thread: its old port first (clients made before keep working)."""
        def start() -> SandboxProcess:
            if self._port:
                try:
                    return spawn(self.vendor, *self.flags, "--port", str(self._port), die_with_parent=True,
                                 start_timeout_s=START_TIMEOUT_S)
                except RuntimeError:   # the port was taken meanwhile: any free one
                    pass
            return spawn(self.vendor, *self.flags, die_with_parent=True, start_timeout_s=START_TIMEOUT_S)

        try:
            proc = _SPAWNER.run(start)
        except (OSError, RuntimeError) as exc:
            log.warning("sandbox %s could not be started: %s", self.vendor, exc)
            raise SandboxUnavailableError(
                f"The {_label(self.vendor)} Sandbox could not be started. Try again; if it keeps failing, "
                "restart the app.", vendor=self.vendor, detail=str(exc)) from None
        self._port = int(proc.url.rsplit(":", 1)[1])
        return proc

    def _process(self) -> SandboxProcess:
        with self._lock:
            proc = self._proc
            if proc is None or not proc.alive():
                if proc is not None:
                    proc.close()
                self._proc = proc = self._start()
            return proc

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None else None

    def base_url(self) -> str:
        return self._process().url

    # ------------------------------------------------------------ accessors
    def _call(self, method: str, path: str, **kw: Any) -> Any:
        for attempt in (1, 2):
            proc = self._process()
            try:
                response = self._http.request(method, proc.url + path, **kw)
            except httpx.TransportError as exc:
                # Once more (these calls are reads, and a reset twice is one reset): on a fresh child if it
                # died under us, on a new connection if a kept-alive one was to a child since restarted.
                if attempt == 1:
                    proc.settle(DEATH_WAIT_S)   # a child being killed is reaped only once all its threads ended
                    continue
                raise SandboxUnavailableError(
                    f"The {_label(self.vendor)} Sandbox did not answer. Try again in a moment.",
                    vendor=self.vendor, detail=f"{type(exc).__name__}: {exc}") from None
            if response.status_code != 200:
                raise SandboxUnavailableError(
                    f"The {_label(self.vendor)} Sandbox could not answer this request. Try again in a moment.",
                    vendor=self.vendor, status=response.status_code, detail=_message(response))
            return from_wire(response.json())
        raise AssertionError("unreachable")

    def snapshot(self, max_members: int | None = 100) -> dict:
        params = {} if max_members is None else {"max_members": str(int(max_members))}
        return self._call("GET", "/_sandbox/snapshot", params=params)

    def contact(self, email: str) -> dict | None:
        return self._call("GET", "/_sandbox/contact", params={"email": email})

    def user(self, email: str) -> dict | None:
        return self._call("GET", "/_sandbox/user", params={"email": email})

    def records(self, emails: list[str]) -> list[dict | None]:
        return self._call("POST", "/_sandbox/records", json={"emails": list(emails)})

    def reset(self) -> None:
        """Empty the Sandbox. A dead child is simply started again: a new one is empty."""
        self._call("POST", "/_sandbox/reset")

    def stats(self) -> dict:
        return self._call("GET", "/_sandbox/stats")

    def close(self) -> None:
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None:
            proc.close()

    def __repr__(self) -> str:
        return f"RemoteEmulator({self.vendor!r}, pid={self.pid})"


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message") or response.reason_phrase)
    except ValueError:
        return response.reason_phrase


_REMOTES: dict[str, RemoteEmulator] = {}
_REMOTES_LOCK = threading.Lock()


def get_remote(vendor: str) -> RemoteEmulator:
    with _REMOTES_LOCK:
        remote = _REMOTES.get(vendor)
        if remote is None:
            remote = _REMOTES[vendor] = RemoteEmulator(vendor)
        return remote


def started_remotes() -> list[RemoteEmulator]:
    with _REMOTES_LOCK:
        return list(_REMOTES.values())


def close_all() -> None:
    """Stop every Sandbox child of this process (a later use starts a fresh one)."""
    with _REMOTES_LOCK:
        remotes = list(_REMOTES.values())
        _REMOTES.clear()
    for remote in remotes:
        try:
            remote.close()
        except Exception:  # noqa: BLE001 - at exit: stop the others anyway
            pass


atexit.register(close_all)
