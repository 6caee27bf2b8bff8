"""services/connections.py and storage/connections.py against the real sandbox emulators."""
from __future__ import annotations

import logging

import httpx
import pytest

from connectors.base import VerifyResult
from core.consent import current_version
from core.permissions import PermissionDenied, Role, User
from services import connections as svc
from storage import connections as repo

ADMIN = User(0, "alice", Role.ADMIN)   # verify sends a key to a vendor: an admin action

SECRET = "SG.service-secret-0123456789-abcdefQRST"
OK = VerifyResult(True, "Connected.")


@pytest.fixture(autouse=True)
def fresh_emulators():
    from connectors.sandbox import get_emulator, reset_emulators

    def clean():
        reset_emulators()
        for v in ("sendgrid", "iterable", "omnisend", "leadspace"):
            get_emulator(v).faults.__init__()
    clean()
    yield
    clean()


def make(db, actor, vendor="sendgrid", name="Main", key=SECRET, shared=False, **kw):
    kw.setdefault("verify_result", OK)
    return svc.create_connection(db, actor, vendor=vendor, name=name, region=kw.pop("region", "sandbox"), api_key=key,
                                 shared_with_contributors=shared, consent_version=current_version(vendor), **kw)


# ---------------------------------------------------------------- create / read

def test_create_stores_only_ciphertext_and_public_fields(db, admin):
    cid = make(db, admin, export_user="alice")
    row = repo.get_connection(db, cid)
    expected = {"id", "name", "vendor", "kind", "region", "base_url", "shared_with_contributors", "export_user",
                "active", "verified", "last_verify_ok", "last_verify_message", "last_verified_at", "key_last4",
                "consent_version", "consent_by", "consent_at", "created_by", "created_at"}
    assert expected <= set(row)
    assert "key_ciphertext" not in row and SECRET not in repr(row)
    assert (row["vendor"], row["kind"], row["key_last4"], row["export_user"]) == ("sendgrid", "export", "QRST", "alice")
    assert row["consent_version"] == "sendgrid-2026-01" and row["consent_by"] == "alice" and row["consent_at"]
    assert SECRET not in repo.get_key_ciphertext(db, cid)


def test_list_filters_and_sandbox_flag(db, admin):
    assert repo.has_sandbox_connections(db) is False
    a = make(db, admin, "sendgrid", "B sendgrid")
    make(db, admin, "leadspace", "a leadspace", key="ls-token-12345678")
    assert [r["name"] for r in repo.list_connections(db)] == ["a leadspace", "B sendgrid"]
    assert [r["name"] for r in repo.list_connections(db, kind="export")] == ["B sendgrid"]
    assert [r["name"] for r in repo.list_connections(db, vendor="leadspace")] == ["a leadspace"]
    assert repo.has_sandbox_connections(db) is True
    svc.set_active(db, admin, a, False)
    assert [r["name"] for r in repo.list_connections(db, active_only=True)] == ["a leadspace"]
    assert repo.get_connection(db, 999) is None


def test_enrichment_connections_are_always_shared_and_have_no_export_user(db, admin):
    cid = make(db, admin, "leadspace", "LS", key="ls-token-12345678", shared=False, export_user="alice")
    row = repo.get_connection(db, cid)
    assert row["shared_with_contributors"] is True and row["export_user"] is None
    with pytest.raises(svc.ConnectionInputError, match="always usable"):
        svc.set_sharing(db, admin, cid, False)


@pytest.mark.parametrize("kw,message", [
    ({"name": "  "}, "display name"),
    ({"key": "short"}, "too short"),
    ({"key": "has space 12345678"}, "spaces"),
    ({"region": "eu", "vendor": "omnisend"}, "no 'EU' region|no EU region"),
    ({"verify_result": None}, "Verify the connection first"),
    ({"verify_result": VerifyResult(False, "rejected")}, "Verify the connection first"),
])
def test_create_validates(db, admin, kw, message):
    with pytest.raises(svc.ConnectionInputError, match=message):
        make(db, admin, **kw)


def test_consent_must_be_current(db, admin):
    with pytest.raises(svc.ConnectionInputError, match="agree"):
        svc.create_connection(db, admin, vendor="sendgrid", name="x", region="sandbox", api_key=SECRET,
                              shared_with_contributors=False, consent_version="sendgrid-1999", verify_result=OK)


