"""Shared HTTP machinery for vendor connectors (httpx based).

API
---
MAX_WAIT_S = 120.0                       longest single wait a 5xx may ask for before we give up on it
DEFAULT_RATE_LIMIT_BUDGET_S = 1800.0     per-client (= per-run) time we may spend waiting out rate limits
WAIT_NOTICE_INTERVAL_S = 5.0             a rate-limit wait is slept in steps this long, each one announced
DEFAULT_TIMEOUT = httpx.Timeout(connect=5, read=30, write=30, pool=10)

RetryPolicy(max_attempts=5, base_backoff_s=0.5, max_backoff_s=30.0, max_wait_s=MAX_WAIT_S,
            retry_statuses=frozenset({429, 500, 502, 503, 504}),
            rate_limit_budget_s=DEFAULT_RATE_LIMIT_BUDGET_S)
    Two kinds of retry (issue 13):
    * rate limiting (429, or a retry status carrying X-RateLimit-Remaining: 0): NOT counted against
      max_attempts. We wait as long as the vendor asks (Retry-After / reset headers / body hint; without
      a hint, capped exponential back-off), for as many responses in a row as it takes, while the
      client's total rate-limit waiting stays within rate_limit_budget_s. A wait beyond what is left
      of the budget raises RateLimitedError(budget_exhausted=True, retry_after_s, retry_at) at once.
    * 5xx and dropped connections / timeouts: capped exponential back-off, at most max_attempts tries;
      a 5xx asking for more than max_wait_s gives up at once.
RateLimit(count: int, period_s: float)   e.g. RateLimit(400, 60) = 400 requests per minute
RateLimiter(limits: dict[str, RateLimit|None] | None, *, clock, sleep)
    .acquire(bucket="default")          sliding window per named bucket; sleeps (injected) when full
    unknown bucket names fall back to "default"; a None limit means "unlimited".
documented_limits(vendor) -> dict[bucket, RateLimit|None]   from the vendor's SPEC (connectors/<vendor>.py):
    omnisend 400/min + "tags" 60/min, leadspace 30/s, sendgrid/iterable None = pace from 429s only

HttpClient(vendor, base_url, *, headers=None, auth_headers=None, secrets=(), transport=None, timeout=DEFAULT_TIMEOUT,
           retry=None, rate_limits=None, sleep=time.sleep, clock=time.time, rand=random.random, on_wait=None)
    .on_wait(vendor, seconds_left, reason)   optional listener (settable later, see set_wait_listener):
        called before every step (<= WAIT_NOTICE_INTERVAL_S) of a rate-limit wait with the seconds still
        to wait, reason "rate_limit" (RATE_LIMIT). It may raise (e.g. the run was cancelled) to abort the
        wait; the exception propagates out of .request(). Called once with the wait asked for and reason
        "rate_limit_budget_exhausted" just before a RateLimitedError(budget_exhausted) is raised.
    .rate_limit_waited_s                 total rate-limit waiting so far (what the budget is charged)
    .request(method, path, *, bucket="default", json=None, params=None, content=None, headers=None,
             ok=(200, 201, 202, 204), on_error=None) -> httpx.Response
        Retries 429/5xx/connect/read/timeouts per RetryPolicy; statuses in `ok` are returned, anything
        else raises a ConnectorError (`on_error(resp)` may return a more specific one first).
    .get/.post/.put/.delete(path, **kw)  shortcuts;  .json(resp) parse or VendorError
    .close(); context manager.
    auth_headers are sent only to base_url's origin (absolute URLs elsewhere never get the key).
    Per-request overhead (issue 16): the headers of an own-origin request (with and without a JSON body)
    and the timeouts are prepared once, absolute URLs of fixed paths are cached (URL_CACHE_SIZE), and each
    attempt goes straight to the httpx client's transport (no auth flow, redirects or cookie jar, none of
    which a vendor API here uses); the wire bytes are what httpx.Client.request sent.
coalesce_writes(httpx_client) -> bool    the default transport sends a request's head and body (up to
    COALESCE_MAX_BYTES) in one socket write instead of two (applied by HttpClient when no transport is given)
make_http_client(...)  same arguments as HttpClient (the one factory).
poll_until(check, *, sleep, interval_s, max_interval_s, max_wait_s, growth=1.5, first_wait_s=0, on_timeout)
    the one loop polling one asynchronous vendor job (SendGrid imports, Omnisend batches)
set_wait_listener(client, on_wait) -> bool   attach on_wait to a vendor client's HttpClient (client.http)
retry_wait_s(resp, *, clock) -> float|None   wait implied by Retry-After / X-RateLimit-Reset (epoch) /
    X-Rate-Limit-Reset (seconds left) / body {"retryAfter": s}
redact(text, secrets) -> str             replace every secret with "***"
RedactingFilter(secrets=None)           logging.Filter; redacts registered + given secrets
register_secret(secret)                 add to the process-wide set redacted by RedactingFilter
get_logger(name) -> logging.Logger      logger with the RedactingFilter attached

All waiting goes through the injected `sleep`, all time through `clock`, so tests never really wait.
"""
from __future__ import annotations

