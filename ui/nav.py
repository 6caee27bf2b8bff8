"""Which pages each role may use (the single source: app.py registers from it, ui/guard.py checks it).
Pages a role may not use are never registered."""
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
    from storage import connections

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


def url_path(spec: PageSpec) -> str:
    """The page's URL path as Streamlit derives it from the file name (`/segments`, `/run_history`)."""
    return Path(spec.file).stem


def spec_for_file(page_file: str) -> PageSpec | None:
    """The PAGES entry of a page file (given as `__file__` or a bare name), or None if unlisted."""
    name = Path(page_file).name
    return next((spec for spec in PAGES if spec.file == name), None)


def leave_page_folder_mode() -> None:
    """Restart a run that Streamlit's old multipage mode started, so it goes through app.py's navigation.

    While a folder named `pages` sits next to app.py, Streamlit 1.67 runs every script run through its
    old page-folder mode (each file in pages/ served by its own URL, listed in the sidebar, app.py
    skipped) until the first st.navigation call anywhere in the process flips the process-wide flag
    `PagesManager.uses_pages_directory`. That is how `/segments` showed data after a server start.
    app.py and ui.guard call this first; the rerun then resolves the same URL through st.navigation."""
    import streamlit as st
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()
