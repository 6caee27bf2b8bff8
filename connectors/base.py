"""Data classes, the ExportClient protocol and streaming helpers shared by all connectors.

API
---
STANDARD_FIELDS = ("first_name", "last_name", "country", "state", "city", "postal_code", "address")
Contact(email: str, fields: dict[str, str|None] = {})          .to_dict() / Contact.from_dict(d)
Target(id: str, name: str)                                     .to_dict() / from_dict
Outcome(email: str, status: "accepted"|"rejected"|"pending", reason: str|None = None)
Submission(vendor, kind: "upsert"|"remove", job_id: str|None, emails: list[str],
           outcomes: list[Outcome]|None = None, target: Target|None = None, extra: dict = {})
    JSON-serialisable (to_dict/from_dict) so the export runner persists it BEFORE collect();
    `extra` holds vendor state needed to collect (e.g. SendGrid job ids for remove batches).
VerifyResult(ok: bool, message: str, detail: str|None = None)
ExportClient (typing.Protocol): vendor; verify(); list_targets(); find_target(name);
    create_target(name); upsert_batches(contacts) -> Iterator[list[Contact]];
    submit_upsert(batch, target) -> Submission; remove_batches(emails) -> Iterator[list[str]];
    submit_remove(emails, target) -> Submission; collect(submission) -> list[Outcome]; close()
    existing_members(target, candidates) -> Iterator[str]   membership lookup (issue 13): lower-cased
        emails already on `target`. MEMBERSHIP_LOOKUP says how: "search" clients look up exactly the
        candidates (SendGrid: search/emails, 100 a call); "list" clients ignore them and read the
        whole list once (Iterable getUsers, 5 calls/min; Omnisend contacts by tag, 250 a page).
MembershipLookup(strategy: "search"|"list", per_request: int, requests_per_s: float|None, limit_text: str)
batched(items, max_count, max_bytes=None, size_of=None) -> Iterator[list]
    Streams batches of at most max_count items and (if max_bytes) at most max_bytes by size_of(item)
    (+1 separator byte per item). An item larger than max_bytes alone is yielded on its own
    (the client decides whether to reject it). Holds one batch at a time.
complete_outcomes(emails, outcomes, default_status="accepted", default_reason=None) -> list[Outcome]
    Exactly one outcome per email in `emails` order (first one reported wins; unreported get default).
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Iterator, Literal, Protocol, TypeVar, runtime_checkable

T = TypeVar("T")

STANDARD_FIELDS = ("first_name", "last_name", "country", "state", "city", "postal_code", "address")

OutcomeStatus = Literal["accepted", "rejected", "pending"]
SubmissionKind = Literal["upsert", "remove"]


@dataclass(slots=True)
class Contact:
    email: str
    fields: dict[str, str | None] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"email": self.email, "fields": dict(self.fields)}

    @classmethod
    def from_dict(cls, d: dict) -> "Contact":
        return cls(email=d["email"], fields=dict(d.get("fields") or {}))


@dataclass(slots=True)
class Target:
    id: str
    name: str

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name}

    @classmethod
    def from_dict(cls, d: dict) -> "Target":
        return cls(id=str(d["id"]), name=d["name"])


@dataclass(slots=True)
class Outcome:
    email: str
    status: OutcomeStatus
    reason: str | None = None

    def to_dict(self) -> dict:
        return {"email": self.email, "status": self.status, "reason": self.reason}

    @classmethod
    def from_dict(cls, d: dict) -> "Outcome":
        return cls(email=d["email"], status=d["status"], reason=d.get("reason"))


@dataclass(slots=True)
class Submission:
    vendor: str
    kind: SubmissionKind
    job_id: str | None
    emails: list[str]
    outcomes: list[Outcome] | None = None
    target: Target | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "vendor": self.vendor,
            "kind": self.kind,
            "job_id": self.job_id,
            "emails": list(self.emails),
            "outcomes": None if self.outcomes is None else [o.to_dict() for o in self.outcomes],
            "target": None if self.target is None else self.target.to_dict(),
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Submission":
        outcomes = d.get("outcomes")
        target = d.get("target")
        return cls(
            vendor=d["vendor"],
            kind=d["kind"],
            job_id=d.get("job_id"),
            emails=list(d.get("emails") or []),
            outcomes=None if outcomes is None else [Outcome.from_dict(o) for o in outcomes],
            target=None if target is None else Target.from_dict(target),
            extra=dict(d.get("extra") or {}),
        )


@dataclass(slots=True)
class VerifyResult:
    ok: bool
    message: str
    detail: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "VerifyResult":
        return cls(ok=bool(d["ok"]), message=d["message"], detail=d.get("detail"))


@dataclass(frozen=True)
class MembershipLookup:
    """How a vendor answers "is this contact already on the list": for the runner and the bench."""
    strategy: Literal["search", "list"]
    per_request: int                  # emails searched (search) or list members read (list) per request
    requests_per_s: float | None      # the documented (or, unpublished, the emulated) rate of that endpoint
    limit_text: str                   # that rate in words, with where it comes from

    def requests_for(self, candidates: int, list_size: int) -> int:
        """Requests one lookup costs: the candidates searched, or the whole list read once."""
        n = candidates if self.strategy == "search" else list_size
        return max(1, -(-n // self.per_request))


@runtime_checkable
class ExportClient(Protocol):
    vendor: str

    def verify(self) -> VerifyResult: ...
    def list_targets(self) -> list[Target]: ...
    def find_target(self, name: str) -> Target | None: ...
    def create_target(self, name: str) -> Target: ...
    def upsert_batches(self, contacts: Iterable[Contact]) -> Iterator[list[Contact]]: ...
    def submit_upsert(self, batch: list[Contact], target: Target) -> Submission: ...
    def remove_batches(self, emails: Iterable[str]) -> Iterator[list[str]]: ...
    def submit_remove(self, emails: list[str], target: Target) -> Submission: ...
    def collect(self, submission: Submission) -> list[Outcome]: ...
    def existing_members(self, target: Target, candidates: Iterable[str]) -> Iterator[str]: ...
    def close(self) -> None: ...


_JSON_CONTROL = re.compile(r"[\x00-\x1f]")


def json_text_bytes(text: str) -> int:
    """The bytes `text` takes inside a JSON string (without its quotes), as orjson and json write it: UTF-8,
    a backslash before each quote and backslash, and six bytes (\\u00XX or a two-byte escape, counted as six)
    for each control character. An upper bound, never less (the batch byte budgets rely on it)."""
    n = len(text) if text.isascii() else len(text.encode("utf-8"))
    if '"' in text or "\\" in text:
        n += text.count('"') + text.count("\\")
    if not text.isprintable():   # cheap test first: most contacts have no control character at all
        n += 5 * len(_JSON_CONTROL.findall(text))
    return n


def batched(
    items: Iterable[T],
    max_count: int,
    max_bytes: int | None = None,
    size_of: Callable[[T], int] | None = None,
) -> Iterator[list[T]]:
    """Yield lists of at most max_count items and (optionally) max_bytes total size."""
    if max_count < 1:
        raise ValueError("max_count must be >= 1")
    batch: list[T] = []
    if max_bytes is None or size_of is None:
        for item in items:
            batch.append(item)
            if len(batch) >= max_count:
                yield batch
                batch = []
    else:
        total = 0
        for item in items:
            size = size_of(item) + 1
            if batch and (len(batch) >= max_count or total + size > max_bytes):
                yield batch
                batch, total = [], 0
            batch.append(item)
            total += size
    if batch:
        yield batch


def complete_outcomes(
    emails: Iterable[str],
    outcomes: Iterable[Outcome],
    default_status: OutcomeStatus = "accepted",
    default_reason: str | None = None,
) -> list[Outcome]:
    """One outcome per email in order: reported ones (matched case-insensitively) else the default."""
    by_email: dict[str, Outcome] = {}
    for o in outcomes:
        by_email.setdefault(o.email.lower(), o)
    if not by_email:   # the vendor reported nothing (the usual job of 30,000): no per-email lookups
        return [Outcome(e, default_status, default_reason) for e in emails]
    result = []
    for e in emails:
        o = by_email.get(e.lower())
        if o is None:
            result.append(Outcome(e, default_status, default_reason))
        else:
            result.append(Outcome(e, o.status, o.reason))
    return result
