"""Shared fixtures; an autouse guard fails any test that opens a non-loopback socket."""
from __future__ import annotations

import ipaddress
import os
import socket

import pytest

# Tests never start background workers unless they ask for them.
os.environ.setdefault("INSIGHT_RELAY_WORKERS", "0")
os.environ.setdefault("INSIGHT_RELAY_BCRYPT_ROUNDS", "4")
# Sandboxes in this process (tests configure and inspect emulator internals); app.py would pick "process".
os.environ["INSIGHT_RELAY_SANDBOX"] = "inline"

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


def _is_loopback(host) -> bool:
    if host in ("localhost", "", None):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return str(host).endswith(".localhost")


def _check_address(address) -> None:
    if isinstance(address, tuple) and address:
        if not _is_loopback(address[0]):
            raise RuntimeError(f"Test tried to reach a non-loopback address: {address[0]!r}")


def _guarded_connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _check_address(address)
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _check_address(address)
    return _real_connect_ex(self, address)


def _guarded_getaddrinfo(host, *args, **kwargs):
    if not _is_loopback(host):
        raise RuntimeError(f"Test tried to resolve a non-loopback host: {host!r}")
    return _real_getaddrinfo(host, *args, **kwargs)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded_connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", _guarded_getaddrinfo)
    yield


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    path = tmp_path / "data"
    path.mkdir()
    monkeypatch.setenv("INSIGHT_RELAY_DATA_DIR", str(path))
    monkeypatch.delenv("INSIGHT_RELAY_IMPORT_DIR", raising=False)
    monkeypatch.setenv("INSIGHT_RELAY_SECRET_KEY", "")
    monkeypatch.delenv("INSIGHT_RELAY_SECRET_KEY", raising=False)
    return path


@pytest.fixture
def db(data_dir):
    from storage.db import Database

    database = Database(data_dir / "insight_relay.duckdb")
    yield database
    database.close()


def _make_user(db, username, role):
    from core.permissions import Role, User
    from storage import users as users_repo

    with db.transaction() as cur:
        uid = users_repo.insert(cur, username, users_repo.hash_password("password-123"), role)
    return User(uid, username, Role(role))


@pytest.fixture
def admin(db):
    return _make_user(db, "alice", "admin")


@pytest.fixture
def contributor(db):
    return _make_user(db, "carol", "contributor")


@pytest.fixture
def viewer(db):
    return _make_user(db, "victor", "viewer")


# The exports' test world, shared by the export, membership, rate-limit and recovery tests. Imported
# here (not in each test module) so a test asking for `world` does not shadow an imported name.
from tests.test_exports_support import world  # noqa: F401


@pytest.fixture(autouse=True, scope="session")
def _wired():
    """The start-up wiring every entry point installs (services/wiring.py): run kinds, alerts, target checks."""
    from services import wiring

    wiring.install()


@pytest.fixture(autouse=True)
def _fresh_sandbox_emulators():
    """Every test starts with brand-new sandbox emulators (no state, faults or clocks leak)."""
    from connectors.sandbox import common

    with common._INSTANCES_LOCK:
        common._INSTANCES.clear()
    yield
    with common._INSTANCES_LOCK:
        common._INSTANCES.clear()
