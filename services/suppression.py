"""The suppression list (Admin > Suppression list): emails that exports never send.

Exports treat a suppressed email like an email opt-out: never sent, and removed by mirror exports
from lists they added it to. Emails are stored trimmed and lower-cased.

API
---
SuppressionInputError (message shown as is)
parse_csv(data: bytes | str) -> ParsedUpload(emails, invalid: list[(line, value, reason)], duplicates)
    the email column is the one named "email" (any case), else the first column; a header row is
    detected; UTF-8 (with or without BOM), falling back to Latin-1.
add_emails(db, actor, emails, reason=None) -> int          newly added
upload_csv(db, actor, data, reason=None) -> UploadResult(added, already, invalid)
remove_emails(db, actor, emails) -> int; clear(db, actor) -> int
count(db) -> int; list_page(db, *, search=None, limit=100, offset=0) -> list[dict]
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from core.errors import InputError
from core import sync
from core.permissions import Action, User, require
from storage import audit
from storage import exports as repo

MAX_UPLOAD_ROWS = 2_000_000


class SuppressionInputError(InputError, ValueError):
    pass


@dataclass
class ParsedUpload:
    emails: list[str] = field(default_factory=list)
    invalid: list[tuple[int, str, str]] = field(default_factory=list)
    duplicates: int = 0


@dataclass
class UploadResult:
    added: int
    already: int
    invalid: list[tuple[int, str, str]]


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data.lstrip("\ufeff")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def parse_csv(data: bytes | str) -> ParsedUpload:
    text = _decode(data)
    if not text.strip():
        raise SuppressionInputError("The file is empty. Upload a CSV with one email per row.")
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    rows = csv.reader(io.StringIO(text), dialect)
    out, seen = ParsedUpload(), set()
    column = 0
    for line_no, row in enumerate(rows, start=1):
        if line_no > MAX_UPLOAD_ROWS:
            raise SuppressionInputError(f"The file has more than {MAX_UPLOAD_ROWS:,} rows. Split it.")
        if not row or not any(c.strip() for c in row):
            continue
        if line_no == 1:
            lowered = [c.strip().lower() for c in row]
            if "email" in lowered:
                column = lowered.index("email")
                continue
            if "@" not in (row[0] or ""):
                continue  # some other header
        value = row[column] if column < len(row) else ""
        email = sync.normalize_email(value)
        problem = sync.email_problem(email)
        if problem:
            out.invalid.append((line_no, value, problem))
            continue
        if email in seen:
            out.duplicates += 1
            continue
        seen.add(email)
        out.emails.append(email)
    return out


def add_emails(db, actor: User, emails: list[str], reason: str | None = None) -> int:
    require(actor, Action.MANAGE_SUPPRESSION)
    clean = []
    for raw in emails:
        email = sync.normalize_email(raw)
        if sync.email_problem(email):
            raise SuppressionInputError(f"“{raw}” is not a valid email address.")
        clean.append(email)
    with db.transaction() as cur:
        added = repo.add_suppressed(cur, clean, (reason or "").strip() or None, actor.username)
        audit.record(cur, actor, "add_suppression", "suppression_list", None,
                     after={"added": added, "submitted": len(clean), "reason": reason})
    return added


def upload_csv(db, actor: User, data: bytes | str, reason: str | None = None) -> UploadResult:
    require(actor, Action.MANAGE_SUPPRESSION)
    parsed = parse_csv(data)
    if not parsed.emails and not parsed.invalid:
        raise SuppressionInputError("No email addresses found in the file.")
    with db.transaction() as cur:
        added = repo.add_suppressed(cur, parsed.emails, (reason or "").strip() or "uploaded", actor.username)
        audit.record(cur, actor, "upload_suppression", "suppression_list", None,
                     after={"added": added, "valid": len(parsed.emails), "invalid": len(parsed.invalid)})
    return UploadResult(added=added, already=len(parsed.emails) - added, invalid=parsed.invalid)


def remove_emails(db, actor: User, emails: list[str]) -> int:
    require(actor, Action.MANAGE_SUPPRESSION)
    clean = [e for e in (sync.normalize_email(x) for x in emails) if e]
    with db.transaction() as cur:
        removed = repo.remove_suppressed(cur, clean)
        audit.record(cur, actor, "remove_suppression", "suppression_list", None, after={"removed": removed})
    return removed


def clear(db, actor: User) -> int:
    require(actor, Action.MANAGE_SUPPRESSION)
    with db.transaction() as cur:
        n = repo.clear_suppressed(cur)
        audit.record(cur, actor, "clear_suppression", "suppression_list", None, before={"count": n})
    return n


def count(db) -> int:
    return repo.suppressed_count(db)


def list_page(db, *, search: str | None = None, limit: int = 100, offset: int = 0) -> list[dict]:
    return repo.list_suppressed(db, limit=limit, offset=offset, search=search)
