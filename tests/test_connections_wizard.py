"""ui/wizard.py on its own (AppTest.from_function): steps, validation, hidden steps, Back, clear()."""
from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.pages.helpers import shown


def _app():
    import streamlit as st
    from ui.wizard import Step, Wizard

    def kind(w):
        st.radio("Kind", ["export", "enrichment"], key=w.widget_key("kind", default="export"))

    def name(w):
        st.text_input("Name", key=w.widget_key("name", default=""))

    def name_ok(w):
        w.data["name"] = (w.data.get("name") or "").strip()
        return None if w.data["name"] else "Give it a name."

    def extra(w):
        st.write("Only for exports")

    def done(w):
        if st.button("Finish", key="finish"):
            st.session_state["result"] = dict(w.data)
            w.clear()
            st.rerun()

    Wizard("t", [
        Step("Kind", kind),
        Step("Name", name, validate=name_ok),
        Step("Export extra", extra, visible=lambda d: d.get("kind") == "export"),
        Step(lambda d: f"Done ({d.get('kind')})", done),
    ]).show()


def caption(at):
    return next(c.value for c in at.caption if c.value.startswith("Step "))


def test_steps_validation_back_and_hidden_steps():
    at = AppTest.from_function(_app).run()
    assert caption(at) == "Step 1 of 4: Kind"
    assert not [b for b in at.button if b.key == "t.back"]          # no Back on the first step
    at = at.button(key="t.next").click().run()
    assert caption(at) == "Step 2 of 4: Name"
    at = at.button(key="t.next").click().run()
    assert shown(at.error[0].value) == "Give it a name."  # errors are escaped for Markdown and caption(at) == "Step 2 of 4: Name"
    at.text_input(key="t.w.name").input("  Newsletter ")
    at = at.button(key="t.next").click().run()
    assert caption(at) == "Step 3 of 4: Export extra" and not at.error
    at = at.button(key="t.back").click().run()
    assert at.text_input(key="t.w.name").value == "Newsletter"      # normalised by validate, kept
    at = at.button(key="t.back").click().run()
    at.radio(key="t.w.kind").set_value("enrichment")
    at = at.button(key="t.next").click().run()
    at = at.button(key="t.next").click().run()
    assert caption(at) == "Step 3 of 3: Done (enrichment)"          # the export-only step is skipped
    assert not [b for b in at.button if b.key == "t.next"]          # the last step has no Next
    at = at.button(key="finish").click().run()
    assert at.session_state["result"] == {"kind": "enrichment", "name": "Newsletter"}
    assert caption(at) == "Step 1 of 4: Kind" and at.session_state["t.data"] == {}


def test_cancel_forgets_everything():
    at = AppTest.from_function(_app).run()
    at = at.button(key="t.next").click().run()
    at.text_input(key="t.w.name").input("secret-ish value")
    at = at.button(key="t.cancel").click().run()
    assert caption(at) == "Step 1 of 4: Kind"
    assert "secret-ish value" not in repr([at.session_state[k] for k in at.session_state])
