"""Omnisend sandbox: emulates the 2026-03-15 API (contacts, contact tags, batches, brands).

API
---
OmnisendEmulator(*, clock=None, sleep=None, batch_delay_s=0.0)
    Emulator subclass (see connectors/sandbox/common.py for faults, rate limits, transport()).
    Knobs (plain attributes, change any time):
      batch_delay_s: float          a batch is pending for the first quarter of this delay, then
                                    inProgress, then finished (on the injected clock). Default 0 =
                                    finished at once (the 1M-contact bench needs it); set e.g. 2.0 to
                                    show pending/inProgress batches in a demo.
      supported_versions: set[str]  {"2026-03-15"}; remove it to emulate a retired version (410).
      max_batch_bytes: int          request bodies above this get 413 (1 MiB).
      failing_emails: set[str]      batch items for these (lower-cased) emails fail with 400 (fault knob)
      fail_next_batches: int        the next N batches finish with every item failed (500 per item)
      process_in_background: bool   False (default): with batch_delay_s 0 a batch is processed inside
                                    its POST. True (set by `manage.py sandbox`, a separate process
                                    like the real service): POST answers 201 at once and a worker
                                    thread processes the batch, as Omnisend does; until then it
                                    reads inProgress (a poll that comes first processes it itself).
      list_newest_first: bool       GET /api/batches order: False (default) oldest first, True newest
                                    first (the spec names none; clients must cope with either)
    State: contacts by email (tags, fields, status), batches. `contact(email) -> dict|None`,
    `contacts_with_tag(tag) -> list[str]`, `batch(batch_id) -> dict|None`, `batch_ids()`,
    `contact_count` for tests.
    snapshot(): contacts total, contacts per tag (+ up to max_members emails per tag), recent batches
    with status and counts, batch counts by status, request counters.

Routes (base https://api.omnisend.com, paths /api/...):
    GET  /api/brands/current
    POST /api/contacts                 201 created / 200 updated (upsert by email identifier)
    GET  /api/contacts                 cursor paging (limit 1-250, after/before), email/tag filters
    GET  /api/contacts/{id}
    POST /api/contacts/tags            202; DELETE /api/contacts/tags 202 (unknown emails ignored)
    POST /api/batches                  201 {batchID,totalCount}; body validated with jsonschema against
                                       the spec's CreateBatchRequest (compiled once); each contact
                                       item validated by a cheap checker derived from ContactRequest
    GET  /api/batches                  the spec's listing: endpoint required, offset, limit 1-250 (default
                                       100), status, dateFrom/dateTo (yyyy-mm-dd, UTC days, inclusive);
                                       {batches:[Batch], paging:{limit,offset,next?,previous?}}; oldest
                                       first (knob list_newest_first: newest first; the spec names no order)
    GET  /api/batches/{id}             Batch (status pending|inProgress|finished)
    GET  /api/batches/{id}/items       Batch with responses[] (ok items: responseCode 201/200 and
                                       response {id, email}) and errors[] (failed items: the original
                                       request + responseCode 400 and a ValidationProblem as response)

Policies (emulator choices, stated because the docs are silent):
- Auth: `Authorization: Omnisend-API-Key <key>` (or `Bearer <token>`); sandbox key policy of
  common.py (keys starting "invalid" -> 401 Problem).
- Omnisend-Version: MISSING -> 400 ValidationProblem (the spec marks the header required, and
  missing required input is a 400 in this API); any value not in `supported_versions` -> 410
  Problem "API version retired" (unknown and retired versions are indistinguishable to a client).
- Errors are RFC 9457 Problem bodies (application/problem+json); 429 adds `retryAfter` (seconds) in
  the body and X-Rate-Limit-Limit/-Remaining/-Reset (seconds left) headers. With rate limits
  enabled: 400/min ("default") and 60/min for /api/contacts/tags ("tags"), fixed one-minute windows.
- Upsert: POST adds the item's tags to the contact's tags (never removes), overwrites the fields it
  sends; a new contact gets status from the email channel (default nonSubscribed). Batch method PUT
  updates existing contacts only (404 per item otherwise). Emails are stored lower-cased.
- Tag requests are applied immediately (Omnisend applies them asynchronously; the sandbox is faster).
"""
from __future__ import annotations

import base64
import bisect
import calendar
import itertools
import re
import sys
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable

import httpx
import jsonschema
import orjson

from connectors.sandbox.common import Emulator, json_response

