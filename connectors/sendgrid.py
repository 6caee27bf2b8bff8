"""SendGrid Marketing Campaigns export client.

SendGridClient(api_key, *, base_url="https://api.sendgrid.com", transport=None, rate_limits=True,
               sleep=None, clock=None, max_batch_contacts=30_000, max_batch_bytes=6_000_000,
               poll_interval_s=0.25, max_poll_interval_s=10.0, max_poll_s=3600.0, timeout=None,
               retry=None, on_behalf_of=None, custom_field_ids=None)
Implements connectors.base.ExportClient:
  verify(): GET /v3/scopes (401 -> not ok) then GET /v3/marketing/lists?page_size=1 (403 -> not ok,
    "key lacks Marketing access").
  list_targets()/find_target(name)/create_target(name): lists paged via _metadata.next.
  upsert_batches(contacts): <= max_batch_contacts and <= max_batch_bytes (estimated JSON size).
  submit_upsert(batch, target): PUT /v3/marketing/contacts -> Submission(job_id=...). Emails > 254
    chars are rejected locally; other fields are truncated to FIELD_LIMITS.
  collect(sub): polls /v3/marketing/contacts/imports/{id} (injected sleep) until not pending; rows in the
    errors_url CSV are rejected, the rest accepted; a "failed" job rejects every row.
  remove_batches(emails): 100 per batch. submit_remove: search/emails then DELETE
    /v3/marketing/lists/{id}/contacts?contact_ids=... (contacts are never deleted); emails > 100 chars
    can't be searched and are rejected with that reason. Outcomes are known at submit time.
  existing_members(target, candidates): which candidates are already on the list (search/emails, 100 a
    call, 404 = none found); MEMBERSHIP_LOOKUP describes the cost.
Standard field mapping: first_name, last_name, country, state->state_province_region, city,
postal_code, address->address_line_1; other keys go to custom_fields only if custom_field_ids maps
them to a SendGrid custom field id (else dropped: custom fields must pre-exist in SendGrid).
FIELD_LIMITS: standard field key -> max characters (for the export wizard).
pipeline_depth: import jobs the export runner may keep in flight before collecting the oldest: about
    120k contacts' worth, 4 to 16 (4 at the default 30k per job).
"""
from __future__ import annotations

import csv
import io
import re
from typing import Any, Callable, Iterable, Iterator

import httpx

from connectors.base import (Contact, MembershipLookup, Outcome, Submission, Target, VerifyResult, batched,
                             complete_outcomes, json_text_bytes)
from connectors.errors import ConnectorError, PermissionMissingError, TransientError, VendorError
from connectors.http import RetryPolicy, VendorClient, get_logger, poll_until
from connectors.spec import EXPORT, LOCATION_FIELDS, NAME_FIELDS, SANDBOX, VendorSpec

log = get_logger("connectors.sendgrid")

VENDOR = "sendgrid"
DEFAULT_BASE_URL = "https://api.sendgrid.com"
MAX_BATCH_CONTACTS = 30_000
MAX_BATCH_BYTES = 6_000_000
MAX_SEARCH_EMAILS = 100
MAX_SEARCH_EMAIL_CHARS = 100
MAX_IDS_PER_DELETE = 100
EMAIL_MAX = 254

FIELD_MAP = {
    "first_name": "first_name",
    "last_name": "last_name",
    "country": "country",
    "state": "state_province_region",
    "city": "city",
    "postal_code": "postal_code",
    "address": "address_line_1",
}
# Limits by SendGrid field name (from the spec), and by our standard key for the wizard.
_SG_LIMITS = {"first_name": 50, "last_name": 50, "city": 60, "state_province_region": 50, "country": 50,
              "address_line_1": 100, "address_line_2": 100, "email": EMAIL_MAX}
FIELD_LIMITS: dict[str, int] = {"email": EMAIL_MAX, **{k: _SG_LIMITS[v] for k, v in FIELD_MAP.items() if v in _SG_LIMITS}}

SPEC = VendorSpec(
    vendor=VENDOR, label="SendGrid", kind=EXPORT,
    description="Adds contacts to a SendGrid Marketing Campaigns list.",
    regions={"production": DEFAULT_BASE_URL, "eu": "https://api.eu.sendgrid.com",
             SANDBOX: "http://sandbox.sendgrid.local"},
    client="connectors.sendgrid:SendGridClient",
    docs_url="https://www.twilio.com/docs/sendgrid/api-reference",
    privacy_url="https://www.twilio.com/en-us/legal/privacy",
    rate_limits={"default": None},   # SendGrid publishes no numbers: pace from 429 and its rate headers
    pipeline_depth=4,                # at the default batch size; SendGridClient.pipeline_depth scales it
    field_limits=FIELD_LIMITS,
    fields=NAME_FIELDS + LOCATION_FIELDS,
    target_modes=("name", "id", "pick"),
    contact_limit=100_000, contact_limit_per_account=True,   # "at most 100,000 profiles in total"
    contacts_per_s=100_000 / (3 * 3600),   # "100,000 profiles ... can take up to a few hours" (read as 3 h)
)

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_ENVELOPE_OVERHEAD = 200  # {"list_ids":["<uuid>"],"contacts":[...]}


