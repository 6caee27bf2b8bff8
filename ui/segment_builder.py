"""The segment rule builder (Data > Segments): the rule as groups of conditions with counts, the "add a
condition" form (with the most frequent existing values of text attributes as suggestions), a preview,
and the save form. State lives in st.session_state under `seg_*` keys; logic is in services/segments.py
and core/segments.py."""
from __future__ import annotations

from datetime import date

import streamlit as st

from core import segments as rules
from core.permissions import PermissionDenied
from core.segments import RuleGroup, SegmentRule, SegmentRuleError
from services import segments as svc
from ui.format import EMPTY, number, plural, show_table
from ui.text import error_text, md

ERRORS = (svc.SegmentError, SegmentRuleError, PermissionDenied, LookupError)
S = st.session_state
VALUE_KEYS = {"text": ("seg_value_text",), "text_list": ("seg_value_list",), "number": ("seg_value_number",),
              "number_range": ("seg_value_from", "seg_value_to"), "date": ("seg_value_date",),
              "date_range": ("seg_value_date_from", "seg_value_date_to"), "days": ("seg_value_days",), "none": ()}
SUGGEST_KEY = "seg_suggest"
SHOWN_SUGGESTIONS = 8     # values spelled out under the picker, so "Germany" and "DE" are seen side by side


def init_state() -> None:
    S.setdefault("seg_draft", SegmentRule().model_dump(mode="json"))
    S.setdefault("seg_editing_id", None)


def draft() -> SegmentRule:
    return SegmentRule.parse(S["seg_draft"])


def set_draft(rule: SegmentRule) -> None:
    S["seg_draft"] = rule.model_dump(mode="json")


def remove(path: tuple) -> None:
    set_draft(rules.remove_item(draft(), path))
    S.pop("seg_change_path", None)   # paths after the removed item have shifted


def start_editing(segment: dict | None) -> None:
    """Load a saved segment (or a blank rule) into the builder."""
    S.pop("seg_change_path", None)
    S["seg_editing_id"] = segment["id"] if segment else None
    S["seg_draft"] = SegmentRule.parse(segment["rule_json"]).model_dump(mode="json") if segment \
        else SegmentRule().model_dump(mode="json")
    S["seg_name"] = segment["name"] if segment else ""
    S["seg_description"] = (segment["description"] or "") if segment else ""
    S["seg_kind"] = segment["kind"] if segment else "dynamic"


def value_defaults() -> dict:
    """What each value field shows when empty (the same defaults the widgets below are drawn with)."""
    today = date.today()
    return {"seg_value_text": "", "seg_value_list": "", "seg_value_number": 0.0, "seg_value_from": 0.0,
            "seg_value_to": 100.0, "seg_value_date": today, "seg_value_date_from": today.replace(day=1),
            "seg_value_date_to": today, "seg_value_days": 30}


def reset_value_inputs() -> None:
    """Put the value fields back to empty once a condition went into the rule, so the form does not
    invite a duplicate. Runs before the widgets are drawn: a value set then also reaches the browser
    (dropping the state instead would leave the browser showing, and sending back, the old value)."""
    if S.pop("seg_reset_values", False):
        S.update(value_defaults())


def load_condition(path: tuple, condition: dict) -> None:
    """on_click: put a condition into the form so the next submit changes it in place."""
    cond = rules.new_condition(**{k: condition[k] for k in ("attribute", "operator", "value", "value2")})
    S["seg_change_path"] = path
    S["seg_new_group"], S["seg_new_attr"], S["seg_new_op"] = path[:-1], cond.attribute, cond.operator
    shape = rules.value_shape(cond.operator)
    values = ("\n".join(cond.value),) if shape == "text_list" else (cond.value, cond.value2)
    for key, value in zip(VALUE_KEYS[shape], values):
        S[key] = int(value) if shape == "days" else value


def use_suggestion(shape: str) -> None:
    """on_change of the suggestions: put the picked value into the value field (a list gets it added)."""
    picked = S.get(SUGGEST_KEY)
    if picked is None:
        return
    if shape == "text_list":
        current = [v for v in str(S.get("seg_value_list", "")).splitlines() if v.strip()]
        S["seg_value_list"] = "\n".join(current + ([picked] if picked not in current else []))
    else:
        S["seg_value_text"] = picked
    S[SUGGEST_KEY] = None


