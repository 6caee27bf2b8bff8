"""Iterable lists export client.

IterableClient(api_key, *, base_url="https://api.iterable.com", transport=None, rate_limits=True,
               sleep=None, clock=None, batch_size=1000, timeout=None, retry=None)
Implements connectors.base.ExportClient (all Iterable calls are synchronous, so submit_* already
carries the outcomes and collect() just returns them):
  verify(): GET /api/lists.   list_targets()/find_target(name)/create_target(name): GET/POST /api/lists.
  upsert_batches(contacts): <= batch_size (<= 1000).   submit_upsert: POST /api/lists/subscribe with
    {listId, subscribers:[{email, dataFields}], updateExistingUsersOnly:false}; each failedUpdates category
    -> rejected with a reason naming it.
  remove_batches(emails) / submit_remove: POST /api/lists/unsubscribe with channelUnsubscribe:false;
    notFoundEmails count as accepted (the user is not on the list).
  existing_members(target): every member, from GET /api/lists/getUsers (text/plain, one email a line;
    5 calls/min, its own "getUsers" rate bucket): the export runner reads it once per run.
Field mapping (FIELD_MAP): first_name->firstName, last_name->lastName, city, state, country,
postal_code->postalCode, address->address; any other key is sent as is in dataFields.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

import httpx

from connectors.base import (Contact, MembershipLookup, Outcome, Submission, Target, VerifyResult, batched,
                             complete_outcomes)
from connectors.errors import ConnectorError, RecordRejectedError, VendorError
from connectors.http import RateLimit, RetryPolicy, VendorClient, get_logger
from connectors.spec import EXPORT, NAME_FIELDS, SANDBOX, VendorSpec

log = get_logger("connectors.iterable")

VENDOR = "iterable"
DEFAULT_BASE_URL = "https://api.iterable.com"
MAX_BATCH = 1000
GET_USERS_LIMIT = RateLimit(5, 60.0)   # GET /api/lists/getUsers: 5 requests/min (Iterable's spec)
FIELD_MAP = {"first_name": "firstName", "last_name": "lastName", "city": "city", "state": "state",
             "country": "country", "postal_code": "postalCode", "address": "address"}
FIELD_LIMITS: dict[str, int] = {}  # Iterable documents no per-field limits

SPEC = VendorSpec(
    vendor=VENDOR, label="Iterable", kind=EXPORT,
    description="Subscribes users to an Iterable static list.",
    regions={"production": DEFAULT_BASE_URL, "eu": "https://api.eu.iterable.com",
             SANDBOX: "http://sandbox.iterable.local"},
    client="connectors.iterable:IterableClient",
    docs_url="https://api.iterable.com/api/docs",
    privacy_url="https://iterable.com/trust/privacy-policy/",
    rate_limits={"default": None},   # lists GET is 100/s (its own bucket below); subscribe/unsubscribe unstated
    # Synchronous (outcomes come with the answer): in-flight submissions only let the export runner
    # store several in one transaction.
    pipeline_depth=8,
    field_limits=FIELD_LIMITS,
    fields=NAME_FIELDS,
    data_fields=True,                # any catalogue attribute may be sent as a dataFields entry
    target_name_editable=False,      # the list is named after the segment (found or created)
    contact_limit=1_000_000,
    contacts_per_s=1_000_000 / (30 * 60),   # "1 million ... up to 30 minutes"
)

CATEGORY_REASONS = {
    "invalidEmails": "Iterable: invalid email address (invalidEmails).",
    "notFoundEmails": "Iterable: user not found (notFoundEmails).",
    "forgottenEmails": "Iterable: user was forgotten at their request (GDPR) and can't be added (forgottenEmails).",
    "conflictEmails": "Iterable: conflicts with another user's email or userId (conflictEmails).",
    "invalidDataEmails": "Iterable: some field values were invalid for this project (invalidDataEmails).",
}


class IterableClient(VendorClient):
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
        batch_size: int = MAX_BATCH,
        timeout: Any = None,
        retry: RetryPolicy | None = None,
        rand: Callable[[], float] | None = None,
    ) -> None:
        if rate_limits is True:   # the documented limits, plus getUsers' own bucket
            rate_limits = {**SPEC.rate_limits, "getUsers": GET_USERS_LIMIT}
        self._init_http(api_key, {"Api-Key": api_key}, base_url=base_url, transport=transport,
                        rate_limits=rate_limits, sleep=sleep, clock=clock, timeout=timeout, retry=retry, rand=rand)
        self.batch_size = max(1, min(batch_size, MAX_BATCH))


    def verify(self) -> VerifyResult:
        try:
            lists = self.http.json(self.http.get("/api/lists", on_error=self._on_error)).get("lists") or []
        except ConnectorError as exc:
            return VerifyResult(False, exc.user_message, exc.detail)
        return VerifyResult(True, "Connected to Iterable.", f"{len(lists)} lists visible")

    def _on_error(self, resp: httpx.Response) -> ConnectorError | None:
        code, msg = _code_msg(resp)
        if resp.status_code == 400 and code == "BatchTooLarge":
            return VendorError("Iterable said the batch was too large. Lower the batch size and retry.",
                               status=400, vendor=VENDOR)
        if resp.status_code == 400:
            return RecordRejectedError(f"Iterable rejected the request: {msg}", status=400, vendor=VENDOR)
        return None

    # ------------------------------------------------------------ lists
    def list_targets(self) -> list[Target]:
        body = self.http.json(self.http.get("/api/lists", on_error=self._on_error))
        return [Target(id=str(l["id"]), name=l.get("name", "")) for l in body.get("lists") or []]

    def find_target(self, name: str) -> Target | None:
        for t in self.list_targets():
            if t.name == name:
                return t
        return None

    def create_target(self, name: str) -> Target:
        body = self.http.json(self.http.post("/api/lists", json={"name": name}, on_error=self._on_error))
        if "listId" not in body:
            raise VendorError("Iterable created the list but did not say its id.", vendor=VENDOR)
        return Target(id=str(body["listId"]), name=name)

    # ------------------------------------------------------------ membership
    def upsert_batches(self, contacts: Iterable[Contact]) -> Iterator[list[Contact]]:
        return batched(contacts, self.batch_size)

    def remove_batches(self, emails: Iterable[str]) -> Iterator[list[str]]:
        return batched(emails, self.batch_size)

    @staticmethod
    def _subscriber(c: Contact) -> dict[str, Any]:
        data = {}
        for k, v in c.fields.items():
            if v is not None:
                data[FIELD_MAP.get(k, k)] = v
        return {"email": c.email, "dataFields": data} if data else {"email": c.email}

    def submit_upsert(self, batch: list[Contact], target: Target) -> Submission:
        body = {"listId": int(target.id), "subscribers": [self._subscriber(c) for c in batch],
                "updateExistingUsersOnly": False}
        result = self.http.json(self.http.post("/api/lists/subscribe", json=body, on_error=self._on_error))
        emails = [c.email for c in batch]
        return Submission(VENDOR, "upsert", None, emails, self._outcomes(emails, result, removing=False), target)

    def submit_remove(self, emails: list[str], target: Target) -> Submission:
        body = {"listId": int(target.id), "subscribers": [{"email": e} for e in emails], "channelUnsubscribe": False}
        result = self.http.json(self.http.post("/api/lists/unsubscribe", json=body, on_error=self._on_error))
        return Submission(VENDOR, "remove", None, list(emails), self._outcomes(emails, result, removing=True), target)

    def _outcomes(self, emails: list[str], result: dict, *, removing: bool) -> list[Outcome]:
        if not isinstance(result, dict) or "successCount" not in result:
            raise VendorError("Iterable returned an unexpected answer to a list update.", vendor=VENDOR,
                              detail=self.http.redact(str(result)[:300]))
        failed = result.get("failedUpdates") or {}
        reported: list[Outcome] = []
        for category, emails_in in failed.items():
            if not category.endswith("Emails") or not emails_in:
                continue
            if removing and category == "notFoundEmails":
                reported += [Outcome(e, "accepted", "Not an Iterable user, so not on the list.") for e in emails_in]
                continue
            reason = CATEGORY_REASONS.get(category, f"Iterable: rejected ({category}).")
            reported += [Outcome(e, "rejected", reason) for e in emails_in]
        # deprecated top-level field, only if failedUpdates did not report
        if not failed and result.get("invalidEmails"):
            reported += [Outcome(e, "rejected", CATEGORY_REASONS["invalidEmails"]) for e in result["invalidEmails"]]
        if result.get("filteredOutFields"):
            log.info("iterable dropped fields not allowed by the project: %s", result["filteredOutFields"])
        return complete_outcomes(emails, reported)

    # ------------------------------------------------------------ membership lookup
    MEMBERSHIP_LOOKUP = MembershipLookup(
        "list", 10**9, GET_USERS_LIMIT.count / GET_USERS_LIMIT.period_s,
        "GET /api/lists/getUsers, the whole list in one text/plain answer; 5 calls/min (Iterable's spec)")

    def existing_members(self, target: Target, candidates: Iterable[str] = ()) -> Iterator[str]:
        """Every member of the list, read ONCE: GET /api/lists/getUsers?listId= answers text/plain, one
        email per line (limited to 5 calls/min: its own client bucket; a 503 is retried)."""
        resp = self.http.get("/api/lists/getUsers", params={"listId": int(target.id)}, bucket="getUsers",
                             on_error=self._on_error)
        for line in resp.text.splitlines():
            email = line.strip().lower()
            if email:
                yield email

    def collect(self, submission: Submission) -> list[Outcome]:
        if submission.outcomes is None:  # cannot happen for Iterable (sync), but be safe on odd resumes
            raise VendorError("This Iterable batch has no stored results; send it again.", vendor=VENDOR)
        return submission.outcomes


def _code_msg(resp: httpx.Response) -> tuple[str | None, str]:
    try:
        body = resp.json()
        return body.get("code"), str(body.get("msg") or "")[:200]
    except (ValueError, AttributeError):
        return None, f"HTTP {resp.status_code}"