def _json_len(s: str) -> int:
    """Cheap upper-ish estimate of the JSON-encoded byte length of a string (with quotes)."""
    n = len(s) if s.isascii() else len(s.encode("utf-8"))
    return n + 2 + s.count('"') + s.count("\\")


class SendGridClient(VendorClient):
    vendor = VENDOR
    default_base_url = DEFAULT_BASE_URL
    # Import jobs are asynchronous: enough of them in flight that SendGrid's processing time does not
    # cap the rate (jobs in flight / job latency), but at most ~120k contacts held (4 jobs of 30k).
    IN_FLIGHT_CONTACTS = 120_000

    @property
    def pipeline_depth(self) -> int:
        return max(4, min(16, self.IN_FLIGHT_CONTACTS // max(1, self.max_batch_contacts)))

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        transport: httpx.BaseTransport | None = None,
        rate_limits: Any = True,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] | None = None,
        max_batch_contacts: int = MAX_BATCH_CONTACTS,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        poll_interval_s: float = 0.25,      # then doubling up to max_poll_interval_s: a job done in a second
        max_poll_interval_s: float = 10.0,  # is seen after ~0.75 s (was 2.5 s), a long one polled as often
        max_poll_s: float = 3600.0,
        timeout: Any = None,
        retry: RetryPolicy | None = None,
        on_behalf_of: str | None = None,
        custom_field_ids: dict[str, str] | None = None,
        rand: Callable[[], float] | None = None,
    ) -> None:
        self._init_http(api_key, {"Authorization": f"Bearer {api_key}"}, base_url=base_url, transport=transport,
                        rate_limits=rate_limits, sleep=sleep, clock=clock, timeout=timeout, retry=retry, rand=rand,
                        extra_headers={"on-behalf-of": on_behalf_of} if on_behalf_of else None)
        self.max_batch_contacts = min(max_batch_contacts, MAX_BATCH_CONTACTS)
        self.max_batch_bytes = min(max_batch_bytes, MAX_BATCH_BYTES)
        self.poll_interval_s = poll_interval_s
        self.max_poll_interval_s = max_poll_interval_s
        self.max_poll_s = max_poll_s
        self.custom_field_ids = dict(custom_field_ids or {})


    def verify(self) -> VerifyResult:
        try:
            resp = self.http.get("/v3/scopes")
            scopes = self.http.json(resp).get("scopes") or []
            self.http.get("/v3/marketing/lists", params={"page_size": 1}, on_error=self._marketing_403)
        except ConnectorError as exc:
            return VerifyResult(False, exc.user_message, exc.detail)
        return VerifyResult(True, "Connected to SendGrid. The key can manage Marketing contacts and lists.",
                            f"{len(scopes)} scopes")

    def _marketing_403(self, resp: httpx.Response) -> ConnectorError | None:
        if resp.status_code == 403:
            return PermissionMissingError(
                "The SendGrid API key works but lacks Marketing access. Give the key Marketing "
                "permissions (or full access) in SendGrid and try again.",
                status=403, vendor=VENDOR)
        return None

    # ------------------------------------------------------------ lists
    def list_targets(self) -> list[Target]:
        targets: list[Target] = []
        url: str | None = "/v3/marketing/lists?page_size=1000"
        seen: set[str] = set()
        while url:
            body = self.http.json(self.http.get(url, on_error=self._marketing_403))
            for item in body.get("result") or []:
                targets.append(Target(id=str(item["id"]), name=item.get("name", "")))
            nxt = (body.get("_metadata") or {}).get("next")
            if not nxt or nxt in seen:
                break
            seen.add(nxt)
            url = self._same_host_path(nxt)
        return targets

    def _same_host_path(self, url: str) -> str:
        """_metadata.next is absolute; keep only path+query so we stay on our configured base URL."""
        u = httpx.URL(url)
        return u.raw_path.decode("ascii")

    def find_target(self, name: str) -> Target | None:
        for t in self.list_targets():
            if t.name == name:
                return t
        return None

    def create_target(self, name: str) -> Target:
        if not 1 <= len(name) <= 100:
            raise VendorError("SendGrid list names must be 1 to 100 characters long.", vendor=VENDOR)

        def on_error(resp: httpx.Response) -> ConnectorError | None:
            if resp.status_code == 400:
                return VendorError(f"SendGrid would not create the list: {_first_message(resp)}",
                                   status=400, vendor=VENDOR)
            return self._marketing_403(resp)

        body = self.http.json(self.http.post("/v3/marketing/lists", json={"name": name}, on_error=on_error))
        return Target(id=str(body["id"]), name=body.get("name", name))

    # ------------------------------------------------------------ upsert
    def _size_of(self, c: Contact) -> int:
        """Upper-ish estimate of the contact's JSON bytes, in ONE pass over the joined values (this runs
        for every contact of a 1M export). Values are not truncated here, so the estimate can only be
        larger than what _to_sendgrid sends (safe for the byte budget)."""
        vals = [c.email]
        overhead = 16  # {"email":"",} around the email
        for k, v in c.fields.items():
            if v is None:
                continue
            key = FIELD_MAP.get(k)
            if key is None:
                key = self.custom_field_ids.get(k)
                if key is None:
                    continue
                overhead += 18  # custom_fields wrapper, counted generously
            overhead += len(key) + 6  # "key":"",
            vals.append(v)
        return overhead + json_text_bytes("".join(vals))

    def upsert_batches(self, contacts: Iterable[Contact]) -> Iterator[list[Contact]]:
        budget = int(self.max_batch_bytes * 0.98) - _ENVELOPE_OVERHEAD
        return batched(contacts, self.max_batch_contacts, budget, self._size_of)

    def _to_sendgrid(self, c: Contact) -> dict[str, Any]:
        d: dict[str, Any] = {"email": c.email}
        custom: dict[str, str] | None = None
        for k, v in c.fields.items():
            if v is None:
                continue
            key = FIELD_MAP.get(k)
            if key is None:
                cf = self.custom_field_ids.get(k)
                if cf is not None:
                    if custom is None:
                        custom = {}
                    custom[cf] = v
                continue
            limit = _SG_LIMITS.get(key)
            d[key] = v[:limit] if limit is not None and len(v) > limit else v
        if custom:
            d["custom_fields"] = custom
        return d

    def submit_upsert(self, batch: list[Contact], target: Target) -> Submission:
        emails = [c.email for c in batch]
        rejected: dict[str, str] = {}
        payload = []
        for c in batch:
            if len(c.email) > EMAIL_MAX:
                rejected[c.email] = f"SendGrid accepts email addresses of at most {EMAIL_MAX} characters."
            elif not c.email:
                rejected[c.email] = "The contact has no email address."
            else:
                payload.append(self._to_sendgrid(c))
        job_id = None
        if payload:
            def on_error(resp: httpx.Response) -> ConnectorError | None:
                if resp.status_code in (400, 413):
                    return VendorError(f"SendGrid refused the batch: {_first_message(resp)}",
                                       status=resp.status_code, vendor=VENDOR)
                return self._marketing_403(resp)

            resp = self.http.put("/v3/marketing/contacts", json={"list_ids": [target.id], "contacts": payload},
                                 on_error=on_error)
            job_id = self.http.json(resp).get("job_id")
            if not job_id:
                raise VendorError("SendGrid accepted the batch but gave no job id.", vendor=VENDOR)
        return Submission(VENDOR, "upsert", job_id, emails, None, target, {"rejected": rejected} if rejected else {})

    # ------------------------------------------------------------ collect
    def collect(self, submission: Submission) -> list[Outcome]:
        if submission.outcomes is not None:
            return submission.outcomes
        rejected = dict(submission.extra.get("rejected") or {})
        reported: list[Outcome] = [Outcome(e, "rejected", r) for e, r in rejected.items()]
        if submission.job_id is None:
            return complete_outcomes(submission.emails, reported)
        job = self._wait_for_job(submission.job_id)
        status = job.get("status")
        results = job.get("results") or {}
        errors_url = results.get("errors_url")
        if status in ("errored", "failed") and errors_url:
            reported += self._read_errors(errors_url)
        failed = status == "failed"
        if status == "errored" and not errors_url and results.get("errored_count"):
            log.warning("sendgrid job %s reports %s errors but no errors_url", submission.job_id,
                        results.get("errored_count"))
        outcomes = complete_outcomes(submission.emails, reported, "rejected" if failed else "accepted",
                                     "SendGrid could not process this import job." if failed else None)
        submission.outcomes = outcomes
        return outcomes

    def _wait_for_job(self, job_id: str) -> dict:
        def check() -> dict | None:
            body = self.http.json(self.http.get(f"/v3/marketing/contacts/imports/{job_id}"))
            return None if body.get("status") == "pending" else body

        return poll_until(check, sleep=self.http.sleep, interval_s=self.poll_interval_s,
                          max_interval_s=self.max_poll_interval_s, max_wait_s=self.max_poll_s, growth=2.0,
                          on_timeout=lambda: TransientError(
                              "SendGrid is still processing the import. Resume the export later to collect the "
                              "results.", vendor=VENDOR, resume={"job_id": job_id}))

    def _read_errors(self, url: str) -> list[Outcome]:
        resp = self.http.get(url)
        reader = csv.reader(io.StringIO(resp.text))
        header = [h.strip().lower() for h in next(reader, [])]
        if not header:
            return []
        email_col = header.index("email") if "email" in header else 0
        err_col = next((i for i, h in enumerate(header) if h in ("error", "errors", "message", "reason")), None)
        out = []
        for row in reader:
            if len(row) <= email_col or not row[email_col]:
                continue
            reason = row[err_col] if err_col is not None and err_col < len(row) else "rejected by SendGrid"
            out.append(Outcome(row[email_col], "rejected", f"SendGrid: {reason}"))
        return out

    # ------------------------------------------------------------ remove
    def remove_batches(self, emails: Iterable[str]) -> Iterator[list[str]]:
        return batched(emails, MAX_SEARCH_EMAILS)

    def submit_remove(self, emails: list[str], target: Target) -> Submission:
        reported: list[Outcome] = []
        searchable = []
        for e in emails:
            if len(e) > MAX_SEARCH_EMAIL_CHARS:
                reported.append(Outcome(e, "rejected",
                                        "SendGrid can't look up email addresses longer than 100 characters, "
                                        "so it could not be removed from the list. Remove it in SendGrid."))
            elif not _EMAIL_RE.match(e):
                reported.append(Outcome(e, "rejected", "Not a valid email address."))
            else:
                searchable.append(e)
        ids: list[str] = []
        job_ids: list[str] = []
        for chunk in batched(searchable, MAX_SEARCH_EMAILS):
            resp = self.http.post("/v3/marketing/contacts/search/emails", json={"emails": chunk},
                                  ok=(200, 404), on_error=self._search_error)
            result = self.http.json(resp).get("result") or {} if resp.status_code == 200 else {}
            lowered = {k.lower(): v for k, v in result.items()}
            for e in chunk:
                entry = lowered.get(e.lower()) or {}
                contact = entry.get("contact")
                if not contact:
                    reported.append(Outcome(e, "accepted", "Not a SendGrid contact, so not on the list."))
                elif target.id not in (contact.get("list_ids") or []):
                    reported.append(Outcome(e, "accepted", "Was not on the list."))
                else:
                    ids.append(contact["id"])
        for chunk in batched(ids, MAX_IDS_PER_DELETE):
            resp = self.http.delete(f"/v3/marketing/lists/{target.id}/contacts",
                                    params={"contact_ids": ",".join(chunk)}, on_error=self._marketing_403)
            if resp.content:
                jid = self.http.json(resp).get("job_id")
                if jid:
                    job_ids.append(jid)
        outcomes = complete_outcomes(emails, reported)
        return Submission(VENDOR, "remove", job_ids[0] if job_ids else None, list(emails), outcomes, target,
                          {"job_ids": job_ids})

    # ------------------------------------------------------------ membership lookup
    MEMBERSHIP_LOOKUP = MembershipLookup(
        "search", MAX_SEARCH_EMAILS, 20.0,
        "POST /v3/marketing/contacts/search/emails, 100 emails a call; SendGrid publishes no rate (paced from "
        "its X-RateLimit headers), 20/s assumed as in the emulator")

    def existing_members(self, target: Target, candidates: Iterable[str]) -> Iterator[str]:
        """Candidates already on the list, by POST /v3/marketing/contacts/search/emails (100 a call; a 404
        means none of them is a contact). Addresses the search cannot take (over 100 characters, not an
        email) are not looked up: they count as not on the list (and SendGrid could not remove them either)."""
        searchable = (e for e in candidates if e and len(e) <= MAX_SEARCH_EMAIL_CHARS and _EMAIL_RE.match(e))
        for chunk in batched(searchable, MAX_SEARCH_EMAILS):
            resp = self.http.post("/v3/marketing/contacts/search/emails", json={"emails": chunk},
                                  ok=(200, 404), on_error=self._search_error)
            if resp.status_code == 404:
                continue
            for email, entry in (self.http.json(resp).get("result") or {}).items():
                contact = (entry or {}).get("contact") if isinstance(entry, dict) else None
                if contact and target.id in (contact.get("list_ids") or []):
                    yield str(contact.get("email") or email).lower()

    def _search_error(self, resp: httpx.Response) -> ConnectorError | None:
        if resp.status_code == 400:
            return VendorError(f"SendGrid refused the email lookup: {_first_message(resp)}", status=400, vendor=VENDOR)
        return self._marketing_403(resp)


def _first_message(resp: httpx.Response) -> str:
    try:
        errors = resp.json().get("errors") or []
        msg = errors[0].get("message") if errors else None
    except (ValueError, AttributeError, IndexError):
        msg = None
    return (msg or f"HTTP {resp.status_code}")[:200]