def group_label(path: tuple) -> str:
    return "Top level" if not path else "Group " + ".".join(str(i + 1) for i in path)


def _show_group(db, group: RuleGroup, path: tuple, alone: dict, attributes: dict) -> None:
    with st.container(border=True):
        cols = st.columns([3, 1])
        join = cols[0].radio(f"{group_label(path)}: match", ["and", "or"], index=0 if group.join == "and" else 1,
                             horizontal=True, key=f"seg_join_{path}",
                             format_func=lambda j: "all of these (AND)" if j == "and" else "any of these (OR)")
        if join != group.join:
            set_draft(rules.set_join(draft(), path, join))
            st.rerun()
        if path and cols[1].button("Remove group", key=f"seg_rm_{path}"):
            remove(path)
            st.rerun()
        if not group.items:
            st.caption("Empty group: ignored until it has a condition.")
        for index, item in enumerate(group.items):
            item_path = path + (index,)
            if isinstance(item, RuleGroup):
                _show_group(db, item, item_path, alone, attributes)
                continue
            row = st.columns([6, 2, 1, 1])
            row[0].markdown(md(svc.describe_condition(db, item)))
            if item_path in alone:
                row[1].caption(f"alone: {alone[item_path]:,}")
            if item.attribute in attributes:
                row[2].button("Change", key=f"seg_change_{item_path}", on_click=load_condition,
                              args=(item_path, item.model_dump()))
            if row[3].button("Remove", key=f"seg_rm_{item_path}"):
                remove(item_path)
                st.rerun()


def _value_inputs(shape: str):
    value = value2 = None
    if shape == "text":
        value = st.text_input("Value", key="seg_value_text")
    elif shape == "text_list":
        value = [v.strip() for v in st.text_area("Values, one per line", key="seg_value_list").splitlines() if v.strip()]
    elif shape == "number":
        value = st.number_input("Value", value=0.0, key="seg_value_number")
    elif shape == "number_range":
        value = st.number_input("From", value=0.0, key="seg_value_from")
        value2 = st.number_input("To", value=100.0, key="seg_value_to")
    elif shape == "date":
        value = st.date_input("Date", value=date.today(), key="seg_value_date")
    elif shape == "date_range":
        value = st.date_input("From", value=date.today().replace(day=1), key="seg_value_date_from")
        value2 = st.date_input("To", value=date.today(), key="seg_value_date_to")
    elif shape == "days":
        value = st.number_input("Days", min_value=0, max_value=rules.MAX_DAYS, value=30, step=1, key="seg_value_days")
    else:
        st.caption("This operator needs no value.")
    return value, value2


def _suggestions(db, attr_key: str, shape: str) -> None:
    """The attribute's most frequent values with their counts: a marketer sees that "Germany" and "DE"
    both exist before typing one of them."""
    if shape not in ("text", "text_list"):
        return
    suggestions = dict(svc.value_suggestions(db, attr_key))
    if not suggestions or max(suggestions.values()) < 2:
        return   # every value is unique (ids, emails): nothing frequent to suggest
    st.selectbox("Existing values (most frequent first)", list(suggestions), index=None, key=SUGGEST_KEY,
                 format_func=lambda v: f"{v}  ({plural(suggestions[v], 'profile')})",
                 placeholder="Pick one to use it as the value", on_change=use_suggestion, args=(shape,))
    top = list(suggestions.items())[:SHOWN_SUGGESTIONS]
    st.caption("Most frequent: " + " · ".join(f"{md(v)} ({number(n)})" for v, n in top)
               + (" · …" if len(suggestions) > len(top) else ""))


