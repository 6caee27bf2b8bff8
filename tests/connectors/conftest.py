"""Fixtures and the per-vendor contract-test harness registry.

HARNESSES: vendor -> Harness. The contract suite (test_contract.py) is parametrised over it, so a new
export vendor joins the suite by calling `register_harness(Harness(...))` here (or in a module imported
from here). Only fixtures for tests/connectors live here; global guards live in tests/conftest.py.

Harness fields
  vendor                         vendor id
  make_emulator(clock) -> Emulator         a FRESH emulator (not the process singleton) on that clock
  make_client(emulator, **kw) -> client    kw: api_key, base_url, transport, sleep, clock, rate_limits, timeout, retry
  members(emulator, target) -> set[str]    lower-cased emails currently in the target (from emulator.snapshot())
  upsert_path                    regex of the upsert endpoint path (faults target it via Faults.path_pattern)
  make_rows_fail(emulator, emails) -> None  optional: make these valid-looking emails fail per row
  invalid_email                  an address the vendor rejects per row (not the whole batch), or None
  set_job_delay(emulator, s)     optional: async jobs finish s seconds (emulator clock) after submit
  fail_next_jobs(emulator, n)    optional: next n async jobs fail
  small_batch_opts               client opts that force several batches for a handful of contacts
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import pytest

from connectors.base import Target
from connectors.http import RetryPolicy
from connectors.sandbox.common import Emulator, FakeClock


@dataclass
class Harness:
    vendor: str
    make_emulator: Callable[[FakeClock | None], Emulator]
    make_client: Callable[..., Any]
    members: Callable[[Emulator, Target], set[str]]
    upsert_path: str
    make_rows_fail: Callable[[Emulator, list[str]], None] | None = None
    invalid_email: str | None = "not-an-email@@example"
    set_job_delay: Callable[[Emulator, float], None] | None = None
    fail_next_jobs: Callable[[Emulator, int], None] | None = None
    small_batch_opts: dict[str, Any] = field(default_factory=dict)


HARNESSES: dict[str, Harness] = {}


def register_harness(h: Harness) -> None:
    HARNESSES[h.vendor] = h


def members_from_snapshot(emulator: Emulator, target: Target) -> set[str]:
    """Works for emulators whose snapshot has lists: [{id, members: [...]}]."""
    snap = emulator.snapshot(max_members=None)
    for lst in snap.get("lists", []):
        if str(lst["id"]) == str(target.id):
            return {m.lower() for m in lst["members"]}
    raise AssertionError(f"target {target} not in emulator snapshot")


# ---------------------------------------------------------------- sendgrid
def _sendgrid_emulator(clock: FakeClock | None) -> Emulator:
    from connectors.sandbox.sendgrid import SendGridEmulator

    return SendGridEmulator(clock=clock, sleep=clock.sleep if clock else None)


def _sendgrid_client(emulator: Emulator, **kw: Any) -> Any:
    from connectors.sendgrid import SendGridClient

    kw.setdefault("base_url", "http://sandbox.sendgrid.local")
    return SendGridClient(kw.pop("api_key", "SG.test-key-0123456789"), **kw)


def _sendgrid_job_delay(em: Any, s: float) -> None:
    em.job_delay_s = s


def _sendgrid_fail_jobs(em: Any, n: int) -> None:
    em.fail_next_jobs = n


register_harness(Harness(
    vendor="sendgrid",
    make_emulator=_sendgrid_emulator,
    make_client=_sendgrid_client,
    members=members_from_snapshot,
    upsert_path=r"^/v3/marketing/contacts$",
    make_rows_fail=None,  # SendGrid per-row failures come from invalid emails (invalid_email)
    invalid_email="not-an-email@@example",
    set_job_delay=_sendgrid_job_delay,
    fail_next_jobs=_sendgrid_fail_jobs,
    small_batch_opts={"max_batch_contacts": 4},
))


# ---------------------------------------------------------------- iterable
def _iterable_emulator(clock: FakeClock | None) -> Emulator:
    from connectors.sandbox.iterable import IterableEmulator

    return IterableEmulator(clock=clock, sleep=clock.sleep if clock else None)


def _iterable_client(emulator: Emulator, **kw: Any) -> Any:
    from connectors.iterable import IterableClient

    kw.setdefault("base_url", "http://sandbox.iterable.local")
    return IterableClient(kw.pop("api_key", "it-test-key-0123456789"), **kw)


def _iterable_rows_fail(em: Any, emails: list[str]) -> None:
    em.forgotten.update(e.lower() for e in emails)


register_harness(Harness(
    vendor="iterable",
    make_emulator=_iterable_emulator,
    make_client=_iterable_client,
    members=members_from_snapshot,
    upsert_path=r"^/api/lists/subscribe$",
    make_rows_fail=_iterable_rows_fail,
    invalid_email="not-an-email@@example",
    small_batch_opts={"batch_size": 4},
))

# ---------------------------------------------------------------- omnisend
def _omnisend_emulator(clock: FakeClock | None) -> Emulator:
    from connectors.sandbox.omnisend import OmnisendEmulator

    return OmnisendEmulator(clock=clock, sleep=clock.sleep if clock else None, batch_delay_s=0.0)


def _omnisend_client(emulator: Emulator, **kw: Any) -> Any:
    from connectors.omnisend import OmnisendClient

    kw.setdefault("base_url", "http://sandbox.omnisend.local")
    return OmnisendClient(kw.pop("api_key", "om-test-key-0123456789"), **kw)


def _omnisend_members(em: Any, target: Target) -> set[str]:
    return {e.lower() for e in em.contacts_with_tag(target.id)}


def _omnisend_rows_fail(em: Any, emails: list[str]) -> None:
    em.failing_emails.update(e.lower() for e in emails)


def _omnisend_job_delay(em: Any, s: float) -> None:
    em.batch_delay_s = s


def _omnisend_fail_jobs(em: Any, n: int) -> None:
    em.fail_next_batches = n


register_harness(Harness(
    vendor="omnisend",
    make_emulator=_omnisend_emulator,
    make_client=_omnisend_client,
    members=_omnisend_members,
    upsert_path=r"^/api/batches$",
    make_rows_fail=_omnisend_rows_fail,
    # passes the client's cheap check, rejected per item by Omnisend's (emulated) validation
    invalid_email="user@bad_domain.example",
    set_job_delay=_omnisend_job_delay,
    fail_next_jobs=_omnisend_fail_jobs,
    small_batch_opts={"max_batch_items": 4},
))


# ---------------------------------------------------------------- fixtures
FAST_RETRY = RetryPolicy(max_attempts=5, base_backoff_s=0.01, max_backoff_s=0.05, max_wait_s=120.0)


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()
