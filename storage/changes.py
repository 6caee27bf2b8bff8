"""What changed in the data an export's plan reads (issue 16: incremental plans).

Every writer of profiles, enrichment results or the suppression list records its change here, in the
same transaction as the change itself, under a change number:

* ``log_customers(cur, kind, ids_sql)``: the customer ids it is about to change (call it BEFORE the write:
  each id is stored with its normalized email as it was, so contacts that shared an old email are found
  too). More than ``WIDE_ROWS`` ids are recorded as one wide change instead.
* ``log_emails(cur, kind, emails)``: suppression list entries added or removed.
* ``log_wide(cur, kind)``: a change nothing can be derived across (a replace import, demo data, a new
  column, a deleted enrichment, a cleared suppression list).

``watermark(db)`` is the highest change number whose data every later read sees: a change number is
handed out under a lock and stays "in flight" until its transaction has ended, and the watermark stays
below the oldest one in flight (a change committed after a plan read the watermark is always above it).

jobs/export_plan.py derives a plan from the previous one (its watermark, the contacts it left unsettled)
plus what changed since; anything it cannot account for (a wide change, another definition) means the
whole diff, as before. A writer that forgets to log (and stamps no updated_at) is the one way to break that;
the probe of jobs/export_plan.add_probe catches it when it touches many profiles. Every writer of those
tables is listed in docs/ARCHITECTURE.md; tests/test_export_incremental.py checks the log, the import's and
the suppression list's writers.
"""
from __future__ import annotations

import threading

from storage.db import Database

WIDE_ROWS = 200_000      # more customer ids than this in one change: recorded as wide (the next plan diffs all)


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.next_no = 1
        self.inflight: set[int] = set()


_states_lock = threading.Lock()


def _state(db: Database) -> _State:
    with _states_lock:
        st = getattr(db, "_change_state", None)
        if st is None:
            st = _State()
            db._change_state = st   # noqa: SLF001 - per Database object, created once
        return st


def _allocate(cur, kind: str, wide: bool) -> int:
    """A new change number, its mark row written on `cur`; in flight until cur's transaction ends."""
    db = Database.transaction_of(cur)
    top = cur.execute("SELECT coalesce(max(change_no), 0) FROM data_change_marks").fetchone()[0]
    if db is None:   # not inside Database.transaction(): autocommit, the mark is visible at once
        no = int(top) + 1
        cur.execute("INSERT INTO data_change_marks (change_no, kind, wide) VALUES (?, ?, ?)", [no, kind, wide])
        return no
    st = _state(db)
    with st.lock:
        no = max(st.next_no, int(top) + 1)
        st.next_no = no + 1
        st.inflight.add(no)

    def ended() -> None:
        with st.lock:
            st.inflight.discard(no)

    if not Database.after_transaction(cur, ended):   # cannot happen: transaction_of found it
        ended()
    cur.execute("INSERT INTO data_change_marks (change_no, kind, wide) VALUES (?, ?, ?)", [no, kind, wide])
    return no


def log_wide(cur, kind: str) -> int:
    return _allocate(cur, kind, True)


def log_customers(cur, kind: str, ids_sql: str, params: list | tuple = ()) -> int:
    """Record that the customer ids selected by ids_sql (one column, customer_id) are about to change.
    Call it before the write, in its transaction."""
    n = cur.execute(f"SELECT count(*) FROM ({ids_sql})", list(params)).fetchone()[0]
    if n > WIDE_ROWS:
        return log_wide(cur, kind)
    no = _allocate(cur, kind, False)
    if n:
        cur.execute(f"INSERT INTO data_changes (change_no, customer_id, email) SELECT ?, i.customer_id, "
                    f"nullif(lower(trim(p.email)), '') FROM ({ids_sql}) i LEFT JOIN profiles p "
                    f"ON p.customer_id = i.customer_id", [no, *params])
    return no


def log_emails(cur, kind: str, emails: list[str]) -> int:
    """Record suppression list entries added or removed (as given and normalized)."""
    no = _allocate(cur, kind, False)
    if emails:
        cur.execute("INSERT INTO data_changes (change_no, customer_id, email) SELECT DISTINCT ?, NULL, e FROM "
                    "(SELECT unnest(?::VARCHAR[]) AS e UNION ALL SELECT lower(trim(unnest(?::VARCHAR[])))) "
                    "WHERE e IS NOT NULL AND e <> ''", [no, list(emails), list(emails)])
    return no


def watermark(db: Database) -> int:
    """Every change numbered up to this is committed (or rolled back) and seen by any later read."""
    st = _state(db)
    with st.lock:
        oldest = min(st.inflight) if st.inflight else None
        top = int(db.query_one("SELECT coalesce(max(change_no), 0) FROM data_change_marks")[0])
    return top if oldest is None else min(top, oldest - 1)


def wide_since(db: Database, change_no: int) -> bool:
    return bool(db.query_one("SELECT count(*) FROM data_change_marks WHERE change_no > ? AND wide",
                             [int(change_no)])[0])


def prune(cur, keep_from: int) -> None:
    """Forget changes no plan can need any more (numbered at or below every export's watermark)."""
    cur.execute("DELETE FROM data_changes WHERE change_no <= ?", [int(keep_from)])
    cur.execute("DELETE FROM data_change_marks WHERE change_no < ?", [int(keep_from)])