API_VERSION = "2026-03-15"
MAX_BATCH_BYTES = 1_048_576
MAX_TAGS_PER_CONTACT = 100
LIST_LIMIT_DEFAULT = 100
LIST_LIMIT_MAX = 250
SNAPSHOT_SCAN_MAX = 200_000  # contacts scanned for member samples in snapshot()
RECENT_BATCHES = 50
LIST_ENDPOINTS = ("products", "contacts", "events")            # GET /api/batches endpoint enum
BATCH_STATUSES = ("pending", "inProgress", "finished", "stopped")   # GET /api/batches status enum
DAY_S = 86_400.0
_DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# --- schemas copied verbatim (minus examples/descriptions) from
# vendor-specs/omnisend-2026/omnisend-batches-api-2026-03-15.json and ...contacts-api-... .json
CREATE_BATCH_REQUEST_SCHEMA: dict = {
    "properties": {
        "endpoint": {"enum": ["products", "contacts", "events", "categories"], "type": "string"},
        "items": {"items": {}, "maxItems": 100, "minItems": 1, "type": "array"},
        "method": {"enum": ["POST", "PUT"], "type": "string"},
        "origin": {"type": "string"},
    },
    "required": ["endpoint", "items", "method"],
    "type": "object",
}
_TAGS_SELECTORS = {
    "contactIDs": {"items": {"type": "string"}, "maxItems": 250, "type": "array"},
    "emails": {"items": {"type": "string"}, "maxItems": 250, "type": "array"},
    "phones": {"items": {"type": "string"}, "maxItems": 250, "type": "array"},
    "segmentID": {"type": "string"},
    "tags": {"items": {"type": "string"}, "maxItems": 100, "minItems": 1, "type": "array"},
}
TAGS_REQUEST_SCHEMA: dict = {"properties": _TAGS_SELECTORS, "required": ["tags"], "type": "object"}

# ContactRequest property -> JSON type (from the spec; the spec gives no maxLength for any field).
CONTACT_REQUEST_TYPES: dict[str, str] = {
    "address": "string", "birthdate": "string", "city": "string", "country": "string",
    "countryCode": "string", "createdAt": "string", "customProperties": "object",
    "firstName": "string", "gender": "string", "identifiers": "array", "lastName": "string",
    "postalCode": "string", "state": "string", "tags": "array",
}
IDENTIFIER_TYPES = ("email", "phone")
CHANNEL_STATUSES = ("subscribed", "nonSubscribed", "unsubscribed")
GENDERS = ("m", "f")
_PY_TYPES = {"string": str, "object": dict, "array": list, "boolean": bool}
_TYPE_CHECKS: dict[str, type] = {k: _PY_TYPES[v] for k, v in CONTACT_REQUEST_TYPES.items()}

# Stored contact fields, in this order, joined with \x1f to keep 1M contacts small.
_FIELDS = ("firstName", "lastName", "address", "city", "state", "country", "countryCode", "postalCode",
           "birthdate", "gender")
_SEP = "\x1f"
_EMPTY_FIELDS = _SEP * (len(_FIELDS) - 1)

EMAIL_RE = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
MAX_EMAIL_LEN = 254

def _without_empty_subschemas(schema: Any) -> Any:
    """Drop `"items": {}` (accepts anything) so jsonschema does not descend into 100 items for nothing;
    validation results are identical."""
    if isinstance(schema, dict):
        return {k: _without_empty_subschemas(v) for k, v in schema.items() if not (k == "items" and v == {})}
    return schema


# compiled once; item bodies are checked by check_contact_item (cheap, derived from ContactRequest)
_BATCH_VALIDATOR = jsonschema.Draft7Validator(_without_empty_subschemas(CREATE_BATCH_REQUEST_SCHEMA))
_TAGS_VALIDATOR = jsonschema.Draft7Validator(TAGS_REQUEST_SCHEMA)
PROBLEM_TYPE = "https://problems.omnisend.com/"


_ISO_CACHE: dict[int, str] = {}


def iso(ts: float) -> str:
    """RFC 3339 UTC seconds; cached because a whole batch shares one timestamp."""
    key = int(ts)
    got = _ISO_CACHE.get(key)
    if got is None:
        if len(_ISO_CACHE) > 4096:
            _ISO_CACHE.clear()
        got = _ISO_CACHE[key] = datetime.fromtimestamp(key, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return got


def problem(status: int, title: str, detail: str, *, errors: list[dict] | None = None,
            headers: dict[str, str] | None = None, **extra: Any) -> httpx.Response:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-"),
        "title": title, "status": status, "detail": detail,
        "instance": f"urn:omnisend:request:sandbox-{time.monotonic_ns():x}",
    }
    if errors is not None:
        body["errors"] = errors
    body.update(extra)
    h = {"content-type": "application/problem+json"}
    if headers:
        h.update(headers)
    return httpx.Response(status, content=orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS), headers=h)


def validation_problem(detail: str, errors: list[dict]) -> httpx.Response:
    return problem(400, "Validation failed", detail, errors=errors)


def _schema_errors(validator: jsonschema.Draft7Validator, body: Any) -> list[dict]:
    out = []
    for err in validator.iter_errors(body):
        field = ".".join(str(p) for p in err.absolute_path) or "body"
        out.append({"field": field, "code": err.validator, "message": err.message[:300]})
        if len(out) >= 20:
            break
    return out


