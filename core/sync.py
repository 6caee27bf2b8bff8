"""Pure sync rules for segment exports (no I/O): emails, field limits, hashing, plan rules.

API
---
normalize_email(raw) -> str | None          trimmed + lower-cased; None when empty
email_problem(email) -> str | None          None when the syntax is valid (email-validator, no DNS),
                                            else a short reason. A strict ASCII fast path accepts the
                                            common shapes without calling email-validator (1 M rows/run).
apply_field_limits(fields, limits, policy) -> (fields, problem | None)
                                            policy "truncate" cuts values to the limit; "skip" returns
                                            the problem ("first_name is 63 characters; the limit is 50").
contact_hash(pairs) -> str                  md5 over (field, value) pairs; SAME algorithm as the SQL in
                                            storage/exports.py (hash_sql) so tests can compare.
FieldSpec(key, label, default_attribute)    a field an export can fill (each vendor's list is in its
                                            SPEC, connectors/<vendor>.py: fields, limits, contact limits,
                                            target word and default target name live there, once)
DEFAULT_MAX_REMOVAL_SHARE = 0.2             guard: removing more than this share of a list needs confirming
removal_share(removals, list_size) -> float
needs_removal_confirmation(removals, list_size, max_share) -> bool
Skip reasons: SKIP_INVALID_EMAIL, SKIP_MISSING_EMAIL, SKIP_DUPLICATE, SKIP_NO_CONSENT, SKIP_OVER_LIMIT.
Plan actions: ADD, UPDATE, RETRY, REMOVE, SKIP (rows of a plan), UNCHANGED (counted only).
check_counts(counts) -> list[str]           problems if planned != sent + skipped or
                                            sent != accepted + rejected + pending (empty = consistent)
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass


# -------------------------------------------------------------------------------- vocabulary
ADD, UPDATE, RETRY, REMOVE, SKIP, UNCHANGED = "add", "update", "retry", "remove", "skip", "unchanged"
UPSERT_ACTIONS = (ADD, UPDATE, RETRY)

SKIP_MISSING_EMAIL = "no email"
SKIP_INVALID_EMAIL = "invalid email"
SKIP_DUPLICATE = "duplicate"
SKIP_NO_CONSENT = "no consent"
SKIP_OVER_LIMIT = "over a limit"
SKIP_REASONS = (SKIP_MISSING_EMAIL, SKIP_INVALID_EMAIL, SKIP_DUPLICATE, SKIP_NO_CONSENT, SKIP_OVER_LIMIT)

EMAIL_FIELD = "email"   # a mapping item for this field names the attribute holding the email (data matching)

MODE_MIRROR, MODE_ADD_ONLY = "mirror", "add_only"
SYNC_MODES = {MODE_MIRROR: "Mirror (add, update and remove contacts that left the segment)",
              MODE_ADD_ONLY: "Add only (add and update; never remove)"}
OVER_LIMIT_TRUNCATE, OVER_LIMIT_SKIP = "truncate", "skip"

DEFAULT_MAX_REMOVAL_SHARE = 0.2
EMAIL_MAX_CHARS = 254

# -------------------------------------------------------------------------------- export fields


@dataclass(frozen=True)
class FieldSpec:
    key: str            # connector standard key (connectors.base.STANDARD_FIELDS) or a data-field name
    label: str
    default_attribute: str | None = None   # catalogue key suggested by the wizard


_DATA_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


def valid_data_field_name(name: str) -> bool:
    return bool(_DATA_FIELD_NAME.match(name or ""))


# -------------------------------------------------------------------------------- emails

def normalize_email(raw: object) -> str | None:
    if raw is None:
        return None
    email = str(raw).strip().lower()
    return email or None


_ATOM = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
# Plain ASCII dot-atom @ hostname with an alphabetic TLD; labels with "--" (IDNA) go the slow path.
_FAST_EMAIL = re.compile(rf"^{_ATOM}(?:\.{_ATOM})*@(?:{_LABEL}\.)+[a-z]{{2,63}}$")
# The same pattern for DuckDB's regexp_full_match (which anchors both ends itself): plans check in SQL first.
FAST_EMAIL_SQL = _FAST_EMAIL.pattern.removeprefix("^").removesuffix("$")
_SPECIAL_USE = ("arpa", "invalid", "local", "localhost", "onion", "test")


def _fast_valid(email: str) -> bool:
    if len(email) > EMAIL_MAX_CHARS or not _FAST_EMAIL.match(email):
        return False
    local, _, domain = email.rpartition("@")
    if len(local) > 64 or len(domain) > 253 or "--" in domain:
        return False
    return not any(domain == s or domain.endswith("." + s) for s in _SPECIAL_USE)


def email_problem(email: str | None) -> str | None:
    """None if the address is syntactically valid, else a plain reason (no DNS lookups)."""
    if not email:
        return SKIP_MISSING_EMAIL
    if _fast_valid(email):
        return None
    # imported here: its module compiles its patterns on import (~13 ms of a fresh process), and only an
    # address the fast path does not accept needs it
    from email_validator import EmailNotValidError, validate_email

    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError as exc:
        return f"{SKIP_INVALID_EMAIL}: {exc}"
    if len(email) > EMAIL_MAX_CHARS:
        return f"{SKIP_INVALID_EMAIL}: longer than {EMAIL_MAX_CHARS} characters"
    return None


# -------------------------------------------------------------------------------- fields

def apply_field_limits(fields: dict[str, object], limits: dict[str, int], policy: str = OVER_LIMIT_TRUNCATE
                       ) -> tuple[dict[str, str | None], str | None]:
    """Stringify values and enforce max lengths. Returns (fields, problem) — problem only for "skip"."""
    out: dict[str, str | None] = {}
    for key, value in fields.items():
        if value is None:
            out[key] = None
            continue
        text = value if isinstance(value, str) else str(value)
        limit = limits.get(key)
        if limit is not None and len(text) > limit:
            if policy == OVER_LIMIT_SKIP:
                return out, f"{SKIP_OVER_LIMIT}: {key} is {len(text)} characters; the limit is {limit}"
            text = text[:limit]
        out[key] = text
    return out, None


HASH_SEPARATOR = "\x1f"
HASH_NULL = "\x00"


def contact_hash(pairs: list[tuple[str, object]]) -> str:
    """md5 hex of 'key=value' joined by \\x1f (NULL -> \\x00); mirrors storage.exports.hash_sql."""
    parts = [f"{k}={HASH_NULL if v is None else str(v)}" for k, v in pairs]
    return hashlib.md5(HASH_SEPARATOR.join(parts).encode("utf-8")).hexdigest()


# -------------------------------------------------------------------------------- guards and counts

def removal_share(removals: int, list_size: int) -> float:
    if list_size <= 0:
        return 0.0
    return removals / list_size


def needs_removal_confirmation(removals: int, list_size: int, max_share: float = DEFAULT_MAX_REMOVAL_SHARE) -> bool:
    return removals > 0 and removal_share(removals, list_size) > max_share


def check_counts(counts: dict) -> list[str]:
    problems = []
    planned, sent, skipped = counts.get("planned", 0), counts.get("sent", 0), counts.get("skipped", 0)
    if planned != sent + skipped:
        problems.append(f"planned {planned} != sent {sent} + skipped {skipped}")
    acc, rej, pend = counts.get("accepted", 0), counts.get("rejected", 0), counts.get("pending", 0)
    if sent != acc + rej + pend:
        problems.append(f"sent {sent} != accepted {acc} + rejected {rej} + pending {pend}")
    return problems


def estimate_seconds_left(done: int, total: int, elapsed_s: float) -> float | None:
    if done <= 0 or total <= done or elapsed_s <= 0:
        return None if done <= 0 else 0.0
    return elapsed_s / done * (total - done)
