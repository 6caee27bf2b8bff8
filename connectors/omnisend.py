"""Omnisend export client (API version 2026-03-15).

OmnisendClient(api_key, *, base_url="https://api.omnisend.com", transport=None, rate_limits=True,
               sleep=None, clock=None, max_batch_items=100, max_batch_bytes=1_000_000,
               remove_batch_size=250, poll_first_s=0.0, poll_interval_s=0.05, max_poll_interval_s=5.0,
               max_poll_s=3600.0, timeout=None, retry=None, rand=None, email_status="nonSubscribed",
               list_batches=True)
Implements connectors.base.ExportClient. Every request sends `Authorization: Omnisend-API-Key <key>`
and `Omnisend-Version: 2026-03-15`.
  verify(): GET /api/brands/current -> VerifyResult (never raises for vendor answers).
  Targets are TAGS (Omnisend has no list objects): list_targets() -> [] (the API cannot list tags;
    it still reads GET /api/contacts?limit=1 so key/permission errors raise);
    find_target(name) / create_target(name) -> Target(id=name, name=name), nothing is created
    remotely. The caller picks the tag text (default "segment: <segment name>", see default_tag()).
  upsert_batches(contacts): <= max_batch_items (spec maxItems 100) and <= max_batch_bytes (1 MB,
    Omnisend's guidance) by estimated JSON size.
  submit_upsert(batch, target): POST /api/batches {method:"POST", endpoint:"contacts", items:[...]}
    each item = {identifiers:[{type:"email", id, channels:{email:{status:"nonSubscribed"}},
    sendWelcomeMessage:false}], firstName, lastName, address, city, state, country|countryCode,
    postalCode, tags:[target.id]} -> Submission(job_id=batchID). Contacts without an email are
    rejected locally (not sent).
  collect(sub): the batch's state from the batch LISTING (GET /api/batches?endpoint=contacts&limit=250&
    offset=&dateFrom=, connectors/omnisend_batches.py): one request answers for every batch in flight, and
    the states it returns are kept, so collecting the next batches usually costs no request. A batch that
    finished with errorsCount 0 and finishedCount == totalCount == items sent is all accepted; only one with
    errors (or counts that do not add up) has its items read (GET /api/batches/{id}/items: responses[] ->
    accepted, errors[] -> rejected with Omnisend's message). About 1 request per batch instead of 2.
    Batches the listing does not track (submitted by an earlier run, missing from it for long, or a vendor
    answering the listing 400/404/405: switched off for the run; list_batches=False) are polled directly
    on /items. Polling waits with the injected sleep: first after poll_first_s, then growing from
    poll_interval_s to max_poll_interval_s. wait_for_batch(id) polls GET /api/batches/{id} (status only).
    Unreported emails -> "pending". Still unfinished after max_poll_s -> TransientError with
    resume={"job_id": batchID} (the submission can be collected later).
  remove_batches(emails): <= 250. submit_remove(emails, target): DELETE /api/contacts/tags
    {tags:[tag], emails:[...]} (202, async; unknown emails are ignored by Omnisend) -> outcomes known at
    submit time (accepted). Contacts are never deleted or unsubscribed.
  existing_members(target): every contact with the tag (GET /api/contacts?tag=, 250 a page, 400/min);
    targets_exist_only_with_members: a tag nobody carries yet is new (the export creates it).
Errors: RFC 9457 problem bodies -> ConnectorError subclasses with Omnisend's title/detail; 401 AuthError,
403 PermissionMissingError, 410 VendorError ("API version retired"), 429 retried using `retryAfter`
(body) / X-Rate-Limit-Reset; 5xx retried (connectors.http).
pipeline_depth = 16: submissions the export runner may keep in flight (submit several, collect the oldest).
Rate limits (client side, rate_limits=True): 400 requests/min "default" bucket; 60/min "tags" bucket
for /api/contacts/tags.
FIELD_LIMITS: {} - the 2026-03-15 ContactRequest schema declares no maxLength for any field.
FIELD_MAP: our standard field key -> Omnisend ContactRequest property.
"""
from __future__ import annotations

import json
import re
from typing import Any, Callable, Iterable, Iterator

import httpx

