"""Emulator base class for vendor sandboxes (in-process via httpx.MockTransport, or over loopback).

API
---
Emulator(*, clock=time.time, sleep=time.sleep)       subclass per vendor; class attrs:
    vendor = "sendgrid"                                 vendor id
    ROUTES = [("GET", r"/v3/scopes", "route_scopes"), ...]   method, full-match path regex, method name
        handler signature: fn(self, request: httpx.Request, match: re.Match) -> httpx.Response
    RATE_LIMIT_RULES = {"default": (count, period_s), "tags": (...)}   enforced when rate_limits_enabled
  .handle(request) -> httpx.Response   faults -> auth -> rate limit -> route (404 in vendor format)
  .transport() -> httpx.MockTransport(self.handle)
  .lock (RLock) guards all state; .clock / .sleep injectable
  .faults: Faults knobs (see below); .rate_limits_enabled: bool; .reset(); .snapshot(max_members=100)
  .request_count, .requests_by_route (dict "METHOD pattern" -> int)
  Subclass hooks: api_key(request) -> str|None; auth_error(request) -> Response; auth_check(request, key)
      -> Response|None; error_response(status, message, code=None) -> Response;
      rate_limited_response(request, retry_after_s, reset_epoch, include_retry_hint) -> Response;
      bucket_for(request) -> str; extra_headers(request, bucket_state) -> dict; reset_state();
      state_snapshot(max_members) -> dict
Faults (dataclass, all counters decrement as they fire):
    rate_limit_burst: int             next N requests -> 429 in the vendor's own format/headers
    rate_limit_retry_hint: bool=True  include the vendor's wait hint (Retry-After/reset header/body)
    rate_limit_wait_s: float=1.0      the hinted wait
    server_error_burst: int; server_error_status: int = 503
    slow_s: float; slow_burst: int (0 = every request while slow_s > 0)   sleep before answering
    drop_connections: int             next N: raise httpx.ReadError (in-process); loopback server
                                      closes the socket without answering
    outage: bool                      every request -> 503
    path_pattern: str|None            faults apply only to requests whose path matches (re.search)
json_response(status, body, headers=None) -> httpx.Response ; text_response(status, text, ctype)
FakeClock(start=1_700_000_000.0): .time() / __call__ and .sleep(s) advancing time (for tests)
register_emulator(vendor, "module:Class"); get_emulator(vendor) -> the vendor's Sandbox in this process's
mode (below); reset_emulators() resets every created one. Known: sendgrid, iterable, omnisend
(connectors.sandbox.omnisend:OmnisendEmulator), leadspace (connectors.sandbox.leadspace:LeadspaceEmulator).
.record(email) / .records(emails): the stored contact (Iterable: user) of each email, None when unknown.

Mode (sandbox_mode(), env INSIGHT_RELAY_SANDBOX):
    "inline"   get_emulator() returns the in-process singleton Emulator; make_client plugs its
               transport() in. The default when the variable is unset: pytest and AppTest (tests/conftest.py
               sets it), the manage.py CLI (one short process: its Sandbox ends with it anyway), benches.
    "process"  get_emulator() returns a RemoteEmulator (connectors/sandbox/remote.py): the Sandbox runs in a
               child process, started on first use, and make_client gets its loopback URL as base_url. What
               the Streamlit server uses: app.py sets the variable to "process" unless it is already set.

Sandbox auth policy (all vendors): any non-empty key is valid EXCEPT keys starting with "invalid",
which get 401 in the vendor's format. SendGrid only: a key containing "nomarketing" gets 403 on
/v3/marketing/* (valid key without Marketing permission).
"""
from __future__ import annotations

import importlib
import os
import re
import sys
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import httpx
import orjson

SANDBOX_HOST_TEMPLATE = "http://sandbox.{vendor}.local"


@dataclass
class Faults:
    rate_limit_burst: int = 0
    rate_limit_retry_hint: bool = True
    rate_limit_wait_s: float = 1.0
    server_error_burst: int = 0
    server_error_status: int = 503
    slow_s: float = 0.0
    slow_burst: int = 0
    drop_connections: int = 0
    outage: bool = False
    path_pattern: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