import email.utils
import functools
import logging
import random
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, TypeVar

import httpcore
import httpx
import orjson

from connectors.errors import (
    ConnectorError,
    RateLimitedError,
    TransientError,
    VendorError,
    VendorUnreachableError,
    error_for_status,
    human_seconds,
    vendor_label,
)

MAX_WAIT_S = 120.0
DEFAULT_RATE_LIMIT_BUDGET_S = 30 * 60.0   # issue 13: vendors throttle for minutes at a time
WAIT_NOTICE_INTERVAL_S = 5.0              # countdown granularity of a rate-limit wait (and cancel latency)
RATE_LIMIT = "rate_limit"                 # on_wait reasons: waiting out a rate limit ...
RATE_LIMIT_BUDGET_EXHAUSTED = "rate_limit_budget_exhausted"   # ... or about to stop: the wait is over budget
DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=30.0, write=30.0, pool=10.0)
DEFAULT_LIMITS = httpx.Limits(max_connections=10, max_keepalive_connections=10, keepalive_expiry=30.0)

URL_CACHE_SIZE = 256                      # prepared absolute URLs kept per client (fixed paths repeat)
COALESCE_MAX_BYTES = 64 * 1024            # request head + body up to this size go out in one socket write

# ---------------------------------------------------------------- redaction

_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()
REDACTED = "***"


def register_secret(secret: str | None) -> None:
    """Remember a secret so every RedactingFilter removes it from log lines."""
    if secret and len(secret) >= 4:
        with _SECRETS_LOCK:
            _SECRETS.add(secret)


def redact(text: Any, secrets: Iterable[str | None] = ()) -> str:
    """Return `text` as str with each (non-trivial) secret replaced by '***'."""
    out = text if isinstance(text, str) else str(text)
    # longest first so a secret containing another is fully removed
    for s in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        if s in out:
            out = out.replace(s, REDACTED)
    return out


class RedactingFilter(logging.Filter):
    """Logging filter: formats the record's message and redacts secrets from it (and exc text)."""

    def __init__(self, secrets: Iterable[str] | None = None) -> None:
        super().__init__()
        self.extra = set(secrets or ())

    def filter(self, record: logging.LogRecord) -> bool:
        with _SECRETS_LOCK:
            secrets = set(_SECRETS) | self.extra
        if not secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not break logging
            message = str(record.msg)
        record.msg = redact(message, secrets)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            # pre-render the traceback text redacted; handlers reuse exc_text
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info), secrets)
            record.exc_info = None
        return True


_FILTER = RedactingFilter()


def get_logger(name: str) -> logging.Logger:
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger


# httpx logs request URLs at INFO; some vendors may carry keys in query strings.
for _name in ("httpx", "httpcore"):
    get_logger(_name)