def test_names_unique_case_insensitive_and_trimmed(db, admin):
    make(db, admin, name="  Main   list ")
    assert repo.list_connections(db)[0]["name"] == "Main list"
    with pytest.raises(svc.ConnectionInputError, match="already exists"):
        make(db, admin, name="main LIST")
    other = make(db, admin, name="Other")
    with pytest.raises(svc.ConnectionInputError, match="already exists"):
        svc.rename(db, admin, other, "MAIN list")
    svc.rename(db, admin, other, " other ")     # its own name, other case: fine
    assert repo.get_connection(db, other)["name"] == "other"


def test_save_unverified_is_explicit(db, admin):
    cid = make(db, admin, verify_result=VerifyResult(False, "The API key was rejected."), allow_unverified=True)
    row = repo.get_connection(db, cid)
    assert row["verified"] is False and row["last_verify_ok"] is False
    assert svc.overview(db, admin)[0]["status"] == "failed"
    cid2 = make(db, admin, name="never", verify_result=None, allow_unverified=True)
    assert [r["status"] for r in svc.overview(db, admin) if r["id"] == cid2] == ["unverified"]


# ---------------------------------------------------------------- verify (real sandbox)

@pytest.mark.parametrize("vendor", ["sendgrid", "iterable", "omnisend", "leadspace"])
def test_verify_sandbox_ok(vendor):
    result = svc.verify(None, ADMIN, vendor, "sandbox", "good-key-12345678")
    assert result.ok, result.message


@pytest.mark.parametrize("vendor", ["sendgrid", "iterable", "omnisend", "leadspace"])
def test_verify_rejected_key(vendor):
    result = svc.verify(None, ADMIN, vendor, "sandbox", "invalid-key-12345678")
    assert not result.ok and "reject" in result.message.lower()


def test_verify_missing_permission():
    result = svc.verify(None, ADMIN, "sendgrid", "sandbox", "SG.nomarketing-12345678")
    assert not result.ok and "lacks Marketing access" in result.message


def test_verify_outage_and_rate_limit():
    from connectors.sandbox import get_emulator
    em = get_emulator("iterable")
    em.faults.outage = True
    result = svc.verify(None, ADMIN, "iterable", "sandbox", "good-key-12345678")
    assert not result.ok and "Try again" in result.message
    em.faults.outage = False
    em.faults.rate_limit_burst = 5
    em.faults.rate_limit_wait_s = 45
    result = svc.verify(None, ADMIN, "iterable", "sandbox", "good-key-12345678")
    assert not result.ok and "Try again in about 45 seconds" in result.message


def test_verify_unreachable_host_via_transport():
    def refuse(request):
        raise httpx.ConnectError("connection refused", request=request)
    result = svc.verify(None, ADMIN, "sendgrid", "production", "SG.good-key-12345678", transport=httpx.MockTransport(refuse))
    assert not result.ok and "could not reach SendGrid" in result.message


def test_verify_never_logs_the_key(caplog):
    caplog.set_level(logging.DEBUG)
    from connectors.sandbox import get_emulator
    get_emulator("sendgrid").faults.server_error_burst = 1
    svc.verify(None, ADMIN, "sendgrid", "sandbox", SECRET)
    svc.verify(None, ADMIN, "sendgrid", "sandbox", "invalid" + SECRET)
    assert SECRET not in caplog.text


# ---------------------------------------------------------------- permissions

def test_contributor_and_viewer_cannot_change_connections(db, admin, contributor, viewer):
    cid = make(db, admin)
    for actor in (contributor, viewer):
        with pytest.raises(PermissionDenied):
            make(db, actor, name="nope")
        for call in (lambda: svc.rename(db, actor, cid, "x"), lambda: svc.set_sharing(db, actor, cid, True),
                     lambda: svc.rotate_key(db, actor, cid, SECRET, verify_result=OK),
                     lambda: svc.remove_connection(db, actor, cid), lambda: svc.revoke_consent(db, actor, cid),
                     lambda: svc.set_active(db, actor, cid, False), lambda: svc.overview(db, actor),
                     lambda: svc.reverify(db, actor, cid), lambda: svc.demo_setup(db, actor),
                     lambda: svc.give_consent(db, actor, cid, current_version("sendgrid")),
                     lambda: svc.set_export_user(db, actor, cid, actor.username)):
            with pytest.raises(PermissionDenied):
                call()
    assert repo.get_connection(db, cid)["name"] == "Main"