def check_contact_item(item: Any) -> tuple[str | None, str, list[dict]]:
    """Cheap ContactRequest check. Returns (email lower-cased or None, email status, field errors)."""
    if type(item) is not dict:
        return None, "", [{"field": "body", "code": "type", "message": "Contact must be an object"}]
    type_checks = _TYPE_CHECKS
    errors: list[dict] = []
    for key, value in item.items():
        t = type_checks.get(key)
        if t is not None and type(value) is not t and not isinstance(value, t):
            errors.append({"field": key, "code": "type",
                           "message": f"Must be of type {CONTACT_REQUEST_TYPES[key]}"})
    if errors:
        return None, "", errors
    gender = item.get("gender")
    if gender is not None and gender not in GENDERS:
        errors.append({"field": "gender", "code": "enum", "message": "Must be one of: m, f"})
    tags = item.get("tags")
    if tags:
        if len(tags) > MAX_TAGS_PER_CONTACT:
            errors.append({"field": "tags", "code": "maxItems", "message": "At most 100 tags"})
        else:
            for t in tags:
                if type(t) is not str or not t:
                    errors.append({"field": "tags", "code": "type", "message": "Tags must be non-empty strings"})
                    break
    email: str | None = None
    status = "nonSubscribed"
    for i, ident in enumerate(item.get("identifiers") or ()):
        if type(ident) is not dict:
            errors.append({"field": f"identifiers.{i}", "code": "type", "message": "Must be an object"})
            continue
        itype, ivalue = ident.get("type"), ident.get("id")
        if itype not in IDENTIFIER_TYPES:
            errors.append({"field": f"identifiers.{i}.type", "code": "enum", "message": "Must be one of: email, phone"})
            continue
        if type(ivalue) is not str or not ivalue:
            errors.append({"field": f"identifiers.{i}.id", "code": "required", "message": "Identifier id is required"})
            continue
        channels = ident.get("channels")
        if channels is not None:
            if type(channels) is not dict:
                errors.append({"field": f"identifiers.{i}.channels", "code": "type", "message": "Must be an object"})
            else:
                for ch_name, ch in channels.items():
                    if type(ch) is not dict or ch.get("status") not in CHANNEL_STATUSES:
                        errors.append({"field": f"identifiers.{i}.channels.{ch_name}.status", "code": "enum",
                                       "message": "Must be one of: subscribed, nonSubscribed, unsubscribed"})
                    elif ch_name == "email" and itype == "email":
                        status = ch["status"]
        swm = ident.get("sendWelcomeMessage")
        if swm is not None and type(swm) is not bool:
            errors.append({"field": f"identifiers.{i}.sendWelcomeMessage", "code": "type", "message": "Must be a boolean"})
        if itype == "email" and email is None:
            if len(ivalue) > MAX_EMAIL_LEN or not EMAIL_RE.match(ivalue):
                errors.append({"field": f"identifiers.{i}.id", "code": "invalid_format",
                               "message": "Must be a valid email address"})
            else:
                email = ivalue.lower()
    if errors:
        return None, "", errors
    if email is None:
        return None, "", [{"field": "identifiers", "code": "required",
                           "message": "An email identifier is required (the sandbox stores contacts by email)"}]
    return email, status, errors


# One stored contact = a plain tuple (num, fields, tags, status, created, updated) of atoms. Not a
# class: CPython's cyclic GC untracks exact tuples of atoms, so full collections do not walk 1M
# contact records again and again (a slots object or a NamedTuple stays tracked).
_N, _F, _T, _S, _C, _U = range(6)


class _Batch:
    __slots__ = ("id", "method", "endpoint", "origin", "created", "due", "total", "items", "results",
                 "errors_count", "done", "ended", "fail_all")

    def __init__(self, batch_id: str, method: str, endpoint: str, origin: str, created: float, due: float,
                 items: list) -> None:
        self.id = batch_id
        self.method = method
        self.endpoint = endpoint
        self.origin = origin
        self.created = created
        self.due = due
        self.total = len(items)
        self.items: list | None = items
        # per item: (code, email) for successes, (code, request, problem dict) for failures
        self.results: list[tuple] = []
        self.errors_count = 0
        self.done = False
        self.ended = created
        self.fail_all = False


def contact_id(num: int) -> str:
    return f"65f0c0de{num:016x}"