log = get_logger("connectors.http")

# ---------------------------------------------------------------- rate limiting


@dataclass(frozen=True)
class RateLimit:
    count: int
    period_s: float

    @property
    def per_s(self) -> float:
        return self.count / self.period_s


T = TypeVar("T")


def documented_limits(vendor: str) -> dict[str, RateLimit | None]:
    """The rate limits the vendor documents (its SPEC in connectors/<vendor>.py); {} for an unknown vendor."""
    from connectors import registry   # here: the vendor modules import this one

    spec = registry.SPECS.get(vendor)
    return dict(spec.rate_limits) if spec else {}


class RateLimiter:
    """Client-side sliding-window limiter with named buckets (thread-safe)."""

    def __init__(
        self,
        limits: Mapping[str, RateLimit | None] | None = None,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.limits = dict(limits or {})
        self.clock = clock
        self.sleep = sleep
        self._sent: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self.waited_s = 0.0  # total time spent waiting (for diagnostics/bench)

    def _limit(self, bucket: str) -> tuple[str, RateLimit | None]:
        if bucket in self.limits:
            return bucket, self.limits[bucket]
        return "default", self.limits.get("default")

    def acquire(self, bucket: str = "default") -> None:
        name, limit = self._limit(bucket)
        if limit is None:
            return
        while True:
            with self._lock:
                now = self.clock()
                sent = self._sent.setdefault(name, deque())
                while sent and sent[0] <= now - limit.period_s:
                    sent.popleft()
                if len(sent) < limit.count:
                    sent.append(now)
                    return
                wait = sent[0] + limit.period_s - now
            wait = max(wait, 0.001)
            self.waited_s += wait
            self.sleep(wait)


# ---------------------------------------------------------------- retry policy


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5            # tries for 5xx and transport failures (rate limiting is not counted)
    base_backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    max_wait_s: float = MAX_WAIT_S   # longest wait a 5xx may ask for
    retry_statuses: frozenset[int] = field(default_factory=lambda: frozenset({429, 500, 502, 503, 504}))
    rate_limit_budget_s: float = DEFAULT_RATE_LIMIT_BUDGET_S   # total rate-limit waiting per client (= run)

    def backoff_s(self, attempt: int, rand: Callable[[], float]) -> float:
        """Exponential backoff with jitter: attempt 1 -> ~base, doubling, capped."""
        ceiling = min(self.max_backoff_s, self.base_backoff_s * (2 ** (attempt - 1)))
        return ceiling / 2 + rand() * ceiling / 2  # "equal jitter": never zero, never above ceiling


def _parse_float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def retry_wait_s(resp: httpx.Response, *, clock: Callable[[], float] = time.time) -> float | None:
    """The wait a throttled/unavailable response asks for, or None if it says nothing."""
    headers = resp.headers
    ra = headers.get("retry-after")
    if ra is not None:
        secs = _parse_float(ra)
        if secs is not None:
            return max(0.0, secs)
        try:
            when = email.utils.parsedate_to_datetime(ra)
        except (TypeError, ValueError, IndexError):
            when = None
        if when is not None:
            return max(0.0, when.timestamp() - clock())
    # SendGrid: X-RateLimit-Reset is a Unix epoch
    reset = _parse_float(headers.get("x-ratelimit-reset"))
    if reset is not None:
        return max(0.0, reset - clock())
    # Omnisend: X-Rate-Limit-Reset is seconds left
    reset_left = _parse_float(headers.get("x-rate-limit-reset"))
    if reset_left is not None:
        return max(0.0, reset_left)
    # Omnisend 2026: {"retryAfter": seconds} in the body
    if "json" in headers.get("content-type", "") or resp.content[:1] == b"{":
        try:
            body = resp.json()
        except (ValueError, UnicodeDecodeError):
            body = None
        if isinstance(body, dict):
            secs = _parse_float(body.get("retryAfter"))
            if secs is not None:
                return max(0.0, secs)
    return None


def is_rate_limited(resp: httpx.Response) -> bool:
    """429, or a retryable status that says the rate-limit window is used up (some gateways answer 503
    with the vendor's X-RateLimit-Remaining: 0)."""
    if resp.status_code == 429:
        return True
    headers = resp.headers
    for name in ("x-ratelimit-remaining", "x-rate-limit-remaining"):
        remaining = _parse_float(headers.get(name))
        if remaining is not None and remaining <= 0:
            return True
    return False


# ---------------------------------------------------------------- client

_RETRYABLE_TRANSPORT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.ReadError,
    httpx.ReadTimeout,
    httpx.WriteError,
    httpx.WriteTimeout,
    httpx.PoolTimeout,
    httpx.RemoteProtocolError,
)


