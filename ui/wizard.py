"""A small reusable wizard stepper: one step at a time, Back / Next, validation before each Next.

Usage
-----
    from ui.wizard import Step, Wizard

    def name_step(wiz):
        st.text_input("Display name", key=wiz.widget_key("name", default=""))

    def name_ok(wiz):                       # return an error message, or None when the step is fine
        return None if wiz.data.get("name", "").strip() else "Give it a name."

    wiz = Wizard("add_conn", [
        Step("Type", type_step, validate=lambda w: None if w.data.get("vendor") else "Pick a type."),
        Step("Display name", name_step, validate=name_ok),
        Step("Export user", export_user_step, visible=lambda data: data.get("kind") == "export"),
        Step("Save", save_step),            # the last step draws its own finishing button
    ])
    wiz.show()                              # caption "Step 2 of 4: Display name", the step, error, buttons
    ...
    wiz.clear()                             # on Save / Cancel: forget everything (secrets included)

How it keeps values
-------------------
Streamlit drops the state of widgets that are not drawn, so each value lives in ``wiz.data`` (a dict in
session state). Give a widget ``key=wiz.widget_key(name, default)``: the widget is seeded from
``wiz.data[name]`` and, when Back or Next is pressed, its value is copied back into ``wiz.data[name]``
*before* the step's ``validate`` runs. Buttons inside a step may write ``wiz.data[...]`` directly.

Step fields: ``title`` (str, or callable(data) -> str), ``render(wiz)``, ``validate(wiz) -> str | None``
(optional), ``visible(data) -> bool`` (optional; hidden steps are skipped and not counted). ``visible``
and callable titles see ``wiz.data`` overlaid with the widgets' current values.
Wizard: ``show(next_label="Next", back_label="Back", cancel_label="Cancel", on_cancel=None)``,
``data``, ``widget_key(name, default=None)``, ``value(name, default=None)``, ``current`` (Step),
``position`` / ``total`` (1-based among visible steps), ``is_last``, ``go_to(title)``, ``clear()``.
Every session-state key it uses starts with ``"<key>."`` so ``clear()`` removes them all.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import streamlit as st

from ui.text import md


@dataclass(frozen=True)
class Step:
    title: str | Callable[[dict], str]
    render: Callable[["Wizard"], None]
    validate: Callable[["Wizard"], str | None] | None = None
    visible: Callable[[dict], bool] | None = None

    def title_for(self, data: dict) -> str:
        return self.title(data) if callable(self.title) else self.title


class Wizard:
    def __init__(self, key: str, steps: list[Step]):
        if not steps:
            raise ValueError("A wizard needs at least one step.")
        self.key = key
        self.steps = list(steps)
        self._prefix = f"{key}."
        self._widget_prefix = f"{key}.w."
        st.session_state.setdefault(self._k("data"), {})
        st.session_state.setdefault(self._k("step"), 0)

    # -- state -------------------------------------------------------------------------
    def _k(self, name: str) -> str:
        return self._prefix + name

    @property
    def data(self) -> dict:
        return st.session_state.setdefault(self._k("data"), {})

    def widget_key(self, name: str, default: Any = None) -> str:
        """Session-state key for the widget holding `name`, seeded from data (or `default`).

        A widget that was not on screen in the previous run is always re-seeded from ``data``:
        Streamlit may keep a stale seeded value for an undrawn widget, and a real browser would show
        that instead of the user's earlier answer (e.g. after Back)."""
        wkey = self._widget_prefix + name
        drawn = st.session_state.setdefault(self._k("drawn"), set())
        previously_drawn = st.session_state.get(self._k("prev_drawn"), set())
        drawn.add(name)
        if name not in previously_drawn or wkey not in st.session_state:
            value = self.data.get(name, default)
            if value is not None:
                st.session_state[wkey] = value
            else:
                st.session_state.pop(wkey, None)
        return wkey

    def value(self, name: str, default: Any = None) -> Any:
        """The live widget value if it is drawn this run, else the saved one."""
        wkey = self._widget_prefix + name
        if wkey in st.session_state:
            return st.session_state[wkey]
        return self.data.get(name, default)

    def _on_screen(self) -> set[str]:
        """Names of the widgets drawn in the last run (the step the user is looking at)."""
        return set(st.session_state.get(self._k("drawn"), set()))

    def _capture(self) -> None:
        data = self.data
        for name in self._on_screen():
            wkey = self._widget_prefix + name
            if wkey in st.session_state:
                data[name] = st.session_state[wkey]

    def _sync_widgets(self) -> None:
        for name, value in self.data.items():
            wkey = self._widget_prefix + name
            if wkey in st.session_state and st.session_state[wkey] != value:
                st.session_state[wkey] = value

    def _view(self) -> dict:
        """data overlaid with live widget values of the step on screen: what visible()/title() decide on."""
        view = dict(self.data)
        for name in self._on_screen():
            wkey = self._widget_prefix + name
            if wkey in st.session_state:
                view[name] = st.session_state[wkey]
        return view

    def _visible_indexes(self) -> list[int]:
        data = self._view()
        return [i for i, s in enumerate(self.steps) if s.visible is None or s.visible(data)]

    @property
    def _index(self) -> int:
        idx = int(st.session_state.get(self._k("step"), 0))
        visible = self._visible_indexes()
        if idx not in visible:  # a choice hid the current step: fall back to the nearest earlier visible
            earlier = [i for i in visible if i <= idx]
            idx = earlier[-1] if earlier else visible[0]
            st.session_state[self._k("step")] = idx
        return idx

    @property
    def current(self) -> Step:
        return self.steps[self._index]

    @property
    def position(self) -> int:
        return self._visible_indexes().index(self._index) + 1

    @property
    def total(self) -> int:
        return len(self._visible_indexes())

    @property
    def is_last(self) -> bool:
        return self.position == self.total

    @property
    def error(self) -> str | None:
        return st.session_state.get(self._k("error"))

    def go_to(self, title: str) -> None:
        for i, step in enumerate(self.steps):
            if step.title_for(self._view()) == title:
                st.session_state[self._k("step")] = i
                st.session_state.pop(self._k("error"), None)
                return
        raise KeyError(title)

    def clear(self) -> None:
        """Forget the wizard: step, data and every widget value (call on Save and on Cancel)."""
        for k in list(st.session_state.keys()):
            if isinstance(k, str) and k.startswith(self._prefix):
                del st.session_state[k]

    # -- navigation callbacks (run before the script reruns) ------------------------------
    def _next(self) -> None:
        self._capture()
        step = self.current
        message = step.validate(self) if step.validate else None
        if message:
            st.session_state[self._k("error")] = message
            return
        st.session_state.pop(self._k("error"), None)
        self._sync_widgets()  # validate may have normalised values (e.g. trimmed a name): show that
        visible = self._visible_indexes()  # recomputed: this step's answers may show/hide later ones
        later = [i for i in visible if i > self._index]
        if later:
            st.session_state[self._k("step")] = later[0]

    def _back(self) -> None:
        self._capture()
        st.session_state.pop(self._k("error"), None)
        earlier = [i for i in self._visible_indexes() if i < self._index]
        if earlier:
            st.session_state[self._k("step")] = earlier[-1]

    # -- drawing ----------------------------------------------------------------------------
    def caption(self) -> str:
        return f"Step {self.position} of {self.total}: {self.current.title_for(self._view())}"

    def show(self, *, next_label: str = "Next", back_label: str = "Back", cancel_label: str = "Cancel",
             on_cancel: Callable[[], None] | None = None) -> None:
        head = st.container()  # filled after the step is drawn: its widgets' defaults can change the count
        st.session_state[self._k("prev_drawn")] = self._on_screen()
        st.session_state[self._k("drawn")] = set()
        self.current.render(self)
        with head:
            st.caption(self.caption())
            st.progress(self.position / self.total)
        if self.error:
            st.error(md(self.error))  # validation messages are plain text that may quote input
        # One row, packed left: fixed columns left a gap where Back is missing (step 1) and spread the
        # buttons apart on wide screens.
        row = st.container(horizontal=True)
        if self.position > 1:
            row.button(back_label, key=self._k("back"), on_click=self._back)
        if not self.is_last:
            row.button(next_label, key=self._k("next"), type="primary", on_click=self._next)

        def cancel() -> None:
            self.clear()
            if on_cancel is not None:
                on_cancel()

        row.button(cancel_label, key=self._k("cancel"), on_click=cancel)