class OmnisendEmulator(Emulator):
    vendor = "omnisend"
    RATE_LIMIT_RULES = {"default": (400, 60.0), "tags": (60, 60.0)}
    ROUTES = [
        ("GET", r"/api/brands/current", "route_brand"),
        ("POST", r"/api/contacts", "route_contact_upsert"),
        ("GET", r"/api/contacts", "route_contacts_list"),
        ("POST", r"/api/contacts/tags", "route_tags_add"),
        ("DELETE", r"/api/contacts/tags", "route_tags_remove"),
        ("GET", r"/api/contacts/(?P<id>[^/]+)", "route_contact_get"),
        ("POST", r"/api/batches", "route_batch_create"),
        ("GET", r"/api/batches", "route_batches_list"),
        ("GET", r"/api/batches/(?P<id>[^/]+)", "route_batch_get"),
        ("GET", r"/api/batches/(?P<id>[^/]+)/items", "route_batch_items"),
    ]

    def __init__(self, *, clock: Callable[[], float] | None = None, sleep: Callable[[float], None] | None = None,
                 batch_delay_s: float = 0.0) -> None:
        self.batch_delay_s = batch_delay_s
        self.supported_versions = {API_VERSION}
        self.max_batch_bytes = MAX_BATCH_BYTES
        self.failing_emails: set[str] = set()
        self.fail_next_batches = 0
        self.process_in_background = False
        self.list_newest_first = False
        self._wake = threading.Event()
        self._worker: threading.Thread | None = None
        super().__init__(clock=clock, sleep=sleep)

    # ------------------------------------------------------------ state
    def reset_state(self) -> None:
        self._contacts: dict[str, tuple] = {}
        self._order: list[str] = []  # emails in creation order (cursor = index)
        self._tag_counts: dict[str, int] = {}
        self._tagsets: dict[tuple, tuple] = {(): ()}
        self._batches: dict[str, _Batch] = {}
        self._batch_order: list[_Batch] = []     # creation order, for GET /api/batches
        self._batch_created: list[float] = []    # their creation times (bisected by dateFrom/dateTo)
        self._unsettled: list[_Batch] = []
        self._batch_seq = 0
        self._status_counts = {"pending": 0, "finished": 0}
        self.tag_requests = {"add": 0, "remove": 0}
        self.supported_versions = {API_VERSION}
        self.failing_emails = set()
        self.fail_next_batches = 0

    def _canon_tags(self, tags: set[str] | tuple) -> tuple:
        key = tuple(sorted(tags))
        got = self._tagsets.get(key)
        if got is None:
            if len(self._tagsets) > 100_000:  # bound the intern table for pathological tag use
                return key
            got = self._tagsets[key] = tuple(sys.intern(t) for t in key)
        return got

    def _settle(self) -> None:
        """Process batches whose time has come (call with the lock held)."""
        if not self._unsettled:
            return
        now = self.clock()
        still = []
        for b in self._unsettled:
            if now >= b.due:
                self._process_batch(b, now)
            else:
                still.append(b)
        self._unsettled = still

    def _process_batch(self, b: _Batch, now: float) -> None:
        items, b.items = b.items or [], None
        results = b.results
        update_only = b.method == "PUT"
        if getattr(b, "fail_all", False):
            for item in items:
                results.append((500, item, {"type": PROBLEM_TYPE + "internal-server-error",
                                            "title": "Internal server error", "status": 500,
                                            "detail": "The item could not be processed (sandbox fault)."}))
            items = []
        failing = self.failing_emails
        for item in items:
            email, status, errors = check_contact_item(item)
            if not errors and failing and email in failing:
                errors = [{"field": "identifiers.0.id", "code": "blocked",
                           "message": "This contact cannot be imported (sandbox fault)"}]
            if errors:
                results.append((400, item, {
                    "type": PROBLEM_TYPE + "validation-failed", "title": "Validation failed", "status": 400,
                    "detail": "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5]),
                    "errors": errors,
                }))
                continue
            code = self._upsert(email, status, item, now, update_only)
            if code == 404:
                results.append((404, item, {"type": PROBLEM_TYPE + "not-found", "title": "Not found",
                                            "status": 404, "detail": "Contact not found"}))
            else:
                results.append((code, email))
        b.errors_count = sum(1 for r in results if r[0] >= 400)
        b.done = True
        b.ended = now
        self._status_counts["pending"] -= 1
        self._status_counts["finished"] += 1

    def _upsert(self, email: str, status: str, item: dict, now: float, update_only: bool = False) -> int:
        c = self._contacts.get(email)
        new_tags = item.get("tags")
        if c is None:
            if update_only:
                return 404
            fields = _SEP.join([v if type(v) is str else "" for v in map(item.get, _FIELDS)])
            if fields == _EMPTY_FIELDS:
                fields = _EMPTY_FIELDS  # share one object (and let _contact_json skip the split)
            if not new_tags:
                tags = ()
            elif len(new_tags) == 1:  # the export's usual case: one segment tag
                tags = self._tagsets.get((new_tags[0],)) or self._canon_tags(set(new_tags))
            else:
                tags = self._canon_tags(set(new_tags))
            self._contacts[email] = (len(self._order), fields, tags, sys.intern(status), now, now)
            self._order.append(email)
            for t in tags:
                self._tag_counts[t] = self._tag_counts.get(t, 0) + 1
            return 201
        fields, tags, cstatus = c[_F], c[_T], c[_S]
        if any(f in item for f in _FIELDS):
            old = fields.split(_SEP)
            for i, f in enumerate(_FIELDS):
                v = item.get(f)
                if isinstance(v, str):
                    old[i] = v
            fields = _SEP.join(old)
        if new_tags:
            added = [t for t in set(new_tags) if t not in tags]
            if added:
                if len(tags) + len(added) > MAX_TAGS_PER_CONTACT:
                    added = added[: max(0, MAX_TAGS_PER_CONTACT - len(tags))]
                tags = self._canon_tags(set(tags) | set(added))
                for t in added:
                    self._tag_counts[t] = self._tag_counts.get(t, 0) + 1
        if "identifiers" in item and status != cstatus and _email_channel_given(item):
            cstatus = sys.intern(status)
        self._contacts[email] = (c[_N], fields, tags, cstatus, c[_C], now)
        return 200

    def _contact_json(self, email: str, c: tuple) -> dict:
        created = iso(c[_C])
        out: dict[str, Any] = {
            "id": contact_id(c[_N]), "email": email,
            "identifiers": [{"type": "email", "id": email,
                             "channels": {"email": {"status": c[_S], "statusChangedAt": created}}}],
        }
        if c[_F] is not _EMPTY_FIELDS:
            for f, v in zip(_FIELDS, c[_F].split(_SEP)):
                if v:
                    out[f] = v
        out["tags"] = list(c[_T])
        out["segments"] = []
        out["status"] = c[_S]
        out["createdAt"] = created
        out["updatedAt"] = created if c[_U] is c[_C] else iso(c[_U])
        return out

    # ------------------------------------------------------------ test helpers
    def contact(self, email: str) -> dict | None:
        with self.lock:
            self._settle()
            c = self._contacts.get(email.lower())
            return None if c is None else self._contact_json(email.lower(), c)

    def seed_list(self, name: str, emails: list[str]) -> str:
        """Contacts carrying the tag `name` before any export ran (tagged by someone else). Returns the tag."""
        with self.lock:
            self._settle()
            now = self.clock()
            for email in emails:
                self._upsert(email.strip().lower(), "nonSubscribed", {"tags": [name]}, now)
        return name

    def contacts_with_tag(self, tag: str) -> list[str]:
        with self.lock:
            self._settle()
            return [e for e in self._order if tag in self._contacts[e][_T]]

    def batch(self, batch_id: str) -> dict | None:
        with self.lock:
            self._settle()
            b = self._batches.get(batch_id)
            return None if b is None else self._batch_json(b, self.clock())

    def batch_ids(self) -> list[str]:
        with self.lock:
            return list(self._batches)

    @property
    def contact_count(self) -> int:
        with self.lock:
            self._settle()
            return len(self._contacts)

    # ------------------------------------------------------------ base hooks
    def api_key(self, request: httpx.Request) -> str | None:
        auth = request.headers.get("authorization", "")
        for prefix in ("Omnisend-API-Key ", "Bearer "):
            if auth.startswith(prefix):
                return auth[len(prefix):].strip() or None
        return None

    def error_response(self, status: int, message: str, code: str | None = None) -> httpx.Response:
        titles = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found",
                  405: "Method not allowed", 410: "Gone", 413: "Payload too large", 500: "Internal server error",
                  503: "Service unavailable"}
        return problem(status, titles.get(status, "Error"), message)

    def auth_error(self, request: httpx.Request) -> httpx.Response:
        return problem(401, "Unauthorized", "Invalid API key. Use header 'Authorization: Omnisend-API-Key <key>'.")

    def auth_check(self, request: httpx.Request, key: str) -> httpx.Response | None:
        version = request.headers.get("omnisend-version")
        if not version:
            return validation_problem("The Omnisend-Version header is required.", [
                {"field": "Omnisend-Version", "code": "required", "message": "Header is required"}])
        if version not in self.supported_versions:
            return problem(410, "API version retired",
                           f"API version {version} is retired or unknown. Supported: "
                           f"{', '.join(sorted(self.supported_versions)) or 'none'}.")
        return None

    def bucket_for(self, request: httpx.Request) -> str:
        return "tags" if request.url.path == "/api/contacts/tags" else "default"

    def _limit_headers(self, limit: tuple[int, float] | None, used: int, reset_epoch: float) -> dict[str, str]:
        if limit is None:
            return {}
        return {"X-Rate-Limit-Limit": str(limit[0]), "X-Rate-Limit-Remaining": str(max(0, limit[0] - used)),
                "X-Rate-Limit-Reset": str(max(0, int(round(reset_epoch - self.clock()))))}

    def extra_headers(self, request: httpx.Request, limit: tuple[int, float] | None, used: int,
                      reset_epoch: float) -> dict[str, str]:
        return self._limit_headers(limit, used, reset_epoch)

    def rate_limited_response(self, request: httpx.Request, retry_after_s: float, reset_epoch: float,
                              include_retry_hint: bool) -> httpx.Response:
        wait = max(1, int(-(-retry_after_s // 1)))  # whole seconds, rounded up
        extra: dict[str, Any] = {"retryAfter": wait} if include_retry_hint else {}
        headers = None
        if include_retry_hint:
            bucket = self.bucket_for(request)
            limit = self.rate_limit_rules.get(bucket)
            if limit is not None:
                headers = {"X-Rate-Limit-Limit": str(limit[0]), "X-Rate-Limit-Remaining": "0",
                           "X-Rate-Limit-Reset": str(wait)}
        return problem(429, "Too many requests", "Rate limit exceeded. Retry after the given number of seconds.",
                       headers=headers, **extra)

    def server_error_response(self, status: int) -> httpx.Response:
        return problem(status, "Internal server error" if status == 500 else "Service unavailable",
                       "The sandbox is simulating a server failure.")

    def not_found(self, request: httpx.Request) -> httpx.Response:
        return problem(404, "Not found", f"No such resource: {request.method} {request.url.path}")

    # ------------------------------------------------------------ routes
    def route_brand(self, request: httpx.Request, match: re.Match) -> httpx.Response:
        return json_response(200, {
            "brandID": "65f0c0de0000000000b0a7d0", "name": "Insight Relay Sandbox Brand",
            "website": "https://sandbox.example.com", "platform": "api", "currency": "USD",
            "timezone": "UTC", "connected": True, "version": API_VERSION,
        })

    def _read_body(self, request: httpx.Request) -> tuple[Any, httpx.Response | None]:
        raw = request.read()
        if len(raw) > self.max_batch_bytes:
            return None, problem(413, "Payload too large",
                                 f"Request body is {len(raw)} bytes; the limit is {self.max_batch_bytes}.")
        try:
            return orjson.loads(raw), None
        except ValueError:
            return None, validation_problem("Request body is not valid JSON.", [
                {"field": "body", "code": "invalid_json", "message": "Malformed JSON"}])

    def route_contact_upsert(self, request: httpx.Request, match: re.Match) -> httpx.Response:
        body, err = self._read_body(request)
        if err is not None:
            return err
        email, status, errors = check_contact_item(body)
        if errors:
            return validation_problem("Contact validation failed.", errors)
        with self.lock:
            self._settle()
            code = self._upsert(email, status, body, self.clock())
            return json_response(code, self._contact_json(email, self._contacts[email]))

    def route_contact_get(self, request: httpx.Request, match: re.Match) -> httpx.Response:
        cid = match.group("id")
        with self.lock:
            self._settle()
            try:
                num = int(cid[8:], 16) if cid.startswith("65f0c0de") else -1
            except ValueError:
                num = -1
            if 0 <= num < len(self._order):
                email = self._order[num]
                return json_response(200, self._contact_json(email, self._contacts[email]))
        return problem(404, "Not found", f"Contact {cid} not found.")

    def route_contacts_list(self, request: httpx.Request, match: re.Match) -> httpx.Response:
        q = request.url.params
        try:
            limit = int(q.get("limit", LIST_LIMIT_DEFAULT))
        except ValueError:
            limit = -1
        if not 1 <= limit <= LIST_LIMIT_MAX:
            return validation_problem("Invalid query.", [{"field": "limit", "code": "range",
                                                          "message": "Must be between 1 and 250"}])
        if q.get("tag") and q.get("status"):
            return validation_problem("Invalid query.", [{"field": "tag", "code": "conflict",
                                                          "message": "tag and status cannot be combined"}])
        try:
            start = int(base64.urlsafe_b64decode(q["after"].encode()).decode()) if q.get("after") else 0
        except (ValueError, UnicodeDecodeError):
            return validation_problem("Invalid cursor.", [{"field": "after", "code": "invalid_format",
                                                           "message": "Unknown cursor"}])
        email_f = (q.get("email") or "").lower() or None
        tag_f, status_f = q.get("tag"), q.get("status")
        with self.lock:
            self._settle()
            out, i = [], start
            if email_f is not None:
                c = self._contacts.get(email_f)
                if c is not None and start == 0:
                    out.append(self._contact_json(email_f, c))
                i = len(self._order)
            else:
                n = len(self._order)
                while i < n and len(out) < limit:
                    e = self._order[i]
                    c = self._contacts[e]
                    i += 1
                    if tag_f is not None and tag_f not in c[_T]:
                        continue
                    if status_f is not None and c[_S] != status_f:
                        continue
                    out.append(self._contact_json(e, c))
            has_more = i < len(self._order)
        cursor = base64.urlsafe_b64encode(str(i).encode()).decode() if has_more else None
        before = base64.urlsafe_b64encode(str(start).encode()).decode() if start else None
        return json_response(200, {"contacts": out, "paging": {"cursors": {"after": cursor, "before": before},
                                                               "hasMore": has_more, "limit": limit}})

    def _tags_request(self, request: httpx.Request, add: bool) -> httpx.Response:
        body, err = self._read_body(request)
        if err is not None:
            return err
        errors = _schema_errors(_TAGS_VALIDATOR, body)
        if errors:
            return validation_problem("Tag request validation failed.", errors)
        if not any(body.get(k) for k in ("contactIDs", "emails", "phones", "segmentID")):
            return validation_problem("At least one of contactIDs, emails, phones or segmentID is required.", [
                {"field": "emails", "code": "required", "message": "A selector is required"}])
        tags = [t for t in body["tags"] if t]
        with self.lock:
            self._settle()
            self.tag_requests["add" if add else "remove"] += 1
            targets = {e.lower() for e in body.get("emails") or ()}
            ids = set(body.get("contactIDs") or ())
            if ids:
                for cid in ids:
                    try:
                        num = int(cid[8:], 16) if cid.startswith("65f0c0de") else -1
                    except ValueError:
                        continue
                    if 0 <= num < len(self._order):
                        targets.add(self._order[num])
            for email in targets:
                c = self._contacts.get(email)
                if c is None:
                    continue  # unknown emails are silently ignored (documented)
                current = set(c[_T])
                changed = (set(tags) - current) if add else (current & set(tags))
                if not changed:
                    continue
                if add:
                    changed = set(list(changed)[: max(0, MAX_TAGS_PER_CONTACT - len(current))])
                    new_tags = self._canon_tags(current | changed)
                else:
                    new_tags = self._canon_tags(current - changed)
                for t in changed:
                    self._tag_counts[t] = self._tag_counts.get(t, 0) + (1 if add else -1)
                    if self._tag_counts[t] <= 0:
                        del self._tag_counts[t]
                self._contacts[email] = (c[_N], c[_F], new_tags, c[_S], c[_C], self.clock())
        return httpx.Response(202)

    def route_tags_add(self, request: httpx.Request, match: re.Match) -> httpx.Response:
        return self._tags_request(request, add=True)

    def route_tags_remove(self, request: httpx.Request, match: re.Match) -> httpx.Response:
        return self._tags_request(request, add=False)

    def route_batch_create(self, request: httpx.Request, match: re.Match) -> httpx.Response:
        body, err = self._read_body(request)
        if err is not None:
            return err
        errors = _schema_errors(_BATCH_VALIDATOR, body)
        if errors:
            return validation_problem("Batch validation failed.", errors)
        if body["endpoint"] != "contacts":
            return validation_problem("The sandbox emulates contact batches only.", [
                {"field": "endpoint", "code": "unsupported", "message": "Only 'contacts' is emulated"}])
        with self.lock:
            self._settle()
            now = self.clock()
            self._batch_seq += 1
            batch_id = f"65f0ba7c{self._batch_seq:016x}"
            b = _Batch(batch_id, body["method"], body["endpoint"], str(body.get("origin") or "api"), now,
                       now + max(0.0, self.batch_delay_s), body["items"])
            if self.fail_next_batches > 0:
                self.fail_next_batches -= 1
                b.fail_all = True
            self._batches[batch_id] = b
            self._batch_order.append(b)
            self._batch_created.append(now)
            self._status_counts["pending"] += 1
            if self.batch_delay_s <= 0 and not self.process_in_background:
                self._process_batch(b, now)
            else:
                self._unsettled.append(b)
                if self.process_in_background:
                    self._start_worker()
                    self._wake.set()
            return json_response(201, {"batchID": batch_id, "totalCount": b.total})

    def _start_worker(self) -> None:
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name="omnisend-batches", daemon=True)
            self._worker.start()

    def _work(self) -> None:
        """Background batch processing (process_in_background): settle due batches after each POST."""
        while True:
            self._wake.wait()
            self._wake.clear()
            with self.lock:
                self._settle()

    def _batch_status(self, b: _Batch, now: float) -> tuple[str, int]:
        if b.done:
            return "finished", b.total
        span = max(b.due - b.created, 1e-9)
        elapsed = now - b.created
        if elapsed < span / 4:
            return "pending", 0
        return "inProgress", min(b.total - 1, int(b.total * elapsed / span))

    def _batch_json(self, b: _Batch, now: float) -> dict:
        status, finished = self._batch_status(b, now)
        out = {"batchID": b.id, "method": b.method, "endpoint": b.endpoint, "origin": b.origin,
               "status": status, "createdAt": iso(b.created), "totalCount": b.total,
               "finishedCount": finished, "errorsCount": b.errors_count if b.done else 0}
        if status != "pending":
            out["startedAt"] = iso(b.created + (b.due - b.created) / 4)
        if b.done:
            out["endedAt"] = iso(b.ended)
        return out

    def route_batches_list(self, request: httpx.Request, match: re.Match) -> httpx.Response:
        """GET /api/batches as the 2026-03-15 spec says: endpoint (required; products|contacts|events),
        offset (>= 0, default 0), limit (1-250, default 100), status, dateFrom/dateTo (yyyy-mm-dd, UTC days,
        both inclusive) -> {batches: [Batch without items], paging: {limit, offset, next?, previous?}}.
        Oldest first (list_newest_first flips it; the spec names no order). A page costs what it returns,
        not the account's whole batch history: the date range is found by bisection on creation times."""
        q = request.url.params
        errors = []
        endpoint = q.get("endpoint")
        if not endpoint:
            errors.append({"field": "endpoint", "code": "required", "message": "Required"})
        elif endpoint not in LIST_ENDPOINTS:
            errors.append({"field": "endpoint", "code": "enum", "message": "Must be one of: " + ", ".join(LIST_ENDPOINTS)})
        offset, limit = _int_param(q, "offset", 0), _int_param(q, "limit", LIST_LIMIT_DEFAULT)
        if offset is None or offset < 0:
            errors.append({"field": "offset", "code": "range", "message": "Must be an integer, minimum 0"})
        if limit is None or not 1 <= limit <= LIST_LIMIT_MAX:
            errors.append({"field": "limit", "code": "range", "message": f"Must be between 1 and {LIST_LIMIT_MAX}"})
        status = q.get("status")
        if status is not None and status not in BATCH_STATUSES:
            errors.append({"field": "status", "code": "enum", "message": "Must be one of: " + ", ".join(BATCH_STATUSES)})
        day_from, day_to = _day_param(q, "dateFrom"), _day_param(q, "dateTo")
        for name, day in (("dateFrom", day_from), ("dateTo", day_to)):
            if day is False:
                errors.append({"field": name, "code": "invalid_format", "message": "Must be a date: yyyy-mm-dd"})
        if errors:
            return validation_problem("Invalid query.", errors)
        assert offset is not None and limit is not None
        with self.lock:
            self._settle()
            now = self.clock()
            created = self._batch_created
            lo = bisect.bisect_left(created, day_from) if day_from else 0
            hi = bisect.bisect_left(created, day_to + DAY_S) if day_to else len(created)
            in_range = self._batch_order[lo:hi] if endpoint == "contacts" else []   # contact batches only
            if self.list_newest_first:
                in_range.reverse()
            if status is None:
                chosen = in_range[offset: offset + limit]
                more = len(in_range) > offset + limit
                page = [self._batch_json(b, now) for b in chosen]
            else:
                rows = (r for r in (self._batch_json(b, now) for b in in_range) if r["status"] == status)
                page = list(itertools.islice(rows, offset, offset + limit + 1))
                more = len(page) > limit
                page = page[:limit]
        paging: dict[str, Any] = {"limit": limit, "offset": offset}
        base = str(request.url.copy_remove_param("offset").copy_remove_param("limit"))
        sep = "&" if "?" in base else "?"
        if more:
            paging["next"] = f"{base}{sep}limit={limit}&offset={offset + limit}"
        if offset > 0:
            paging["previous"] = f"{base}{sep}limit={limit}&offset={max(0, offset - limit)}"
        return json_response(200, {"batches": page, "paging": paging})

    def route_batch_get(self, request: httpx.Request, match: re.Match) -> httpx.Response:
        with self.lock:
            self._settle()
            b = self._batches.get(match.group("id"))
            if b is None:
                return problem(404, "Not found", f"Batch {match.group('id')} not found.")
            return json_response(200, self._batch_json(b, self.clock()))

    def route_batch_items(self, request: httpx.Request, match: re.Match) -> httpx.Response:
        with self.lock:
            self._settle()
            b = self._batches.get(match.group("id"))
            if b is None:
                return problem(404, "Not found", f"Batch {match.group('id')} not found.")
            body = self._batch_json(b, self.clock())
            responses, errors = [], []
            for i, r in enumerate(b.results):
                item_id = f"{b.id}-{i:04d}"
                if r[0] < 400:
                    # lean success items (BatchItem.request/response are untyped in the spec): the
                    # contact's id and email, enough to match the result; keeps 1M-contact runs fast
                    email = r[1]
                    c = self._contacts.get(email)
                    responses.append({
                        "itemID": item_id, "status": "finished", "responseCode": r[0],
                        "response": {"id": contact_id(c[_N]) if c is not None else None, "email": email},
                    })
                else:
                    errors.append({"itemID": item_id, "status": "finished", "responseCode": r[0],
                                   "request": r[1], "response": r[2]})
        body["responses"] = responses
        body["errors"] = errors
        return json_response(200, body)

    # ------------------------------------------------------------ snapshot
    def state_snapshot(self, max_members: int | None) -> dict:
        self._settle()
        now = self.clock()
        tags = dict(sorted(self._tag_counts.items()))
        members: dict[str, list[str]] = {t: [] for t in tags}
        cap = max_members if max_members is not None else SNAPSHOT_SCAN_MAX
        if cap > 0 and tags:
            full = set()
            for e in self._order[:SNAPSHOT_SCAN_MAX]:
                for t in self._contacts[e][_T]:
                    lst = members.get(t)
                    if lst is not None and len(lst) < cap:
                        lst.append(e)
                        if len(lst) >= cap:
                            full.add(t)
                if len(full) == len(tags):
                    break
        recent = list(self._batches.values())[-RECENT_BATCHES:]
        status_counts: dict[str, int] = {"pending": 0, "inProgress": 0, "finished": self._status_counts["finished"]}
        for b in self._unsettled:
            status_counts[self._batch_status(b, now)[0]] += 1
        return {
            "contacts_total": len(self._contacts),
            "contacts_per_tag": tags,
            "members": members,
            "batches_total": len(self._batches),
            "batches_by_status": status_counts,
            "recent_batches": [self._batch_json(b, now) for b in reversed(recent)],
            "tag_requests": dict(self.tag_requests),
            "batch_delay_s": self.batch_delay_s,
            "supported_versions": sorted(self.supported_versions),
        }


def _int_param(q: httpx.QueryParams, name: str, default: int) -> int | None:
    raw = q.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        return None


def _day_param(q: httpx.QueryParams, name: str) -> float | None | bool:
    """A yyyy-mm-dd query parameter as the epoch of that UTC day's start; None when absent, False when bad."""
    raw = q.get(name)
    if raw is None or raw == "":
        return None
    if not _DAY_RE.match(raw):
        return False
    try:
        return float(calendar.timegm(time.strptime(raw, "%Y-%m-%d")))
    except ValueError:
        return False


def _email_channel_given(item: dict) -> bool:
    for ident in item.get("identifiers") or ():
        if isinstance(ident, dict) and ident.get("type") == "email":
            ch = ident.get("channels")
            if isinstance(ch, dict) and "email" in ch:
                return True
    return False