def test_usable_connections_per_role(db, admin, contributor, viewer):
    private = make(db, admin, name="Private SG")
    shared = make(db, admin, name="Shared SG", shared=True)
    ls = make(db, admin, "leadspace", "LS", key="ls-token-12345678")
    off = make(db, admin, name="Off", shared=True)
    svc.set_active(db, admin, off, False)
    ids = lambda rows: sorted(r["id"] for r in rows)
    assert ids(svc.usable_connections(db, admin, "export")) == sorted([private, shared])
    assert ids(svc.usable_connections(db, contributor, "export")) == [shared]
    assert ids(svc.usable_connections(db, contributor, "enrichment")) == [ls]
    assert svc.usable_connections(db, viewer, "export") == [] and svc.usable_connections(db, viewer, "enrichment") == []
    assert set(svc.usable_connections(db, contributor, "export")[0]) == {"id", "name", "vendor", "region"}


# ---------------------------------------------------------------- runners

def test_make_client_for_uses_the_decrypted_key(db, admin):
    cid = make(db, admin, key="SG.runner-key-12345678")
    client = svc.make_client_for(db, cid)
    assert client.verify().ok
    client.close()
    bad = make(db, admin, name="Bad", key="invalid-runner-key-1234")
    assert not svc.make_client_for(db, bad).verify().ok   # the stored key, not some other one


def test_make_client_for_refuses_inactive_missing_and_unreadable(db, admin, monkeypatch):
    cid = make(db, admin)
    with pytest.raises(svc.ConnectionUnavailableError, match="no longer exists"):
        svc.make_client_for(db, 12345)
    svc.revoke_consent(db, admin, cid)
    with pytest.raises(svc.ConnectionUnavailableError, match="consent was revoked"):
        svc.make_client_for(db, cid)
    svc.give_consent(db, admin, cid, current_version("sendgrid"))
    svc.set_active(db, admin, cid, True)
    monkeypatch.setenv("INSIGHT_RELAY_SECRET_KEY", "some-other-master-key")
    with pytest.raises(svc.ConnectionUnavailableError, match="cannot be read") as err:
        svc.make_client_for(db, cid)
    assert SECRET not in str(err.value)


# ---------------------------------------------------------------- key rotation / master key

def test_rotate_key_reverifies_and_refuses_a_bad_key(db, admin):
    cid = make(db, admin)
    with pytest.raises(svc.ConnectionInputError, match="not saved"):
        svc.rotate_key(db, admin, cid, "invalid-new-key-5555")
    assert repo.get_connection(db, cid)["key_last4"] == "QRST"
    result = svc.rotate_key(db, admin, cid, "SG.new-good-key-9999")
    assert result.ok
    row = repo.get_connection(db, cid)
    assert row["key_last4"] == "9999" and row["key_rotated_at"] and row["last_verify_ok"]
    assert svc.make_client_for(db, cid).verify().ok
    svc.rotate_key(db, admin, cid, "invalid-but-forced-7777", allow_unverified=True)
    assert repo.get_connection(db, cid)["verified"] is False


def test_wrong_master_key_lists_connections_needing_new_keys(db, admin, monkeypatch):
    a = make(db, admin, name="A")
    make(db, admin, "leadspace", "B", key="ls-token-12345678")
    monkeypatch.setenv("INSIGHT_RELAY_SECRET_KEY", "lost-and-replaced")
    assert sorted(r["name"] for r in svc.connections_needing_new_key(db)) == ["A", "B"]
    assert {r["status"] for r in svc.overview(db, admin)} == {"needs_new_key"}
    assert not svc.reverify(db, admin, a).ok
    svc.set_active(db, admin, a, False)
    with pytest.raises(svc.ConnectionInputError, match="Enter the key again"):
        svc.set_active(db, admin, a, True)
    svc.rotate_key(db, admin, a, "SG.reentered-key-0000")
    assert [r["name"] for r in svc.connections_needing_new_key(db)] == ["B"]
    svc.set_active(db, admin, a, True)


# ---------------------------------------------------------------- consent, audit, secrets at rest

def test_consent_revoke_and_give_are_recorded(db, admin):
    cid = make(db, admin)
    svc.revoke_consent(db, admin, cid)
    row = repo.get_connection(db, cid)
    assert row["active"] is False and row["consent_version"] is None
    assert svc.overview(db, admin)[0]["status"] == "no_consent"
    with pytest.raises(svc.ConnectionInputError):
        svc.set_active(db, admin, cid, True)
    svc.give_consent(db, admin, cid, current_version("sendgrid"))
    history = repo.consent_history(db, cid)
    assert [h["username"] for h in history] == ["alice", "alice"] and history[1]["revoked_at"] is not None
    actions = [r[0] for r in db.query("SELECT action FROM audit_log WHERE entity = 'connection' ORDER BY id")]
    assert actions == ["create_connection", "consent_given", "consent_revoked", "consent_given"]
    given = db.query_one("SELECT actor, after_json FROM audit_log WHERE action = 'consent_given' ORDER BY id LIMIT 1")
    assert given[0] == "alice" and "sendgrid-2026-01" in given[1]


