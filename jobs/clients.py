"""Connector clients for stored connections: the one factory runners and services use.

Below services (issue 15): runners build their clients here, from storage (the row, the decrypted
key) and connectors (the vendor's client), without importing any service.

API
---
ConnectionUnavailableError            a core.errors.Unavailable: missing, inactive, or key unreadable
rate_limit_budget_s(row) -> float     how long one run may wait out a vendor's rate limits (issue 13)
make_client_for(db, connection_id, **opts) -> connector client
"""
from __future__ import annotations

from dataclasses import replace

from connectors import registry
from connectors.http import DEFAULT_RATE_LIMIT_BUDGET_S, RetryPolicy
from core.errors import Unavailable
from storage import connections as repo
from storage import secrets


class ConnectionUnavailableError(Unavailable, RuntimeError):
    """The runner cannot use the connection (missing, inactive, key unreadable). Message shown as is."""


def rate_limit_budget_s(row: dict) -> float:
    """How long one run through this connection may wait out the vendor's rate limits (issue 13)."""
    stored = row.get("rate_limit_budget_s")
    return float(stored) if stored is not None else DEFAULT_RATE_LIMIT_BUDGET_S


def make_client_for(db, connection_id: int, **opts):
    """A connector client for a stored connection, with its decrypted key (runners and services).
    Raises ConnectionUnavailableError when the connection is missing, inactive or its key unreadable."""
    row = repo.get_connection(db, connection_id)
    if row is None:
        raise ConnectionUnavailableError("The connection no longer exists. Pick another connection.")
    if not row["active"]:
        why = " (its data-privacy consent was revoked)" if not row["consent_version"] else ""
        raise ConnectionUnavailableError(f"The connection “{row['name']}” is inactive{why}. "
                                         "An admin can reactivate it in Admin › Connections.")
    try:
        key = repo.decrypt_key(db, row["id"])
    except secrets.SecretKeyError as exc:
        raise ConnectionUnavailableError(
            f"The key of connection “{row['name']}” cannot be read: {exc} "
            "An admin must enter it again in Admin › Connections.") from None
    if row["base_url"] and "base_url" not in opts:
        opts["base_url"] = row["base_url"]
    if row.get("rate_limit_budget_s") is not None:   # the connection's own budget wins over a caller's policy
        opts["retry"] = replace(opts.get("retry") or RetryPolicy(), rate_limit_budget_s=rate_limit_budget_s(row))
    return registry.make_client(row["vendor"], key, row["region"], **opts)