class FakeClock:
    """Deterministic clock for tests: sleep() advances time instantly."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = float(start)
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def time(self) -> float:
        return self.now

    __call__ = time

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self.now += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        self.sleep(seconds)


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    h = {"content-type": "application/json"}
    if headers:
        h.update(headers)
    return httpx.Response(status, content=orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS), headers=h)


def text_response(status: int, text: str, content_type: str = "text/plain", headers: dict | None = None) -> httpx.Response:
    h = {"content-type": content_type}
    if headers:
        h.update(headers)
    return httpx.Response(status, content=text.encode(), headers=h)


class Emulator:
    vendor: str = ""
    ROUTES: list[tuple[str, str, str]] = []
    RATE_LIMIT_RULES: dict[str, tuple[int, float]] = {}
    _compiled: list[tuple[str, re.Pattern[str], str]]

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        cls._compiled = [(m.upper(), re.compile(p), name) for m, p, name in cls.ROUTES]

    def __init__(self, *, clock: Callable[[], float] | None = None, sleep: Callable[[float], None] | None = None) -> None:
        self.clock = clock or time.time
        self.sleep = sleep or time.sleep
        self.lock = threading.RLock()
        self.faults = Faults()
        self.rate_limits_enabled = False
        self.rate_limit_rules = dict(self.RATE_LIMIT_RULES)
        self.reset()

    # ------------------------------------------------------------ lifecycle
    def reset(self) -> None:
        with self.lock:
            self.faults = Faults()
            self.request_count = 0
            self.requests_by_route: dict[str, int] = {}
            self._windows: dict[str, tuple[float, int]] = {}  # bucket -> (window start, used)
            self.reset_state()

    def reset_state(self) -> None:  # subclass: clear vendor state
        pass

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def base_url(self) -> str:
        return SANDBOX_HOST_TEMPLATE.format(vendor=self.vendor)

    def snapshot(self, max_members: int | None = 100) -> dict:
        with self.lock:
            return {
                "vendor": self.vendor,
                "requests": self.request_count,
                "requests_by_route": dict(self.requests_by_route),
                "faults": self.faults.to_dict(),
                "rate_limits_enabled": self.rate_limits_enabled,
                "rate_limit_rules": {k: list(v) for k, v in self.rate_limit_rules.items()},
                **self.state_snapshot(max_members),
            }

    def state_snapshot(self, max_members: int | None) -> dict:  # subclass
        return {}

    def record(self, email: str) -> dict | None:
        """The stored contact (SendGrid, Omnisend: contact(); Iterable: user()) of `email`, None if unknown."""
        getter = getattr(self, "contact", None)
        if not callable(getter):
            getter = getattr(self, "user", None)
        return getter(email) if callable(getter) else None

    def records(self, emails: list[str]) -> list[dict | None]:
        return [self.record(email) for email in emails]

    # ------------------------------------------------------------ vendor hooks
    def api_key(self, request: httpx.Request) -> str | None:
        return None

    def error_response(self, status: int, message: str, code: str | None = None) -> httpx.Response:
        return json_response(status, {"message": message, "code": code})

    def auth_error(self, request: httpx.Request) -> httpx.Response:
        return self.error_response(401, "unauthorized", "Unauthorized")

    def auth_check(self, request: httpx.Request, key: str) -> httpx.Response | None:
        """Default sandbox policy; override to add vendor-specific permission checks."""
        return None

    def rate_limited_response(
        self, request: httpx.Request, retry_after_s: float, reset_epoch: float, include_retry_hint: bool
    ) -> httpx.Response:
        headers = {"Retry-After": str(int(round(retry_after_s)))} if include_retry_hint else None
        return json_response(429, {"message": "too many requests"}, headers)

    def server_error_response(self, status: int) -> httpx.Response:
        return self.error_response(status, "internal error" if status == 500 else "service unavailable")

    def not_found(self, request: httpx.Request) -> httpx.Response:
        return self.error_response(404, f"no route for {request.method} {request.url.path}", "NotFound")

    def bucket_for(self, request: httpx.Request) -> str:
        return "default"

    def extra_headers(self, request: httpx.Request, limit: tuple[int, float] | None, used: int, reset_epoch: float) -> dict[str, str]:
        return {}

    # ------------------------------------------------------------ dispatch
    def _route(self, request: httpx.Request) -> tuple[Callable[..., httpx.Response] | None, re.Match | None, str]:
        path = request.url.path
        method = request.method.upper()
        path_matched = False
        for m, pattern, name in self._compiled:
            match = pattern.fullmatch(path)
            if match:
                path_matched = True
                if m == method:
                    return getattr(self, name), match, f"{m} {pattern.pattern}"
        return None, None, "405" if path_matched else "404"

    def _fault_applies(self, request: httpx.Request) -> bool:
        pat = self.faults.path_pattern
        return pat is None or re.search(pat, request.url.path) is not None

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.request_count += 1
            f = self.faults
            applies = self._fault_applies(request)
            drop = slow = False
            if applies and f.drop_connections > 0:
                f.drop_connections -= 1
                drop = True
            slow_delay = 0.0
            if applies and f.slow_s > 0:
                slow, slow_delay = True, f.slow_s
                if f.slow_burst > 0:
                    f.slow_burst -= 1
                    if f.slow_burst == 0:
                        f.slow_s = 0.0
        if drop:
            raise httpx.ReadError("connection dropped by sandbox fault", request=request)
        if slow:
            self.sleep(slow_delay)
        response = self._handle(request)
        response.request = request
        return response

    def _handle(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            f = self.faults
            applies = self._fault_applies(request)
            if applies and f.outage:
                return self.server_error_response(503)
            key = self.api_key(request)
            if not key or key.startswith("invalid"):
                return self.auth_error(request)
            denied = self.auth_check(request, key)
            if denied is not None:
                return denied
            if applies and f.rate_limit_burst > 0:
                f.rate_limit_burst -= 1
                now = self.clock()
                return self.rate_limited_response(request, f.rate_limit_wait_s, now + f.rate_limit_wait_s,
                                                  f.rate_limit_retry_hint)
            if applies and f.server_error_burst > 0:
                f.server_error_burst -= 1
                return self.server_error_response(f.server_error_status)
            bucket = self.bucket_for(request)
            limit = self.rate_limit_rules.get(bucket) if self.rate_limits_enabled else None
            used, reset_epoch = 0, self.clock()
            if limit is not None:
                count, period = limit
                now = self.clock()
                start = (now // period) * period
                wstart, wused = self._windows.get(bucket, (start, 0))
                if wstart != start:
                    wused = 0
                reset_epoch = start + period
                if wused >= count:
                    self._windows[bucket] = (start, wused)
                    return self.rate_limited_response(request, reset_epoch - now, reset_epoch, True)
                used = wused + 1
                self._windows[bucket] = (start, used)
            handler, match, route_key = self._route(request)
            self.requests_by_route[route_key] = self.requests_by_route.get(route_key, 0) + 1
        # handlers take the lock themselves for state changes; parsing happens outside it
        if handler is None:
            if route_key == "405":
                return self.error_response(405, f"method {request.method} not allowed", "MethodNotAllowed")
            return self.not_found(request)
        response = handler(request, match)
        extra = self.extra_headers(request, limit, used, reset_epoch)
        if extra:
            response.headers.update(extra)
        return response

    # ------------------------------------------------------------ helpers for subclasses
    @staticmethod
    def read_json(request: httpx.Request) -> Any:
        """Parse the JSON body; raise ValueError if it is not JSON."""
        body = request.read()
        if not body:
            raise ValueError("empty body")
        return orjson.loads(body)


# ---------------------------------------------------------------- singletons

_EMULATOR_CLASSES: dict[str, str] = {
    "sendgrid": "connectors.sandbox.sendgrid:SendGridEmulator",
    "iterable": "connectors.sandbox.iterable:IterableEmulator",
    "omnisend": "connectors.sandbox.omnisend:OmnisendEmulator",
    "leadspace": "connectors.sandbox.leadspace:LeadspaceEmulator",
}
_INSTANCES: dict[str, Emulator] = {}
_INSTANCES_LOCK = threading.Lock()
MODE_ENV = "INSIGHT_RELAY_SANDBOX"
MODES = ("inline", "process")


def sandbox_mode() -> str:
    """"inline" (the default) or "process", from INSIGHT_RELAY_SANDBOX (anything else: ValueError)."""
    mode = (os.environ.get(MODE_ENV) or "inline").strip().lower()
    if mode not in MODES:
        raise ValueError(f"{MODE_ENV}={mode!r}: expected one of {', '.join(MODES)}")
    return mode


def register_emulator(vendor: str, target: str) -> None:
    """Register 'module:Class' as the emulator for vendor (lazy import)."""
    _EMULATOR_CLASSES[vendor] = target


def emulator_class(vendor: str) -> type[Emulator]:
    try:
        target = _EMULATOR_CLASSES[vendor]
    except KeyError:
        raise KeyError(f"no sandbox emulator for vendor {vendor!r}") from None
    module_name, cls_name = target.split(":")
    return getattr(importlib.import_module(module_name), cls_name)


def get_emulator(vendor: str) -> Any:
    """The vendor's Sandbox: in "inline" mode the process-wide singleton Emulator (created on first use), in
    "process" mode the RemoteEmulator proxy of its child process (started on first use)."""
    if sandbox_mode() == "process":
        from connectors.sandbox.remote import get_remote

        emulator_class(vendor)   # KeyError for an unknown vendor, as inline
        return get_remote(vendor)
    with _INSTANCES_LOCK:
        inst = _INSTANCES.get(vendor)
        if inst is None:
            inst = emulator_class(vendor)()
            _INSTANCES[vendor] = inst
        return inst


def reset_emulators() -> None:
    """Reset every Sandbox created so far (inline singletons; children of "process" mode that were started)."""
    with _INSTANCES_LOCK:
        instances: list[Any] = list(_INSTANCES.values())
    remote = sys.modules.get("connectors.sandbox.remote")
    if remote is not None:
        instances += [r for r in remote.started_remotes() if r.pid is not None]
    for inst in instances:
        inst.reset()


def known_vendors() -> list[str]:
    return list(_EMULATOR_CLASSES)
