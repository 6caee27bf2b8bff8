"""core/sync.py: pure rules (no I/O)."""
from __future__ import annotations

import random
import string

import pytest
from email_validator import validate_email

from core import sync


def test_normalize_email():
    assert sync.normalize_email("  A.B@Example.COM \t") == "a.b@example.com"
    assert sync.normalize_email("   ") is None and sync.normalize_email(None) is None


@pytest.mark.parametrize("email,ok", [
    ("person@example.com", True), ("first.last+tag@sub.example.co", True), ("anna@bücher.de", True),
    ("a..b@example.com", False), ("no-at-sign", False), ("x@localhost", False), ("x@host.local", False),
    ("x@test", False), (".lead@example.com", False), ("a@b.c", True), ("", False), (None, False),
])
def test_email_problem(email, ok):
    assert (sync.email_problem(email) is None) is ok


def test_fast_path_never_accepts_what_email_validator_refuses():
    rng = random.Random(7)
    alphabet = string.ascii_lowercase + string.digits + ".-_+@'!#"
    for _ in range(20_000):
        email = "".join(rng.choice(alphabet) for _ in range(rng.randint(3, 20)))
        if sync._fast_valid(email):
            validate_email(email, check_deliverability=False)  # raises if the fast path was wrong


def test_field_limits_truncate_and_skip():
    fields = {"first_name": "x" * 60, "city": "Oslo", "last_name": None}
    out, problem = sync.apply_field_limits(fields, {"first_name": 50}, "truncate")
    assert problem is None and out["first_name"] == "x" * 50 and out["last_name"] is None
    _, problem = sync.apply_field_limits(fields, {"first_name": 50}, "skip")
    assert problem.startswith("over a limit: first_name is 60 characters")


def test_contact_hash_matches_sql(db):
    from storage import exports as repo

    expr = repo._hash_sql(["first_name", "city"], 2)
    got = db.query_one(f"SELECT {expr} FROM (SELECT 'Ann' AS f0, NULL::VARCHAR AS f1)")[0]
    assert got == sync.contact_hash([("first_name", "Ann"), ("city", None)])
    assert got != sync.contact_hash([("first_name", "Ann"), ("city", "")])


def test_removal_guard_and_counts():
    assert not sync.needs_removal_confirmation(2, 10)          # 20 % is allowed
    assert sync.needs_removal_confirmation(3, 10)
    assert not sync.needs_removal_confirmation(0, 0)
    assert sync.check_counts({"planned": 5, "sent": 4, "skipped": 1, "accepted": 3, "rejected": 1}) == []
    assert sync.check_counts({"planned": 5, "sent": 4, "skipped": 0, "accepted": 4})


def test_vendor_facts():
    # each vendor's facts are in its SPEC (connectors/<vendor>.py), read through the registry
    from connectors import registry

    assert [f.key for f in registry.spec("omnisend").fields].count("address") == 1
    assert "address" not in [f.key for f in registry.spec("sendgrid").fields]
    assert registry.spec("iterable").data_fields and sync.valid_data_field_name("industry_2")
    assert registry.spec("omnisend").default_target_name("VIP") == "segment: VIP"
    assert registry.spec("sendgrid").contact_limit == 100_000 and registry.spec("sendgrid").contact_limit_per_account