class HttpClient:
    """One pooled httpx.Client per connection, with retries, pacing and redaction."""

    def __init__(
        self,
        vendor: str,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        auth_headers: Mapping[str, str] | None = None,
        secrets: Iterable[str | None] = (),
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        rate_limits: Mapping[str, RateLimit | None] | None = None,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] | None = None,
        rand: Callable[[], float] | None = None,
        on_wait: Callable[[str, float, str], None] | None = None,
    ) -> None:
        self.vendor = vendor
        self.base_url = base_url.rstrip("/")
        self.secrets = tuple(s for s in secrets if s)
        for s in self.secrets:
            register_secret(s)
        self.sleep = sleep or time.sleep
        self.clock = clock or time.time
        self.rand = rand or random.random
        self.retry = retry or RetryPolicy()
        self.limiter = RateLimiter(rate_limits, clock=self.clock, sleep=self.sleep)
        self.requests_sent = 0
        self.on_wait = on_wait
        self.rate_limit_waited_s = 0.0
        self._budget_lock = threading.Lock()   # the budget is shared by every thread using this client
        # Auth headers are added per request and ONLY for our own origin, so absolute URLs the vendor
        # hands us (e.g. SendGrid errors_url on a storage host) never receive the key.
        self.auth_headers = dict(auth_headers or {})
        self._origin = httpx.URL(self.base_url).copy_with(path="/", query=None)
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=dict(headers or {}),
            timeout=timeout,
            transport=transport,
            limits=DEFAULT_LIMITS,
            follow_redirects=False,
            verify=tls_context_for(self.base_url),
        )
        if transport is None:
            coalesce_writes(self._client)
        # Prepared once (issue 16: merging/parsing them was ~20 % of a request's CPU): the headers of a request
        # to our own origin, without and with a JSON body, and the timeouts; absolute URLs by path.
        own = httpx.Headers(self._client.headers)
        own.update(self.auth_headers)
        self._own_headers = own
        self._own_json_headers = httpx.Headers(own)
        self._own_json_headers["Content-Type"] = "application/json"
        self._extensions = {"timeout": self._client.timeout.as_dict()}
        self._base_str = str(self._client.base_url).rstrip("/")
        self._urls: dict[str, httpx.URL] = {}

    # -- helpers
    def redact(self, text: Any) -> str:
        return redact(text, self.secrets)

    @property
    def label(self) -> str:
        return vendor_label(self.vendor)

    def json(self, resp: httpx.Response) -> Any:
        try:
            return orjson.loads(resp.content)
        except (ValueError, UnicodeDecodeError):
            raise VendorError(
                f"{self.label} returned an answer we could not read.",
                status=resp.status_code,
                vendor=self.vendor,
                detail=self.redact(resp.text[:300]),
            ) from None

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "HttpClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("PUT", path, **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("DELETE", path, **kw)

    def _same_origin(self, path: str) -> bool:
        if not path.startswith(("http://", "https://")):
            return True
        url = httpx.URL(path)
        return (url.scheme, url.host, url.port) == (self._origin.scheme, self._origin.host, self._origin.port)

    def _prepare(self, path: str, params: Any, headers: Mapping[str, str] | None,
                 json_body: bool) -> tuple[httpx.URL, httpx.Headers]:
        """The absolute URL and the full headers of a request, built once per call (not per attempt).
        A relative path without extra headers takes the prepared headers and a cached URL; the rest is
        merged as httpx.Client would (auth headers only for our own origin)."""
        relative = path.startswith("/")
        if relative and (not headers or (json_body and len(headers) == 1)):
            prepared = self._own_json_headers if json_body else self._own_headers
        else:
            prepared = httpx.Headers(self._client.headers)
            if self.auth_headers and self._same_origin(path):
                prepared.update(self.auth_headers)
            prepared.update(headers or {})
        if not relative or "?" in path or "#" in path:
            return self._client.build_request("GET", path, params=params).url, prepared
        if params:
            return httpx.URL(f"{self._base_str}{path}?{httpx.QueryParams(params)}"), prepared
        url = self._urls.get(path)
        if url is None:
            url = httpx.URL(self._base_str + path)
            if len(self._urls) >= URL_CACHE_SIZE:   # paths carrying ids would grow it without bound
                self._urls.clear()
            self._urls[path] = url
        return url, prepared

    def _send(self, method: str, url: httpx.URL, headers: httpx.Headers, content: bytes | str | None) -> httpx.Response:
        """One attempt: the request straight to the client's transport. httpx.Client.send would add auth
        flows, redirects and a cookie jar, none of which a vendor API here uses (redirects are not followed
        and come back as a status error, as before). The body is read and the connection released."""
        if self._client.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")   # as httpx.Client
        request = httpx.Request(method, url, headers=headers, content=content, extensions=self._extensions)
        response = self._client._transport_for_url(url).handle_request(request)
        response.request = request
        try:
            response.read()
        finally:
            response.close()
        return response

    # -- the one request loop
    def request(
        self,
        method: str,
        path: str,
        *,
        bucket: str = "default",
        json: Any = None,
        params: Any = None,
        content: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        ok: Iterable[int] = (200, 201, 202, 204),
        on_error: Callable[[httpx.Response], ConnectorError | None] | None = None,
    ) -> httpx.Response:
        ok_statuses = ok if isinstance(ok, frozenset) else frozenset(ok)
        if json is not None and content is None:
            # serialise once, not once per attempt
            content = orjson.dumps(json, option=orjson.OPT_NON_STR_KEYS)
            headers = {**(headers or {}), "Content-Type": "application/json"}
        url, prepared = self._prepare(path, params, headers, json_body=json is not None)
        policy = self.retry
        attempt = 0          # requests sent for this call (for messages)
        failures = 0         # 5xx / transport failures of this call: what max_attempts caps
        throttled = 0        # rate-limit answers for this call (for the back-off without a hint)
        while True:
            attempt += 1
            self.limiter.acquire(bucket)
            try:
                self.requests_sent += 1
                resp = self._send(method, url, prepared, content)
            except _RETRYABLE_TRANSPORT as exc:
                kind = type(exc).__name__
                failures += 1
                if failures >= policy.max_attempts:
                    raise self._transport_error(exc, failures) from None
                wait = policy.backoff_s(failures, self.rand)
                log.warning("%s %s %s failed (%s), attempt %d; retrying in %.2fs",
                            self.vendor, method, self.redact(path), kind, attempt, wait)
                self.sleep(wait)
                continue
            except httpx.HTTPError as exc:  # anything else httpx raises (invalid URL, etc.)
                raise VendorUnreachableError(
                    f"We could not talk to {self.label}: {self.redact(type(exc).__name__)}.",
                    vendor=self.vendor,
                    detail=self.redact(exc),
                ) from None

            status = resp.status_code
            if status in ok_statuses:
                return resp
            if status in policy.retry_statuses and is_rate_limited(resp):
                throttled += 1
                hinted = retry_wait_s(resp, clock=self.clock)
                wait = hinted if hinted is not None else policy.backoff_s(throttled, self.rand)
                self._wait_out_rate_limit(resp, wait, jitter=hinted is not None, what=f"{method} {path}")
                continue
            if status in policy.retry_statuses:
                wait = retry_wait_s(resp, clock=self.clock)
                failures += 1
                if wait is not None and wait > policy.max_wait_s:
                    raise self._gave_up(resp, failures, wait)
                if failures >= policy.max_attempts:
                    raise self._gave_up(resp, failures, wait)
                if wait is None:
                    wait = policy.backoff_s(failures, self.rand)
                else:
                    wait += 0.05 * self.rand()  # tiny jitter so parallel workers don't stampede
                log.warning("%s %s %s -> %d, attempt %d; retrying in %.2fs",
                            self.vendor, method, self.redact(path), status, attempt, wait)
                self.sleep(wait)
                continue
            raise self._status_error(resp, on_error)

    # -- rate limiting
    def _wait_out_rate_limit(self, resp: httpx.Response, wait: float, *, jitter: bool, what: str) -> None:
        """Wait as long as the vendor asked, charged to the budget; stop (raise) when it does not fit."""
        budget = self.retry.rate_limit_budget_s
        with self._budget_lock:
            left = budget - self.rate_limit_waited_s
            over = wait > left
            if not over:
                if jitter:   # a little spread so parallel workers don't all come back in the same instant
                    wait = min(left, wait + 0.05 * self.rand())
                self.rate_limit_waited_s += wait   # charged up front: threads waiting at once share the budget
        if over:
            if self.on_wait is not None:   # tell the listener why the run is about to stop (it may pause it)
                self.on_wait(self.vendor, wait, RATE_LIMIT_BUDGET_EXHAUSTED)
            raise self._over_budget(resp, wait, budget)
        log.warning("%s %s -> %d (rate limited); waiting %.1fs (%.0fs of the %.0fs budget used)",
                    self.vendor, self.redact(what), resp.status_code, wait, self.rate_limit_waited_s, budget)
        self._announced_sleep(wait, RATE_LIMIT)

    def _announced_sleep(self, seconds: float, reason: str) -> None:
        """Sleep in steps of at most WAIT_NOTICE_INTERVAL_S, telling on_wait how long is left before each
        step, so a long wait shows a live countdown and a cancel (on_wait raising) stops it promptly.
        Nobody listening: one sleep."""
        if self.on_wait is None:
            self.sleep(seconds)
            return
        left = seconds
        while left > 0:
            self.on_wait(self.vendor, left, reason)
            step = min(left, WAIT_NOTICE_INTERVAL_S)
            self.sleep(step)
            left -= step

    def _over_budget(self, resp: httpx.Response, wait: float, budget: float) -> RateLimitedError:
        retry_at = self.clock() + wait
        when = time.strftime("%H:%M", time.localtime(retry_at))
        used = self.rate_limit_waited_s
        spent = f" (after waiting {human_seconds(used)} already)" if used >= 1 else ""
        message = (f"{self.label} is limiting how fast we can send. Try again in about {human_seconds(wait)} "
                   f"(after {when}): it asked for a longer wait than the {human_seconds(budget)} we may spend "
                   f"waiting for its rate limit{spent}.")
        return RateLimitedError(message, retry_after_s=wait, retry_at=retry_at, budget_exhausted=True,
                                status=resp.status_code, vendor=self.vendor, detail=self._detail(resp))

    # -- error building
    def _detail(self, resp: httpx.Response) -> str:
        return self.redact(f"HTTP {resp.status_code}: {resp.text[:500]}")

    def _status_error(
        self, resp: httpx.Response, on_error: Callable[[httpx.Response], ConnectorError | None] | None
    ) -> ConnectorError:
        err = on_error(resp) if on_error else None
        if err is None:
            err = error_for_status(resp.status_code, self.vendor, detail=self._detail(resp))
        else:
            err.user_message = self.redact(err.user_message)
            err.args = (err.user_message,)
            if err.detail is None:
                err.detail = self._detail(resp)
        log.info("%s %s -> %s: %s", self.vendor, resp.request.url.path if resp.request else "",
                 type(err).__name__, err.detail)
        return err

    def _gave_up(self, resp: httpx.Response, attempt: int, wait: float | None) -> ConnectorError:
        detail = self._detail(resp)
        if resp.status_code == 429:
            return RateLimitedError(
                retry_after_s=wait if wait is not None else max(60.0, self.retry.max_backoff_s),
                status=429, vendor=self.vendor, detail=detail,
            )
        if wait is not None and wait > self.retry.max_wait_s:
            return TransientError(
                f"{self.label} is temporarily unavailable. Try again in about {int(wait // 60) + 1} minutes.",
                status=resp.status_code, vendor=self.vendor, detail=detail,
            )
        return TransientError(
            f"{self.label} kept failing (HTTP {resp.status_code}) after {attempt} tries. Try again in a few minutes.",
            status=resp.status_code, vendor=self.vendor, detail=detail,
        )

    def _transport_error(self, exc: Exception, attempt: int) -> ConnectorError:
        detail = self.redact(f"{type(exc).__name__}: {exc}")
        if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
            return VendorUnreachableError(
                f"We could not reach {self.label} after {attempt} tries. Check the network and the base URL.",
                vendor=self.vendor, detail=detail,
            )
        if isinstance(exc, httpx.TimeoutException):
            return TransientError(
                f"{self.label} did not answer in time after {attempt} tries. Try again in a few minutes.",
                vendor=self.vendor, detail=detail,
            )
        return TransientError(
            f"The connection to {self.label} kept dropping after {attempt} tries. Try again in a few minutes.",
            vendor=self.vendor, detail=detail,
        )


