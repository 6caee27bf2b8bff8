"""Roles and what each may do. Every state-changing service calls :func:`require` itself."""
from __future__ import annotations

import enum
from dataclasses import dataclass

# PermissionDenied lives with the other UserErrors; importable from here as before.
from core.errors import PermissionDenied as PermissionDenied


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
    # Reading a file that already sits on the server (the import folder): admins only, since the
    # server holds things no screen may show. Everybody else uploads.
    READ_SERVER_FILES = "read_server_files"
    # Bookkeeping of the scheduler (when a schedule last fired, when an item runs next).
    TICK_SCHEDULE = "tick_schedule"
    # Replace every profile with generated demo data (CLI and the admin's demo loader).
    GENERATE_DEMO_DATA = "generate_demo_data"


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


# What the scheduler, the run workers and the CLI may do when nobody is signed in: run what is
# scheduled or asked for on the command line, evaluate segments, keep the schedule's bookkeeping.
# Never users, connections, keys, the suppression list or files on the server.
SYSTEM_ACTIONS: frozenset[Action] = frozenset({
    Action.RUN,
    Action.READ,
    Action.TICK_SCHEDULE,
})


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: Role
    display_name: str | None = None

    @property
    def label(self) -> str:
        return self.display_name or self.username


@dataclass(frozen=True)
class SystemActor:
    """The app acting on its own (scheduler, run workers, CLI): a type, never a free string.

    ``username`` is what run history and the audit log show ("system", "cli", or the user a run
    was started for, when a run started by a user queues further runs).
    """
    username: str = "system"
    allowed: frozenset[Action] = SYSTEM_ACTIONS
    id: None = None
    role: str = "system"
    display_name: None = None

    @property
    def label(self) -> str:
        return self.username


SYSTEM = SystemActor("system")
CLI = SystemActor("cli")

Actor = User | SystemActor


def can(user: Actor | None, action: Action) -> bool:
    if isinstance(user, SystemActor):
        return action in user.allowed
    return isinstance(user, User) and action in ALLOWED[Role(user.role)]


def require(user: Actor | None, action: Action) -> None:
    if user is None:
        raise PermissionDenied("Please sign in first.")
    if not isinstance(user, (User, SystemActor)):
        # A bare name ("system", a username) proves nothing about who asked.
        raise PermissionDenied("This action needs a signed-in user or the system actor.")
    if isinstance(user, SystemActor):
        if action not in user.allowed:
            raise PermissionDenied(f"The system ({user.username}) may not do this ({action.value.replace('_', ' ')}).")
        return
    if not can(user, action):
        raise PermissionDenied(
            f"Your role ({Role(user.role).value}) does not allow this ({action.value.replace('_', ' ')})."
        )
