"""Encryption at rest for vendor API keys (AES-256-GCM, authenticated).

The master key comes from the environment variable ``INSIGHT_RELAY_SECRET_KEY`` (any string; a key is
derived from it with HKDF-SHA256) or, when that is unset, from the file ``.secret_key`` in the data
folder, generated on first use with 0600 permissions (the data folder is outside git).

Ciphertexts look like ``v1.<key id>.<base64url(nonce || ciphertext+tag)>``. The key id is a short
fingerprint of the master key, so a token encrypted under another master key is recognised as such
without guessing. Each token is bound to a context string (e.g. ``connection:7``) as GCM associated
data, so a ciphertext copied onto another row does not decrypt.

API
---
SecretKeyError(message)                 the secret cannot be decrypted (wrong/lost master key, tampering)
encrypt(plaintext, *, context) -> str
decrypt(token, *, context) -> str       raises SecretKeyError
can_decrypt(token, *, context) -> bool
last4(secret) -> str                    the only part of a secret ever shown again
mask(last4) -> str                      "••••abcd"
master_key_source() -> "environment" | "key file"
check_master_key() -> None              raises SecretKeyError when the master key is unusable (blank, empty file)
key_file_path() -> Path
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets as _random
import stat
import threading
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from core.errors import Unavailable
from core import config

ENV_VAR = "INSIGHT_RELAY_SECRET_KEY"
KEY_FILE_NAME = config.SECRET_KEY_FILE_NAME
FORMAT_VERSION = "v1"
NONCE_BYTES = 12
KEY_FILE_ENTROPY_BYTES = 32

_lock = threading.Lock()
# Derived keys are cached per (source, raw material) so tests that switch data folders or env
# values always get the right key, and production pays HKDF once.
_derived: dict[tuple[str, str], tuple[bytes, str]] = {}


class SecretKeyError(Unavailable):
    """A stored secret cannot be decrypted. The message is plain language, never contains the secret."""


def key_file_path() -> Path:
    return config.data_dir() / KEY_FILE_NAME


def master_key_source() -> str:
    return "environment" if os.environ.get(ENV_VAR) else "key file"


def _env_value() -> str | None:
    """The master key from the environment; None when unset or empty (then the key file is used)."""
    value = os.environ.get(ENV_VAR)
    if not value:
        return None
    if not value.strip():
        raise SecretKeyError(f"{ENV_VAR} is set but holds only blanks. Set it to a long random value "
                             "(the one the keys were saved with), or unset it to use the key file.")
    return value


def check_master_key() -> None:
    """Raise SecretKeyError (plain language) if the master key cannot be used."""
    _master()


def _read_or_create_key_file() -> str:
    path = key_file_path()
    if not path.exists():
        # Write a temp file, then link it into place: the link fails if another process won the race,
        # and nobody ever reads a half-written key file.
        tmp = path.with_name(f"{KEY_FILE_NAME}.{os.getpid()}.{_random.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(_random.token_urlsafe(KEY_FILE_ENTROPY_BYTES))
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
        finally:
            tmp.unlink(missing_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        path.chmod(0o600)  # someone loosened it; a key file is for this user only
    try:
        value = path.read_text(encoding="utf-8").strip()
    except (UnicodeDecodeError, OSError):
        raise SecretKeyError(f"The master key file ({KEY_FILE_NAME} in the data folder) cannot be read or is "
                             "damaged. Restore it from a backup, or delete it and re-enter every connection's "
                             "key.") from None
    # Messages name the file, never its absolute path (they are shown on the Connections page).
    if not value:
        raise SecretKeyError(f"The master key file ({KEY_FILE_NAME} in the data folder) is empty. Restore it from "
                             "a backup, or delete it and re-enter every connection's key.")
    return value


def _master() -> tuple[bytes, str]:
    """(AES key, key id) for the current master key."""
    env_value = _env_value()
    if env_value:
        source = ("env", env_value)
    else:
        with _lock:
            source = ("file:" + str(key_file_path()), _read_or_create_key_file())
    cached = _derived.get(source)
    if cached is None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"insight-relay", info=b"secrets-v1").derive(
            source[1].encode("utf-8"))
        key_id = hmac.new(key, b"key-id", hashlib.sha256).hexdigest()[:8]
        cached = (key, key_id)
        _derived[source] = cached
    return cached


def encrypt(plaintext: str, *, context: str) -> str:
    key, key_id = _master()
    nonce = _random.token_bytes(NONCE_BYTES)
    ct = AESGCM(key).encrypt(nonce, plaintext.encode("utf-8"), context.encode("utf-8"))
    return f"{FORMAT_VERSION}.{key_id}.{base64.urlsafe_b64encode(nonce + ct).decode('ascii')}"


def decrypt(token: str, *, context: str) -> str:
    try:
        version, token_key_id, payload = (token or "").split(".", 2)
        raw = base64.urlsafe_b64decode(payload.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise SecretKeyError("The stored key is damaged; enter the key again.") from None
    if version != FORMAT_VERSION or len(raw) <= NONCE_BYTES:
        raise SecretKeyError("The stored key is damaged; enter the key again.")
    key, key_id = _master()
    if token_key_id != key_id:
        raise SecretKeyError("The stored key was encrypted with a different master key (it was lost or changed); "
                             "enter the key again or restore the original master key.")
    try:
        return AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode("utf-8")).decode("utf-8")
    except InvalidTag:
        raise SecretKeyError("The stored key could not be decrypted (it was altered or belongs to another "
                             "record); enter the key again.") from None


def can_decrypt(token: str, *, context: str) -> bool:
    try:
        decrypt(token, context=context)
    except SecretKeyError:
        return False
    return True


def last4(secret: str) -> str:
    secret = secret or ""
    return secret[-4:] if len(secret) >= 8 else ""  # short secrets show nothing: 4 of 6 chars is too much


def mask(last4_chars: str | None) -> str:
    return f"••••{last4_chars}" if last4_chars else "••••"