def test_every_change_is_audited_without_the_secret(db, admin):
    cid = make(db, admin)
    svc.rename(db, admin, cid, "Renamed")
    svc.set_sharing(db, admin, cid, True)
    svc.set_export_user(db, admin, cid, "alice")
    svc.rotate_key(db, admin, cid, "SG.second-secret-key-777", verify_result=OK)
    svc.reverify(db, admin, cid)
    svc.set_active(db, admin, cid, False)
    svc.remove_connection(db, admin, cid)
    rows = db.query("SELECT action, before_json, after_json FROM audit_log ORDER BY id")
    actions = [r[0] for r in rows]
    for expected in ("create_connection", "consent_given", "rename_connection", "share_connection", "set_export_user",
                     "rotate_connection_key", "verify_connection", "deactivate_connection", "remove_connection"):
        assert expected in actions
    dump = repr(rows)
    assert SECRET not in dump and "SG.second-secret-key-777" not in dump and "v1." not in dump


def test_secret_not_in_duckdb_file_in_clear(db, admin):
    make(db, admin)
    svc.rotate_key(db, admin, repo.list_connections(db)[0]["id"], "SG.rotated-secret-abcdef", verify_result=OK)
    with db.cursor() as cur:
        cur.execute("CHECKPOINT")
    raw = db.path.read_bytes()
    wal = db.path.with_name(db.path.name + ".wal")
    if wal.exists():
        raw += wal.read_bytes()
    assert SECRET.encode() not in raw and b"SG.rotated-secret-abcdef" not in raw
    assert b"service-secret" not in raw and b"rotated-secret" not in raw


# ---------------------------------------------------------------- remove

def _add_exports(db, rows):
    with db.transaction() as cur:
        for export_id, name, cid in rows:
            cur.execute("INSERT INTO exports (id, name, connection_id, vendor, active) VALUES (?, ?, ?, 'sendgrid', TRUE)",
                        [export_id, name, cid])


def test_remove_refused_while_used_then_deactivate(db, admin):
    cid = make(db, admin)
    _add_exports(db, [(901, "Weekly", cid)])
    assert svc.dependants(db, cid)["exports"] == [{"id": 901, "name": "Weekly", "active": True}]
    with pytest.raises(svc.ConnectionInUseError, match="Weekly") as err:
        svc.remove_connection(db, admin, cid)
    assert err.value.users["exports"]
    assert repo.get_connection(db, cid) is not None
    result = svc.remove_connection(db, admin, cid, dependants="deactivate")
    assert result.removed and result.deactivated == ["export “Weekly”"]
    assert repo.get_connection(db, cid) is None
    assert db.query_one("SELECT active FROM exports WHERE id = 901")[0] is False


def test_remove_with_delete_uses_the_owning_service(db, admin):
    cid = make(db, admin)
    _add_exports(db, [(902, "Gone", cid)])
    result = svc.remove_connection(db, admin, cid, dependants="delete")
    if svc._delete_function("exports") is not None:
        assert result.deleted == ["export “Gone”"]
        assert db.query_one("SELECT count(*) FROM exports WHERE id = 902")[0] == 0
    else:
        assert result.deactivated == ["export “Gone”"]


def test_dependants_and_usage_work_without_the_other_tables(db, admin):
    cid = make(db, admin)
    with db.transaction() as cur:
        for table in ("enrichments", "exports"):
            cur.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    assert svc.dependants(db, cid) == {"enrichments": [], "exports": []}
    assert svc.overview(db, admin)[0]["exports"] == 0
    assert svc.remove_connection(db, admin, cid).removed


# ---------------------------------------------------------------- demo

def test_demo_setup_creates_one_verified_sandbox_connection_per_vendor(db, admin, contributor):
    ids = svc.demo_setup(db, admin)
    rows = repo.list_connections(db)
    assert sorted(r["name"] for r in rows) == ["Sandbox Iterable", "Sandbox Leadspace", "Sandbox Omnisend",
                                               "Sandbox SendGrid"]
    assert all(r["region"] == "sandbox" and r["verified"] and r["shared_with_contributors"] and r["consent_version"]
               for r in rows)
    assert svc.demo_setup(db, admin) == ids      # idempotent
    assert len(svc.usable_connections(db, contributor, "export")) == 3
    assert repo.has_sandbox_connections(db)
