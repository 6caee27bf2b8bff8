"""Demo data: deterministic for a seed, proportions within tolerance, users and CLI."""
import hashlib

import pytest

from services import demo
from storage import settings
from storage.db import Database
from core.permissions import Role, User

DEMO_ADMIN = User(0, "demo-admin", Role.ADMIN)   # generating demo data is an admin's

N = 20_000


def fingerprint(db) -> str:
    rows = db.query("SELECT * FROM profiles ORDER BY customer_id")
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def test_same_seed_same_data_other_seed_other_data(db, tmp_path):
    demo.generate_profiles(db, DEMO_ADMIN, 3000, seed=42)
    first = fingerprint(db)
    other = Database(tmp_path / "other.duckdb")
    demo.generate_profiles(other, DEMO_ADMIN, 3000, seed=42)
    assert fingerprint(other) == first
    demo.generate_profiles(other, DEMO_ADMIN, 3000, seed=43)
    assert fingerprint(other) != first
    other.close()


def test_proportions(db):
    demo.generate_profiles(db, DEMO_ADMIN, N, seed=42)
    stats = db.query_dicts(r"""
        SELECT count(*) AS n, count(DISTINCT customer_id) AS ids,
            avg(email_opt_out::INT) AS opted_out,
            avg((street2 IS NOT NULL)::INT) AS secondary,
            avg((NOT regexp_full_match(email, '[^@\s]+@[^@\s]+\.[^@\s]+'))::INT) AS invalid,
            count(DISTINCT country) AS countries,
            avg((company_website IS NULL)::INT) AS no_website
        FROM profiles""")[0]
    assert stats["n"] == N and stats["ids"] == N
    assert stats["opted_out"] == pytest.approx(0.05, abs=0.01)
    assert stats["secondary"] == pytest.approx(0.30, abs=0.02)
    assert stats["invalid"] == pytest.approx(0.02, abs=0.005)
    assert stats["countries"] >= 5
    duplicated = db.query_one(r"""SELECT sum(c - 1) FROM (SELECT email, count(*) AS c FROM profiles
        WHERE regexp_full_match(email, '[^@\s]+@[^@\s]+\.[^@\s]+') GROUP BY email HAVING c > 1)""")[0]
    assert duplicated / N == pytest.approx(0.01, abs=0.004)
    names = {r[0] for r in db.query("SELECT DISTINCT first_name FROM profiles")}
    assert {"José", "Zoë", "Łukasz", "Søren", "美咲"} <= names


def test_most_profiles_work_at_directory_companies(db):
    companies = pytest.importorskip("connectors.sandbox.companies")
    demo.generate_profiles(db, DEMO_ADMIN, N, seed=42)
    domains = {c.domain for c in companies.COMPANIES}
    rows = db.query("SELECT split_part(email, '@', 2) FROM profiles WHERE email LIKE '%@%.%' AND email NOT LIKE '%@@%'")
    share = sum(1 for (d,) in rows if d in domains) / len(rows)
    assert share == pytest.approx(0.85, abs=0.02)
    exact = db.query_one("SELECT count(*) FROM profiles WHERE company_name IN (SELECT unnest(?::VARCHAR[]))",
                         [[c.name for c in companies.COMPANIES]])[0] / N
    assert 0.6 < exact < 0.8  # the rest have varied names so match confidence varies


def test_load_demo_creates_users_and_flags_demo_mode(db, admin):
    summary = demo.load_demo(db, admin, profiles=500, seed=1)
    users = {r[0]: (r[1], r[2]) for r in db.query("SELECT username, role, is_demo FROM users")}
    assert users["contributor"] == ("contributor", True) and users["viewer"] == ("viewer", True)
    assert users["admin"] == ("admin", True)
    assert settings.get(db, "demo_mode") is True
    assert db.query_one("SELECT count(*) FROM profiles")[0] == 500
    assert summary["profiles"] == 500
    again = demo.load_demo(db, admin, profiles=100, seed=1)
    assert again["users_created"] == []


def test_load_demo_needs_an_admin(db, contributor):
    from core.permissions import PermissionDenied
    with pytest.raises(PermissionDenied):
        demo.load_demo(db, contributor, profiles=10)


def test_cli(data_dir, capsys):
    assert demo.cli_main(["--profiles", "300", "--seed", "5"]) == 0
    out = capsys.readouterr().out
    assert "Created administrator 'admin'" in out and "300 demo profiles" in out
    assert demo.cli_main(["--profiles", "300", "--if-empty"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    db = Database(data_dir / "insight_relay.duckdb")
    assert db.query_one("SELECT count(*) FROM profiles")[0] == 300
    db.close()
