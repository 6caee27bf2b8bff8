"""ui/errors.py (the one error wrapper) and ui/flash.py (the one flash mechanism), in a tiny AppTest app."""
from __future__ import annotations

from streamlit.testing.v1 import AppTest


def _app():
    import streamlit as st

    from core.errors import InputError
    from ui import flash
    from ui.errors import attempt

    def refuse():
        raise InputError("Pick a segment named “*bold*”.")

    def crash():
        raise KeyError("internal_column_name")

    flash.show()
    if st.button("user error", key="u"):
        attempt(refuse)
    if st.button("bug", key="b"):
        ok, result = attempt(crash)
        st.write(f"ok={ok} result={result}")
    if st.button("flash", key="f"):
        attempt(lambda: 42, ok="Saved “x”.")
        st.rerun()


def test_user_error_is_its_message_escaped_and_a_bug_is_one_sentence():
    at = AppTest.from_function(_app).run()
    at.button(key="u").click().run()
    assert not at.exception
    assert at.error[0].value == "Pick a segment named “\\*bold\\*”\\."       # escaped for Markdown
    at.button(key="b").click().run()
    assert not at.exception                                                 # never a traceback
    text = at.error[0].value
    assert "a bug" in text and "internal_column_name" not in text and "KeyError" not in text
    assert any("ok=False result=None" in m.value for m in at.markdown)


def test_flash_is_shown_once_after_the_rerun():
    at = AppTest.from_function(_app).run()
    at.button(key="f").click().run()
    assert [s.value for s in at.success] == ["Saved “x”\\."]
    at.run()
    assert not at.success                                                  # shown once, then forgotten
