"""Shared helpers for the export tests (no tests here): a small world of profiles, static segments,
Sandbox connections, emulators on a fake clock, and the lists the vendor ends up with."""
from __future__ import annotations

import pytest

from core import data_version, sync
from storage import segments

VENDORS = ("sendgrid", "iterable", "omnisend")


class World:
    def __init__(self, db, admin, monkeypatch):
        from connectors.sandbox import FakeClock, get_emulator
        from jobs import export_run
        from services import connections

        self.db, self.admin = db, admin
        self.clock = FakeClock()
        self.emulators = {}
        for vendor in VENDORS:
            em = get_emulator(vendor)
            em.reset()
            em.clock, em.sleep = self.clock, self.clock.sleep
            self.emulators[vendor] = em
        monkeypatch.setattr(export_run, "CLIENT_OPTIONS", {"sleep": self.clock.sleep, "clock": self.clock})
        connections.demo_setup(db, admin)
        from storage import connections as conn_repo

        self.connections = {c["vendor"]: c["id"] for c in conn_repo.list_connections(db)}

    # -- data ------------------------------------------------------------------------------
    def add_profiles(self, rows: list[dict]) -> None:
        from storage import changes

        cols = ("customer_id", "email", "first_name", "last_name", "city", "country")
        with self.db.transaction() as cur:   # logged as the app's writers of profiles log (storage.changes)
            changes.log_customers(cur, "test_insert", "SELECT unnest(?::VARCHAR[]) AS customer_id",
                                  [[r["customer_id"] for r in rows]])
            cur.execute(
                "INSERT INTO profiles (customer_id, email, first_name, last_name, city, country, email_opt_out) "
                "SELECT unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), "
                "unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::BOOLEAN[])",
                [[r.get(c) for r in rows] for c in cols] + [[bool(r.get("email_opt_out", False)) for r in rows]])
        data_version.bump()   # as the app's writers of profile data do (imports, demo data)

    def update_profile(self, customer_id: str, **values) -> None:
        from storage import changes

        with self.db.transaction() as cur:
            changes.log_customers(cur, "test_update", "SELECT ? AS customer_id", [customer_id])
            for col, val in values.items():
                assert col in ("email", "first_name", "last_name", "city", "country", "email_opt_out")
                cur.execute(f"UPDATE profiles SET {col} = ? WHERE customer_id = ?", [val, customer_id])
        data_version.bump()

    def segment(self, name: str, customer_ids: list[str]) -> int:
        with self.db.transaction() as cur:
            sid = cur.execute("INSERT INTO segments (name, kind, rule_json) VALUES (?, 'static', '{}') RETURNING id",
                              [name]).fetchone()[0]
            segments.take_members(cur, sid, "SELECT unnest(?::VARCHAR[]) AS customer_id", [list(customer_ids)])
        return sid

    def set_members(self, segment_id: int, customer_ids: list[str]) -> None:
        with self.db.transaction() as cur:
            segments.take_members(cur, segment_id, "SELECT unnest(?::VARCHAR[]) AS customer_id", [list(customer_ids)])

    def export(self, vendor: str, segment_ids: list[int], *, mode: str = sync.MODE_MIRROR, name: str | None = None,
               mapping=None, targets=None, over_limit: str = "truncate") -> int:
        from services import exports

        if mapping is None:
            mapping = [{"field": "first_name", "attribute": "profile.first_name"},
                       {"field": "last_name", "attribute": "profile.last_name"}]
        draft = {"name": name or f"{vendor} export", "connection_id": self.connections[vendor], "mapping": mapping,
                 "segment_ids": segment_ids, "targets": targets or {s: {"mode": "name"} for s in segment_ids},
                 "sync_mode": mode, "over_limit": over_limit}
        return exports.save_export(self.db, self.admin, draft)

    # -- running -----------------------------------------------------------------------------
    def run(self, export_id: int, **kw) -> dict:
        from jobs import runner
        from services import exports

        kind = kw.pop("kind", "run")
        fn = {"run": exports.run_export, "dry": exports.dry_run, "retry": exports.retry_failed}[kind]
        run_id = fn(self.db, self.admin, export_id, **kw)
        runner.run_pending(self.db)
        return runner.get_run(self.db, run_id)

    # -- the vendor's view -------------------------------------------------------------------
    def members(self, vendor: str, export_id: int, segment_id: int) -> set[str]:
        from services import exports

        target = exports.get_export(self.db, export_id)["targets"][segment_id]
        em = self.emulators[vendor]
        if vendor == "omnisend":
            return set(em.contacts_with_tag(target["name"]))
        if target["id"] is None:
            return set()
        return set(em.list_members(target["id"]))

    def submitted_emails(self, export_id: int, run_id: int) -> list[str]:
        return [r[0] for r in self.db.query(
            "SELECT email FROM export_run_contacts WHERE run_id = ? AND action <> 'skip'", [run_id])]


def assert_counts_add_up(run: dict) -> None:
    c = run["counts"]
    assert sync.check_counts(c) == [], c
    for t in c.get("targets", {}).values():
        assert sync.check_counts(t) == [], t


def base_people(n: int = 10) -> list[dict]:
    return [{"customer_id": f"c{i}", "email": f"  Person{i}@Example.COM ", "first_name": f"First{i}",
             "last_name": f"Last{i}", "city": "Oslo", "country": "Norway"} for i in range(n)]


def expected(i_values) -> set[str]:
    return {f"person{i}@example.com" for i in i_values}


@pytest.fixture
def world(db, admin, monkeypatch):
    return World(db, admin, monkeypatch)