@functools.lru_cache(maxsize=1)
def _verifying_tls_context() -> ssl.SSLContext:
    """httpx's own default (certifi's CA bundle, hostname checks), built once per process: loading the CA
    bundle costs ~0.1 s, which every client paid again."""
    return httpx.create_ssl_context()


def tls_context_for(base_url: str) -> ssl.SSLContext:
    """The TLS context of a client for base_url. An https vendor gets the verifying default (shared).
    A plain-http base URL (a loopback emulator) needs no CA bundle: its context trusts no certificate at
    all, so a TLS connection from such a client (none is made: absolute URLs elsewhere are never followed
    to another scheme) would fail verification instead of being trusted."""
    if str(base_url).lower().startswith("https://"):
        return _verifying_tls_context()
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)   # verify mode CERT_REQUIRED, hostname check, no CAs


class _CoalescingStream(httpcore.NetworkStream):
    """httpcore writes a request's head and its body in two socket writes; on a loopback or LAN that is
    two system calls (and two wake-ups of the server) per request. This holds small writes until the
    stream is read (the response is awaited) or they would exceed COALESCE_MAX_BYTES, so a request of a
    few tens of KB goes out in one write. Large bodies are written as they come, without a joining copy."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._timeout: float | None = None

    def _flush(self) -> None:
        if self._pending:
            data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
            self._pending, self._pending_bytes = [], 0
            self._inner.write(data, self._timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        self._timeout = timeout
        if self._pending_bytes + len(buffer) > COALESCE_MAX_BYTES:
            self._flush()
            if len(buffer) > COALESCE_MAX_BYTES:
                self._inner.write(buffer, timeout)
                return
        self._pending.append(buffer)
        self._pending_bytes += len(buffer)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self._flush()
        return self._inner.read(max_bytes, timeout)

    def close(self) -> None:
        self._pending, self._pending_bytes = [], 0
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        self._flush()
        return _CoalescingStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _CoalescingBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(self, *args: Any, **kw: Any) -> httpcore.NetworkStream:
        return _CoalescingStream(self._inner.connect_tcp(*args, **kw))

    def connect_unix_socket(self, *args: Any, **kw: Any) -> httpcore.NetworkStream:
        return _CoalescingStream(self._inner.connect_unix_socket(*args, **kw))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def coalesce_writes(client: httpx.Client) -> bool:
    """Give the client's default transport (httpx's HTTPTransport over an httpcore ConnectionPool) write
    coalescing. False when the transport is not that (a test transport, another httpx): nothing changes."""
    pool = getattr(getattr(client, "_transport", None), "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if not isinstance(pool, httpcore.ConnectionPool) or backend is None or isinstance(backend, _CoalescingBackend):
        return False
    pool._network_backend = _CoalescingBackend(backend)
    return True


def make_http_client(vendor: str, base_url: str, **kw: Any) -> HttpClient:
    """The one factory for vendor HTTP clients (see HttpClient for keywords)."""
    return HttpClient(vendor, base_url, **kw)


def set_wait_listener(client: Any, on_wait: Callable[[str, float, str], None] | None) -> bool:
    """Attach ``on_wait`` to a vendor client's HttpClient (``client.http``, or the client itself).
    False when the client has none (a test double): its waits then go unannounced."""
    http = client if isinstance(client, HttpClient) else getattr(client, "http", None)
    if not isinstance(http, HttpClient):
        return False
    http.on_wait = on_wait
    return True


def poll_until(check: Callable[[], T | None], *, sleep: Callable[[float], None], interval_s: float,
               max_interval_s: float, max_wait_s: float, growth: float = 1.5, first_wait_s: float = 0.0,
               on_timeout: Callable[[], BaseException]) -> T:
    """Poll an asynchronous vendor job: ``check()`` returns the result, or None while it is not done.

    Waits ``first_wait_s`` before the first check, then ``interval_s`` growing by ``growth`` up to
    ``max_interval_s`` between checks; once the waits add up to ``max_wait_s`` and the job is still not
    done, raises ``on_timeout()`` (a TransientError carrying a resume hint, so a later run collects it).
    ``check`` may raise to stop early (a batch the vendor stopped)."""
    waited = 0.0
    if first_wait_s > 0:
        sleep(first_wait_s)
        waited += first_wait_s
    interval = interval_s
    while True:
        result = check()
        if result is not None:
            return result
        if waited >= max_wait_s:
            raise on_timeout()
        sleep(interval)
        waited += interval
        interval = min(max_interval_s, interval * growth)


def limits_for(vendor: str, rate_limits: bool | Mapping[str, RateLimit | None] | None) -> dict[str, RateLimit | None]:
    """Resolve the `rate_limits` constructor argument: True = documented limits, False/None = none,
    a mapping = those limits."""
    if rate_limits is True:
        return documented_limits(vendor)
    if not rate_limits:
        return {}
    return dict(rate_limits)


class VendorClient:
    """What every vendor client shares: one HttpClient with the vendor's auth headers, documented
    rate limits and retry policy; close() and use as a context manager. Subclasses set ``vendor`` and
    ``default_base_url`` and call :meth:`_init_http` from their constructor."""

    vendor: str = ""
    default_base_url: str = ""

    def _init_http(self, api_key: str, auth_headers: dict[str, str], *, base_url: str | None = None,
                   transport: httpx.BaseTransport | None = None, rate_limits: Any = True,
                   sleep: Callable[[float], None] | None = None, clock: Callable[[], float] | None = None,
                   timeout: Any = None, retry: "RetryPolicy | None" = None,
                   rand: Callable[[], float] | None = None, extra_headers: dict[str, str] | None = None) -> None:
        headers = {"Accept": "application/json", "User-Agent": "insight-relay", **(extra_headers or {})}
        kw: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        self.http = HttpClient(
            self.vendor, base_url or self.default_base_url, headers=headers, auth_headers=auth_headers,
            secrets=[api_key], transport=transport, retry=retry, rate_limits=limits_for(self.vendor, rate_limits),
            sleep=sleep, clock=clock, rand=rand, **kw,
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
