"""The one guard every page calls first: no signed-in user of an allowed role, nothing drawn.

app.py only registers the pages a user may see, but a page must not rely on how it was reached:
`require_page(__file__)` re-checks the server-side session and the role ui/nav.py's PAGES table
allows for that page file, and stops the script run otherwise.
"""
from __future__ import annotations

import streamlit as st

from core.permissions import User
from ui import deps, nav, session

NOT_SIGNED_IN = "Sign in to see this page."
NOT_ALLOWED = "Your role cannot use this page."


def require_page(page_file: str) -> User:
    """The signed-in user, if their role may use `page_file` (pass `__file__`); else st.stop()."""
    nav.leave_page_folder_mode()  # reached without app.py: start over through it
    spec = nav.spec_for_file(page_file)
    user = session.validated_user(deps.get_db())
    if user is None:
        st.info(NOT_SIGNED_IN)
        st.stop()
    if spec is None or user.role not in spec.roles:  # an unlisted page is nobody's page
        st.warning(NOT_ALLOWED)
        st.stop()
    return user
