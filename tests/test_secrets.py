"""storage/secrets.py: authenticated encryption at rest with a master key from env or a 0600 key file."""
from __future__ import annotations

import os
import stat

import pytest

from storage import secrets


def test_round_trip_and_key_file_created_0600(data_dir):
    token = secrets.encrypt("SG.plain-secret-value", context="connection:1")
    assert "plain-secret" not in token and token.startswith("v1.")
    assert secrets.decrypt(token, context="connection:1") == "SG.plain-secret-value"
    key_file = data_dir / ".secret_key"
    assert key_file.exists()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert secrets.master_key_source() == "key file"


def test_same_plaintext_encrypts_differently(data_dir):
    assert secrets.encrypt("abc12345", context="c") != secrets.encrypt("abc12345", context="c")


def test_context_binds_the_ciphertext_to_its_row(data_dir):
    token = secrets.encrypt("SG.plain-secret-value", context="connection:1")
    with pytest.raises(secrets.SecretKeyError):
        secrets.decrypt(token, context="connection:2")


def test_tampering_is_detected(data_dir):
    token = secrets.encrypt("SG.plain-secret-value", context="c")
    head, payload = token.rsplit(".", 1)
    middle = len(payload) // 2   # a middle character: every bit of it is data (the last one carries padding)
    flipped = payload[:middle] + ("A" if payload[middle] != "A" else "B") + payload[middle + 1:]
    with pytest.raises(secrets.SecretKeyError):
        secrets.decrypt(f"{head}.{flipped}", context="c")
    with pytest.raises(secrets.SecretKeyError):
        secrets.decrypt("garbage", context="c")


def test_env_master_key_wins_and_a_changed_key_is_reported(data_dir, monkeypatch):
    monkeypatch.setenv("INSIGHT_RELAY_SECRET_KEY", "first-master-key")
    token = secrets.encrypt("SG.plain-secret-value", context="c")
    assert not (data_dir / ".secret_key").exists()
    assert secrets.master_key_source() == "environment"
    monkeypatch.setenv("INSIGHT_RELAY_SECRET_KEY", "another-master-key")
    with pytest.raises(secrets.SecretKeyError, match="different master key"):
        secrets.decrypt(token, context="c")
    assert not secrets.can_decrypt(token, context="c")
    monkeypatch.setenv("INSIGHT_RELAY_SECRET_KEY", "first-master-key")
    assert secrets.decrypt(token, context="c") == "SG.plain-secret-value"


def test_lost_key_file_means_new_key(data_dir):
    token = secrets.encrypt("SG.plain-secret-value", context="c")
    (data_dir / ".secret_key").unlink()
    assert not secrets.can_decrypt(token, context="c")


def test_loose_key_file_permissions_are_tightened(data_dir):
    secrets.encrypt("x" * 10, context="c")
    path = data_dir / ".secret_key"
    os.chmod(path, 0o644)
    secrets.encrypt("x" * 10, context="c")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_empty_key_file_is_a_clear_error(data_dir):
    (data_dir / ".secret_key").write_text("")
    with pytest.raises(secrets.SecretKeyError, match="empty"):
        secrets.encrypt("x" * 10, context="c")


def test_last4_and_mask():
    assert secrets.last4("SG.abcdefgh1234") == "1234"
    assert secrets.last4("short") == ""          # too short to show any of it
    assert secrets.mask("1234") == "••••1234"
    assert secrets.mask(None) == "••••"


def test_data_dir_is_gitignored():
    from core.config import REPO_ROOT
    assert "data/" in (REPO_ROOT / ".gitignore").read_text().splitlines()
