"""Password rules, checked wherever a password is set (first admin, add user, reset).

Common passwords come from zxcvbn's list of the 30 000 most common passwords (Dropbox's zxcvbn,
Python port `zxcvbn` on PyPI): a maintained, offline list, so no password ever leaves the machine.
"""
from __future__ import annotations

from functools import lru_cache

from core.errors import InputError

MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_BYTES = 72   # bcrypt ignores everything after the 72nd byte of UTF-8


class WeakPasswordError(InputError, ValueError):
    """The password breaks a rule (message shown as is)."""


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(p.lower() for p in FREQUENCY_LISTS["passwords"])


def is_common(password: str) -> bool:
    return password.strip().lower() in _common_passwords()


def check_password_rules(password: str | None) -> None:
    """Raise WeakPasswordError with a clear message if `password` may not be used."""
    password = password or ""
    if not password.strip():
        raise WeakPasswordError("The password cannot be empty or only spaces.")
    if len(password) < MIN_PASSWORD_CHARS:
        raise WeakPasswordError(f"Passwords need at least {MIN_PASSWORD_CHARS} characters.")
    if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
        raise WeakPasswordError(
            f"Passwords can be at most {MAX_PASSWORD_BYTES} bytes long (about {MAX_PASSWORD_BYTES} letters, "
            "fewer with accents or emoji): longer ones would be cut off silently.")
    if is_common(password):
        raise WeakPasswordError("This password is one of the most commonly used ones; choose another.")
