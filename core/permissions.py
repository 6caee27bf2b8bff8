"""Roles and what each may do. Every state-changing service calls :func:`require` itself."""
from __future__ import annotations

import enum
from dataclasses import dataclass


class Role(str, enum.Enum):
    ADMIN = "admin"
    CONTRIBUTOR = "contributor"
    VIEWER = "viewer"


class Action(str, enum.Enum):
    MANAGE_USERS = "manage_users"
    MANAGE_CONNECTIONS = "manage_connections"
    MANAGE_SCHEDULE = "manage_schedule"
    VIEW_AUDIT = "view_audit"
    MANAGE_SUPPRESSION = "manage_suppression"
    IMPORT_PROFILES = "import_profiles"
    EDIT_SEGMENTS = "edit_segments"
    EDIT_ENRICHMENTS = "edit_enrichments"
    EDIT_EXPORTS = "edit_exports"
    RUN = "run"
    REVIEW_MATCHES = "review_matches"
    READ = "read"
    DOWNLOAD = "download"
    USE_SANDBOX = "use_sandbox"


_CONTRIBUTOR = {
    Action.IMPORT_PROFILES,
    Action.EDIT_SEGMENTS,
    Action.EDIT_ENRICHMENTS,
    Action.EDIT_EXPORTS,
    Action.RUN,
    Action.REVIEW_MATCHES,
    Action.READ,
    Action.DOWNLOAD,
    Action.USE_SANDBOX,
}
_VIEWER = {Action.READ, Action.DOWNLOAD}

ALLOWED: dict[Role, frozenset[Action]] = {
    Role.ADMIN: frozenset(Action),
    Role.CONTRIBUTOR: frozenset(_CONTRIBUTOR),
    Role.VIEWER: frozenset(_VIEWER),
}


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: Role
    display_name: str | None = None

    @property
    def label(self) -> str:
        return self.display_name or self.username


class PermissionDenied(Exception):
    """The acting user's role does not allow this. The message is shown as is."""


def can(user: User | None, action: Action) -> bool:
    return user is not None and action in ALLOWED[Role(user.role)]


def require(user: User | None, action: Action) -> None:
    if user is None:
        raise PermissionDenied("Please sign in first.")
    if not can(user, action):
        raise PermissionDenied(
            f"Your role ({Role(user.role).value}) does not allow this ({action.value.replace('_', ' ')})."
        )
