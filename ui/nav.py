"""Which pages each role may use. Pages a role may not use are never registered."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from core.permissions import Role

PAGES_DIR = Path(__file__).resolve().parent.parent / "pages"
ALL = (Role.ADMIN, Role.CONTRIBUTOR, Role.VIEWER)


@dataclass(frozen=True)
class PageSpec:
    section: str
    file: str
    title: str
    icon: str
    roles: tuple[Role, ...]
    default: bool = False
    condition: Callable[[object], bool] | None = None   # condition(db) -> show?


def _sandbox_exists(db) -> bool:
    try:
        from storage import connections
    except ImportError:
        return False
    return connections.has_sandbox_connections(db)


PAGES: tuple[PageSpec, ...] = (
    PageSpec("", "home.py", "Home", ":material/home:", ALL, default=True),
    PageSpec("Data", "profiles.py", "Profiles", ":material/group:", ALL),
    PageSpec("Data", "segments.py", "Segments", ":material/filter_alt:", ALL),
    PageSpec("Data", "enrichment.py", "Enrichment", ":material/auto_awesome:", ALL),
    PageSpec("Data", "exports.py", "Exports", ":material/outbox:", ALL),
    PageSpec("Data", "run_history.py", "Run history", ":material/history:", ALL),
    PageSpec("Admin", "connections.py", "Connections", ":material/cable:", (Role.ADMIN,)),
    PageSpec("Admin", "users.py", "Users", ":material/manage_accounts:", (Role.ADMIN,)),
    PageSpec("Admin", "schedule.py", "Schedule", ":material/schedule:", (Role.ADMIN,)),
    PageSpec("Admin", "suppression.py", "Suppression list", ":material/block:", (Role.ADMIN,)),
    PageSpec("Admin", "audit_log.py", "Audit log", ":material/policy:", (Role.ADMIN,)),
    PageSpec("Sandbox", "sandbox.py", "Sandbox", ":material/science:", (Role.ADMIN, Role.CONTRIBUTOR),
             condition=_sandbox_exists),
)


def pages_for(role: Role, db) -> list[PageSpec]:
    out = []
    for spec in PAGES:
        if role not in spec.roles:
            continue
        if not (PAGES_DIR / spec.file).exists():
            continue  # not built yet
        if spec.condition is not None and not spec.condition(db):
            continue
        out.append(spec)
    return out