def _add_condition_form(db, attributes: dict, group_paths: list) -> None:
    st.subheader("Add a condition")
    # "Add to: Top level" only says something once there is a group to choose
    many = len(group_paths) > 1
    cols = st.columns(3 if many else 2)
    target = cols[0].selectbox("Add to", group_paths, format_func=group_label, key="seg_new_group") if many \
        else group_paths[0]
    attr_col, operator_col = cols[-2], cols[-1]
    attr_key = attr_col.selectbox("Attribute", list(attributes), key="seg_new_attr",
                                 format_func=lambda k: attributes[k].display_label)
    attr = attributes[attr_key]
    operator = operator_col.selectbox("Operator", rules.OPERATORS_BY_TYPE[attr.type], key="seg_new_op",
                                 format_func=lambda o: rules.OPERATOR_LABELS[o])
    shape = rules.value_shape(operator)
    reset_value_inputs()
    _suggestions(db, attr_key, shape)
    with st.form("seg_add_condition", clear_on_submit=False):
        value, value2 = _value_inputs(shape)
        change_path = S.get("seg_change_path")
        if st.form_submit_button("Change condition" if change_path else "Add condition", type="primary"):
            try:
                condition = rules.new_condition(attr_key, operator, value, value2)
                if change_path:
                    set_draft(rules.replace_item(draft(), tuple(change_path), condition))
                    S.pop("seg_change_path")
                else:
                    set_draft(rules.add_item(draft(), target, condition))
                S["seg_reset_values"] = True
                st.rerun()
            except ERRORS as exc:
                st.error(error_text(exc))
    if S.get("seg_change_path") and st.button("Cancel change", key="seg_change_cancel"):
        S.pop("seg_change_path")
        st.rerun()
    if st.button("Add a group", key="seg_add_group", help="A group inside the chosen group: its conditions are joined by OR"):
        try:
            set_draft(rules.add_item(draft(), target, RuleGroup(join="or")))
            st.rerun()
        except ERRORS as exc:
            st.error(error_text(exc))


def _save_form(db, user, editing: dict | None, rule: SegmentRule, on_saved) -> None:
    with st.form("seg_save"):
        name = st.text_input("Name", key="seg_name")
        description = st.text_area("Description", key="seg_description")
        kind = st.radio("Type", ["dynamic", "static"], horizontal=True, key="seg_kind",
                        format_func=lambda k: "Dynamic (re-evaluated at every refresh)" if k == "dynamic"
                        else "Static (members frozen when saved)")
        if st.form_submit_button("Save changes" if editing else "Save segment", type="primary"):
            try:
                if editing:
                    saved_id = editing["id"]
                    svc.update_segment(db, user, saved_id, name=name, description=description, rule=rule, kind=kind)
                else:
                    saved_id = svc.save_segment(db, user, name, description, rule, kind)
            except ERRORS as exc:
                st.error(error_text(exc))
            else:
                S["seg_editing_id"] = saved_id
                on_saved(saved_id)
                st.rerun()


def show_builder(db, user, editing: dict | None, on_saved) -> None:
    """The builder for a new segment, or for `editing` (a saved segment); `on_saved(segment_id)` runs after
    a save, before the rerun."""
    st.header(f"Editing “{md(editing['name'])}”" if editing else "Build a segment")
    if editing and st.button("Start a new segment instead", key="seg_new"):
        start_editing(None)
        st.rerun()
    attributes = {a.key: a for a in svc.attributes(db)}
    rule = draft()
    narrowed = any(rules.iter_conditions(rule.root))
    try:   # "Count again" only once there is something to count: before a condition it is every profile
        refresh = st.button("Count again", key="seg_count") if narrowed else False
        total, alone = svc.draft_counts(db, rule, refresh=refresh)
    except ERRORS as exc:
        total, alone = None, {}
        st.error(error_text(exc))
    if narrowed:
        st.metric("Members", EMPTY if total is None else number(total))
    elif total is not None:
        # a bare "Members 2,000" before any condition reads like a result; say what it is
        st.info(f"All {plural(total, 'profile')} — add a condition to narrow it.")
    if rule.root.items:   # an empty top level ("Empty group: ignored…") said nothing the line above does not
        _show_group(db, rule.root, (), alone, attributes)
    _add_condition_form(db, attributes, [path for path, _ in rules.iter_groups_with_paths(rule.root)])
    with st.expander("First 100 members"):
        try:
            show_table(svc.preview_draft(db, rule), key="seg_draft_preview")
        except ERRORS as exc:
            st.error(error_text(exc))
    _save_form(db, user, editing, rule, on_saved)