from connectors.base import (Contact, MembershipLookup, Outcome, Submission, Target, VerifyResult, batched,
                             complete_outcomes, json_text_bytes)
from connectors.errors import (
    AuthError,
    ConnectorError,
    PermissionMissingError,
    RecordRejectedError,
    TransientError,
    VendorError,
)
from connectors.http import RateLimit, RetryPolicy, VendorClient, get_logger, poll_until
from connectors.omnisend_batches import BatchListing, all_accepted
from connectors.spec import ADDRESS_FIELD, EXPORT, LOCATION_FIELDS, NAME_FIELDS, SANDBOX, VendorSpec

log = get_logger("connectors.omnisend")

VENDOR = "omnisend"
API_VERSION = "2026-03-15"
DEFAULT_BASE_URL = "https://api.omnisend.com"
MAX_BATCH_ITEMS = 100  # CreateBatchRequest.items maxItems (the v5 docs say 1,000: conflict, spec wins)
MAX_BATCH_BYTES = 1_000_000  # "keep the payload under 1 MB" (Omnisend's sync guide)
MAX_TAG_EMAILS = 250  # RemoveTagsRequest.emails maxItems
CONTACTS_PAGE_MAX = 250  # GET /api/contacts limit maximum
MAX_TAGS_PER_CONTACT = 100
TAG_PREFIX = "segment: "

FIELD_MAP = {
    "first_name": "firstName",
    "last_name": "lastName",
    "address": "address",
    "city": "city",
    "state": "state",
    "country": "country",
    "postal_code": "postalCode",
}
FIELD_LIMITS: dict[str, int] = {}  # the spec gives no maxLength for contact fields

SPEC = VendorSpec(
    vendor=VENDOR, label="Omnisend", kind=EXPORT,
    description="Creates or updates Omnisend contacts and tags them with the segment.",
    regions={"production": DEFAULT_BASE_URL, SANDBOX: "http://sandbox.omnisend.local"},
    client="connectors.omnisend:OmnisendClient",
    docs_url="https://api-docs.omnisend.com/",
    privacy_url="https://www.omnisend.com/privacy-policy/",
    rate_limits={"default": RateLimit(400, 60.0), "tags": RateLimit(60, 60.0)},   # Omnisend's spec
    # Batches are asynchronous and small (100 contacts): the export runner keeps up to this many
    # submitted before collecting the oldest, so Omnisend processes them while we send more, and one
    # batch listing usually finds the whole window finished (about 1 + 1/16 requests per batch).
    pipeline_depth=16,
    field_limits=FIELD_LIMITS,
    fields=NAME_FIELDS + (ADDRESS_FIELD,) + LOCATION_FIELDS,
    target_word="tag", target_prefix=TAG_PREFIX,
    contact_limit=1_000_000,
    contacts_per_s=1_000_000 / (4 * 3600),  # "1 million per export, up to 4 hours"
)

_ENVELOPE_OVERHEAD = 80  # {"method":"POST","endpoint":"contacts","items":[...]}
_ITEM_OVERHEAD = 160  # identifiers/channels/sendWelcomeMessage/tags scaffolding per item
_FIELD_OVERHEAD = 16  # "postalCode":"", (longest property name + quotes, colon, comma)
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def default_tag(segment_name: str) -> str:
    """The default Omnisend tag for a segment: "segment: <segment name>"."""
    return f"{TAG_PREFIX}{segment_name}"


def _json_len(s: str) -> int:
    """Byte length of s as a JSON string (UTF-8, ensure_ascii=False), with quotes."""
    n = len(s) if s.isascii() else len(s.encode("utf-8"))
    if '"' in s or "\\" in s:
        n += s.count('"') + s.count("\\")
    return n + 2


def _problem_text(resp: httpx.Response) -> str:
    """Omnisend's own words from an RFC 9457 body: detail (or title) plus field errors."""
    try:
        body = json.loads(resp.content)
    except (ValueError, UnicodeDecodeError):
        return ""
    return problem_message(body)


def problem_message(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    text = str(body.get("detail") or body.get("title") or body.get("error") or "").strip()
    fields = []
    for e in body.get("errors") or ():
        if isinstance(e, dict) and e.get("message"):
            fields.append(f"{e.get('field')}: {e['message']}" if e.get("field") else str(e["message"]))
    if fields:
        joined = "; ".join(fields[:5])
        text = joined if not text or joined in text else f"{text} ({joined})"
    return text[:400]


class OmnisendClient(VendorClient):
    vendor = VENDOR
    default_base_url = DEFAULT_BASE_URL
    pipeline_depth = SPEC.pipeline_depth

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        transport: httpx.BaseTransport | None = None,
        rate_limits: Any = True,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] | None = None,
        max_batch_items: int = MAX_BATCH_ITEMS,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        remove_batch_size: int = MAX_TAG_EMAILS,
        poll_first_s: float = 0.0,
        poll_interval_s: float = 0.05,
        max_poll_interval_s: float = 5.0,
        max_poll_s: float = 3600.0,
        timeout: Any = None,
        retry: RetryPolicy | None = None,
        rand: Callable[[], float] | None = None,
        email_status: str = "nonSubscribed",
        list_batches: bool = True,
        **_ignored: Any,
    ) -> None:
        self._init_http(api_key, {"Authorization": f"Omnisend-API-Key {api_key}"}, base_url=base_url,
                        transport=transport, rate_limits=rate_limits, sleep=sleep, clock=clock, timeout=timeout,
                        retry=retry, rand=rand, extra_headers={"Omnisend-Version": API_VERSION})
        self.max_batch_items = max(1, min(max_batch_items, MAX_BATCH_ITEMS))
        self.max_batch_bytes = max(1000, min(max_batch_bytes, MAX_BATCH_BYTES))
        self.remove_batch_size = max(1, min(remove_batch_size, MAX_TAG_EMAILS))
        self.poll_first_s = poll_first_s
        self.poll_interval_s = poll_interval_s
        self.max_poll_interval_s = max_poll_interval_s
        self.max_poll_s = max_poll_s
        self.email_status = email_status
        # shared by every item's body (read only: serialized at once): fewer objects per contact
        self._channels = {"email": {"status": email_status}}
        self._tags: tuple[str | None, list[str] | None] = (None, None)
        per_item = (int(self.max_batch_bytes * 0.98) - _ENVELOPE_OVERHEAD) // self.max_batch_items
        self._fast_chars = max(0, (per_item - _ITEM_OVERHEAD - _FIELD_OVERHEAD * (len(FIELD_MAP) + 1)) // 6)
        self.batch_listing = BatchListing(self.http, self._on_error, clock=self.http.clock)
        if not list_batches:
            self.batch_listing.enabled = False

    def _on_error(self, resp: httpx.Response) -> ConnectorError | None:
        """Map an Omnisend problem response to a ConnectorError with Omnisend's message."""
        status = resp.status_code
        said = _problem_text(resp)
        suffix = f" Omnisend said: {said}" if said else ""
        if status == 401:
            return AuthError("Omnisend rejected the API key. Check that you copied the whole key." + suffix,
                             status=status, vendor=VENDOR)
        if status == 403:
            return PermissionMissingError(
                "The Omnisend API key is valid but lacks a permission this needs (contacts read/write "
                "and brand read)." + suffix, status=status, vendor=VENDOR)
        if status == 410:
            return VendorError(
                f"Omnisend has retired API version {API_VERSION}, which this release of Insight Relay uses. "
                "Update Insight Relay to a release that supports a current Omnisend API version." + suffix,
                status=status, vendor=VENDOR)
        if status in (400, 413, 422):
            return RecordRejectedError("Omnisend rejected the request." + suffix, status=status, vendor=VENDOR)
        if status == 404:
            return VendorError("Omnisend could not find what we asked for." + suffix, status=status, vendor=VENDOR)
        return None

    def verify(self) -> VerifyResult:
        try:
            body = self.http.json(self.http.get("/api/brands/current", on_error=self._on_error))
        except ConnectorError as exc:
            return VerifyResult(False, exc.user_message, exc.detail)
        name = (body or {}).get("name") or "your brand"
        website = (body or {}).get("website")
        where = f" ({website})" if website else ""
        return VerifyResult(True, f"Connected to Omnisend brand {name}{where}.",
                            f"brandID {body.get('brandID')}" if isinstance(body, dict) else None)

    # ------------------------------------------------------------ targets = tags
    def list_targets(self) -> list[Target]:
        """Always [] - the 2026-03-15 API cannot list tags. It still makes one cheap read
        (GET /api/contacts?limit=1) so a bad key or a missing permission surfaces here as an error."""
        self.http.get("/api/contacts", params={"limit": 1}, on_error=self._on_error)
        return []

    def _tag_target(self, name: str) -> Target:
        tag = (name or "").strip()
        if not tag:
            raise VendorError("An Omnisend tag cannot be empty.", vendor=VENDOR)
        return Target(id=tag, name=tag)

    def find_target(self, name: str) -> Target | None:
        return self._tag_target(name)

    def create_target(self, name: str) -> Target:
        return self._tag_target(name)

    # ------------------------------------------------------------ upsert
    def _size_of(self, c: Contact) -> int:
        """Upper-ish estimate of the item's JSON bytes (this runs for every contact of a 1M export). A contact
        of at most _fast_chars characters gets 6 bytes per character (a control character's \\u00XX: a true
        upper bound) without encoding anything: max_batch_items such contacts still fit the byte budget, so
        the batches are the ones the exact estimate gives. Longer ones: one pass over the joined values."""
        n, k = len(c.email or ""), 1
        for key, v in c.fields.items():
            if v and key in FIELD_MAP:
                n += len(v) if type(v) is str else len(str(v))
                k += 1
        if n <= self._fast_chars:
            return _ITEM_OVERHEAD + 6 * n + _FIELD_OVERHEAD * k
        vals = [v if type(v) is str else str(v) for k, v in c.fields.items() if v and k in FIELD_MAP]
        vals.append(c.email or "")
        return _ITEM_OVERHEAD + json_text_bytes("".join(vals)) + _FIELD_OVERHEAD * len(vals)

    def upsert_batches(self, contacts: Iterable[Contact]) -> Iterator[list[Contact]]:
        # target tag length is unknown here; _ITEM_OVERHEAD covers tags up to ~60 chars and the 2%
        # margin the rest for typical batches.
        budget = int(self.max_batch_bytes * 0.98) - _ENVELOPE_OVERHEAD
        return batched(contacts, self.max_batch_items, budget, self._size_of)

    def contact_body(self, c: Contact, tag: str | None) -> dict[str, Any]:
        item: dict[str, Any] = {
            "identifiers": [{"type": "email", "id": c.email, "channels": self._channels,
                             "sendWelcomeMessage": False}],
        }
        for k, v in c.fields.items():
            prop = FIELD_MAP.get(k)
            if prop is None or v is None or v == "":
                continue
            if not isinstance(v, str):
                v = str(v)
            if prop == "country" and len(v) == 2 and v.isascii() and v.isalpha():
                code = v.upper()
                item["countryCode"] = "GB" if code == "UK" else code  # countryCode wins over country
            else:
                item[prop] = v
        if tag:
            if self._tags[0] != tag:
                self._tags = (tag, [tag])
            item["tags"] = self._tags[1]
        return item

    def submit_upsert(self, batch: list[Contact], target: Target) -> Submission:
        emails = [c.email for c in batch]
        rejected: dict[str, str] = {}
        items = []
        for c in batch:
            if not c.email or not _EMAIL_RE.match(c.email):
                rejected[c.email] = "Not a valid email address, so it was not sent to Omnisend."
            else:
                items.append(self.contact_body(c, target.id))
        extra: dict[str, Any] = {"rejected": rejected} if rejected else {}
        if not items:
            return Submission(VENDOR, "upsert", None, emails, None, target, extra)
        resp = self.http.post("/api/batches", json={"method": "POST", "endpoint": "contacts", "items": items},
                              on_error=self._on_error)
        body = self.http.json(resp)
        batch_id = body.get("batchID") if isinstance(body, dict) else None
        if not batch_id:
            raise VendorError("Omnisend accepted the batch but gave no batch id.", vendor=VENDOR,
                              detail=self.http.redact(resp.text[:300]))
        self.batch_listing.track(str(batch_id))
        return Submission(VENDOR, "upsert", str(batch_id), emails, None, target, extra)

    # ------------------------------------------------------------ collect
    def collect(self, submission: Submission) -> list[Outcome]:
        if submission.outcomes is not None:
            return submission.outcomes
        rejected_here = submission.extra.get("rejected") or {}
        reported = [Outcome(e, "rejected", r) for e, r in rejected_here.items()]
        if submission.job_id is None:
            outcomes = complete_outcomes(submission.emails, reported, "rejected", "Not sent to Omnisend.")
            submission.outcomes = outcomes
            return outcomes
        items_sent = len(submission.emails)
        if rejected_here:
            items_sent -= sum(1 for e in submission.emails if e in rejected_here)
        try:
            body = self._wait_listed(submission.job_id, items_sent)
        finally:
            self.batch_listing.forget(submission.job_id)
        if body is _ALL_ACCEPTED:   # the listing proved it: every item sent was accepted
            outcomes = complete_outcomes(submission.emails, reported, "accepted", None)
        else:
            reported += outcomes_from_items(body)
            outcomes = complete_outcomes(submission.emails, reported, "pending",
                                         "Omnisend did not report a result for this contact.")
        submission.outcomes = outcomes
        return outcomes

    def wait_for_items(self, batch_id: str) -> dict:
        """Poll GET /api/batches/{id}/items until its status is "finished" and return that body.

        The items endpoint answers with the same Batch object as GET /api/batches/{id} (status and
        counts) plus responses[]/errors[], so polling it directly costs one request per poll like
        the status endpoint but saves the final extra request: 2 requests per batch instead of 3
        when the batch is already done."""
        return self._wait(f"/api/batches/{batch_id}/items", batch_id)

    def wait_for_batch(self, batch_id: str) -> dict:
        """Poll GET /api/batches/{id} until finished; TransientError(resume=...) after max_poll_s."""
        return self._wait(f"/api/batches/{batch_id}", batch_id)

    def _wait_listed(self, batch_id: str, items_sent: int) -> Any:
        """Wait for a batch this client submitted: its state from the batch listing (one request for many
        batches; none when an earlier listing already showed it finished), then its items only when it
        finished with errors or counts that do not add up. Returns _ALL_ACCEPTED or the items body.
        A batch the listing does not track (submitted by an earlier run, missing from the listing for long,
        listing unsupported) is polled directly, as wait_for_items does."""
        listing = self.batch_listing
        items_path = f"/api/batches/{batch_id}/items"

        def check() -> Any:
            if not listing.tracks(batch_id):
                return self._finished_body(items_path, batch_id)
            state = listing.state(batch_id)
            if (state or {}).get("status") not in ("finished", "stopped"):
                listing.refresh()
                if not listing.tracks(batch_id):
                    return self._finished_body(items_path, batch_id)
                state = listing.state(batch_id)
            if state is None:
                return None
            _raise_if_stopped(state, batch_id)
            if state.get("status") != "finished":
                return None
            if all_accepted(state, items_sent):
                return _ALL_ACCEPTED
            return self._wait(items_path, batch_id)   # finished: one request, the items with the errors

        return self._poll(check, batch_id)

    def _finished_body(self, path: str, batch_id: str) -> dict | None:
        """One poll of a batch resource: its body when finished, None while it is not."""
        body = self.http.json(self.http.get(path, on_error=self._on_error))
        status = body.get("status") if isinstance(body, dict) else None
        if isinstance(body, dict):
            _raise_if_stopped(body, batch_id)
        return body if status == "finished" else None

    def _wait(self, path: str, batch_id: str) -> dict:
        return self._poll(lambda: self._finished_body(path, batch_id), batch_id)

    def _poll(self, check: Callable[[], Any], batch_id: str) -> Any:
        return poll_until(check, sleep=self.http.sleep, first_wait_s=self.poll_first_s,
                          interval_s=self.poll_interval_s, max_interval_s=self.max_poll_interval_s,
                          max_wait_s=self.max_poll_s, growth=2.0,
                          on_timeout=lambda: TransientError(
                              "Omnisend is still processing the batch. Resume the export later to collect the "
                              "results.", vendor=VENDOR, resume={"job_id": batch_id}))

    # ------------------------------------------------------------ membership lookup
    # A tag exists only on contacts: one the export's first lookup finds on nobody is new, made by the export.
    targets_exist_only_with_members = True
    MEMBERSHIP_LOOKUP = MembershipLookup(
        "list", CONTACTS_PAGE_MAX, 400 / 60.0,
        "GET /api/contacts?tag=, 250 contacts a page (cursor paging); 400 requests/min (Omnisend's spec)")

    def existing_members(self, target: Target, candidates: Iterable[str] = ()) -> Iterator[str]:
        """Every contact carrying the tag: GET /api/contacts?tag=<tag>&limit=250, cursor-paged (the
        "default" 400/min bucket). Listing by tag costs one request per 250 tagged contacts, whatever the
        number of contacts to add; a lookup per contact (?email=) would cost one request per contact."""
        after: str | None = None
        while True:
            params: dict[str, Any] = {"tag": target.id, "limit": CONTACTS_PAGE_MAX}
            if after:
                params["after"] = after
            body = self.http.json(self.http.get("/api/contacts", params=params, on_error=self._on_error))
            for c in (body.get("contacts") or ()) if isinstance(body, dict) else ():
                email = _contact_email(c)
                if email:
                    yield email.lower()
            paging = (body.get("paging") or {}) if isinstance(body, dict) else {}
            after = (paging.get("cursors") or {}).get("after")
            if not paging.get("hasMore") or not after:
                return

    # ------------------------------------------------------------ remove (untag)
    def remove_batches(self, emails: Iterable[str]) -> Iterator[list[str]]:
        return batched(emails, self.remove_batch_size)

    def submit_remove(self, emails: list[str], target: Target) -> Submission:
        reported: list[Outcome] = []
        valid = []
        for e in emails:
            if e and _EMAIL_RE.match(e):
                valid.append(e)
            else:
                reported.append(Outcome(e, "rejected", "Not a valid email address."))
        for chunk in batched(valid, self.remove_batch_size):
            self.http.request("DELETE", "/api/contacts/tags", bucket="tags",
                              json={"tags": [target.id], "emails": chunk}, on_error=self._on_error)
        outcomes = complete_outcomes(emails, reported, "accepted", None)
        return Submission(VENDOR, "remove", None, list(emails), outcomes, target, {})


_ALL_ACCEPTED = object()   # _wait_listed's answer when the listing proved every item accepted


def _raise_if_stopped(batch: dict, batch_id: str) -> None:
    if batch.get("status") == "stopped":
        raise VendorError("Omnisend stopped processing the batch before it finished.", vendor=VENDOR,
                          detail=f"batch {batch_id}")


def _contact_email(contact: Any) -> str | None:
    """A ContactResponse's email: its top-level email, else its email identifier."""
    if not isinstance(contact, dict):
        return None
    if contact.get("email"):
        return str(contact["email"])
    for ident in contact.get("identifiers") or ():
        if isinstance(ident, dict) and ident.get("type") == "email" and ident.get("id"):
            return str(ident["id"])
    return None


def _item_email(item: dict) -> str | None:
    for source in (item.get("request"), item.get("response")):
        if not isinstance(source, dict):
            continue
        for ident in source.get("identifiers") or ():
            if isinstance(ident, dict) and ident.get("type") == "email" and ident.get("id"):
                return str(ident["id"])
        if source.get("email"):
            return str(source["email"])
    return None


def outcomes_from_items(body: Any) -> list[Outcome]:
    """Batch items (GET /api/batches/{id}/items) -> outcomes: responses[] accepted, errors[] rejected."""
    out: list[Outcome] = []
    if not isinstance(body, dict):
        return out
    for item in body.get("errors") or ():
        if not isinstance(item, dict):
            continue
        email = _item_email(item)
        if email is None:
            continue
        said = problem_message(item.get("response")) or f"HTTP {item.get('responseCode')}"
        out.append(Outcome(email, "rejected", f"Omnisend: {said}"))
    for item in body.get("responses") or ():
        if not isinstance(item, dict):
            continue
        email = _item_email(item)
        if email is None:
            continue
        code = item.get("responseCode")
        if isinstance(code, int) and code >= 400:
            said = problem_message(item.get("response")) or f"HTTP {code}"
            out.append(Outcome(email, "rejected", f"Omnisend: {said}"))
        else:
            out.append(Outcome(email, "accepted", None))
    return out
