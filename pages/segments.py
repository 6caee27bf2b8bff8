"""Data > Segments: list with live sizes, rule builder with counts and preview, save/edit/duplicate/delete, CSV."""
from ui.guard import require_page

require_page(__file__)  # first: nothing below runs without a signed-in user of a role this page allows

from datetime import date

import streamlit as st

from core import segments as rules
from core.permissions import Action, PermissionDenied, can
from core.segments import RuleGroup, SegmentRule, SegmentRuleError
from services import segments as svc
from storage import segments as repo
from ui import deps
from ui.downloads import deferred
from ui.session import current_user
from ui.text import error_text, md

db = deps.get_db()
user = current_user()
may_edit = can(user, Action.EDIT_SEGMENTS)
ERRORS = (svc.SegmentError, SegmentRuleError, PermissionDenied, LookupError)
S = st.session_state
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


VALUE_KEYS = {"text": ("seg_value_text",), "text_list": ("seg_value_list",), "number": ("seg_value_number",),
              "number_range": ("seg_value_from", "seg_value_to"), "date": ("seg_value_date",),
              "date_range": ("seg_value_date_from", "seg_value_date_to"), "days": ("seg_value_days",), "none": ()}


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


@st.dialog("Delete segment")
def confirm_delete(segment: dict) -> None:
    exports = repo.exports_using(db, segment["id"])
    st.write(f"Delete **{md(segment['name'])}**? This cannot be undone.")
    if exports:
        st.warning("It is used by these exports, which will no longer send it: "
                   + ", ".join(f"**{md(e['name'])}**" for e in exports) + ".")
    if st.button("Delete segment", type="primary", key="seg_delete_confirm"):
        try:
            svc.delete_segment(db, user, segment["id"], confirm=bool(exports))
        except ERRORS as exc:
            st.error(error_text(exc))
            return
        if S.get("seg_editing_id") == segment["id"]:
            start_editing(None)
        st.rerun()


st.title("Segments")

# -- list -------------------------------------------------------------------------------------------
# The button above the table, so the table gets the full width (its last column was cut off beside it).
refresh_list = st.button("Refresh counts", key="seg_refresh_counts",
                         help="Count every segment's members again now.")
segments = svc.list_with_counts(db, refresh=refresh_list)
if segments:
    st.dataframe(
        [{"Name": s["name"], "Type": s["kind"], "Members now": s["members_now"],
          "Change since last refresh": s["change"], "Last evaluated": s["last_evaluated_at"],
          "Used by (exports)": ", ".join(s["used_by"])} for s in segments],
        hide_index=True, width="stretch", key="seg_list",
        column_config={"Members now": st.column_config.NumberColumn(format="localized"),
                       "Change since last refresh": st.column_config.NumberColumn(format="localized"),
                       "Last evaluated": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")})
else:
    st.info("No segments yet." + (" Build one below." if may_edit else ""))

by_id = {s["id"]: s for s in segments}
picked = st.selectbox("Segment", list(by_id), format_func=lambda i: by_id[i]["name"], index=None,
                      placeholder="Choose a segment to see its details", key="seg_pick")
if picked is not None:
    seg = by_id[picked]
    with st.container(border=True):
        st.subheader(md(seg["name"]))
        if seg["description"]:
            st.caption(md(seg["description"]))
        attrs = repo.attribute_map(db)
        st.markdown(f"**Rule:** {md(rules.describe(repo.rule_of(seg), attrs))}  \n**Type:** {seg['kind']}"
                    + (f" (members taken {seg['members_taken_at']:%Y-%m-%d %H:%M})" if seg["members_taken_at"] else ""))
        cols = st.columns(6)
        if may_edit and cols[0].button("Edit", key="seg_edit"):
            start_editing(seg)
            st.rerun()
        if may_edit and cols[1].button("Duplicate", key="seg_duplicate"):
            try:
                svc.duplicate_segment(db, user, seg["id"])
                st.rerun()
            except ERRORS as exc:
                st.error(error_text(exc))
        if may_edit and cols[2].button("Delete", key="seg_delete"):
            confirm_delete(seg)
        if can(user, Action.RUN) and cols[3].button("Evaluate now", key="seg_evaluate"):
            try:
                svc.evaluate(db, user, seg["id"])
                st.rerun()
            except ERRORS as exc:
                st.error(error_text(exc))
        if may_edit and seg["kind"] == "static" and cols[4].button("Refresh members", key="seg_refresh_members"):
            try:
                svc.refresh_static_members(db, user, seg["id"])
                st.rerun()
            except ERRORS as exc:
                st.error(error_text(exc))
        history = repo.size_history(db, seg["id"])
        if len(history) > 1:
            st.line_chart({"evaluated_at": [h["evaluated_at"] for h in history],
                           "members": [h["members"] for h in history]}, x="evaluated_at", y="members", x_label="Evaluated", y_label="Members")
        try:
            st.dataframe(repo.preview_segment(db, seg["id"]), hide_index=True, width="stretch",
                         key="seg_detail_preview")
        except ERRORS as exc:
            st.error(error_text(exc))
        if can(user, Action.DOWNLOAD):
            options = {a.key: a.label for a in repo.pickable_attributes(db)}
            chosen = st.multiselect("Columns in the download", list(options), format_func=options.get,
                                    default=[k for k in repo.DEFAULT_PREVIEW_KEYS if k in options], key="seg_csv_columns")
            st.download_button("Download members (CSV)", data=deferred(lambda: svc.members_csv(db, user, seg["id"], chosen)),
                               file_name=f"segment-{seg['id']}.csv", mime="text/csv", key="seg_download")

if not may_edit:
    st.stop()

# -- builder ----------------------------------------------------------------------------------------
editing = by_id.get(S["seg_editing_id"])
st.header(f"Editing “{md(editing['name'])}”" if editing else "Build a segment")
if editing and st.button("Start a new segment instead", key="seg_new"):
    start_editing(None)
    st.rerun()

attributes = {a.key: a for a in repo.pickable_attributes(db)}
all_attributes = repo.attribute_map(db)
rule = draft()
try:
    total, alone = svc.draft_counts(db, rule, refresh=st.button("Count again", key="seg_count"))
except ERRORS as exc:
    total, alone = None, {}
    st.error(error_text(exc))
st.metric("Members", "—" if total is None else f"{total:,}")

group_paths = [path for path, _ in rules.iter_groups_with_paths(rule.root)]


def group_label(path: tuple) -> str:
    return "Top level" if not path else "Group " + ".".join(str(i + 1) for i in path)


def show_group(group: RuleGroup, path: tuple) -> None:
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
                show_group(item, item_path)
                continue
            row = st.columns([6, 2, 1, 1])
            row[0].markdown(md(rules.describe_condition(item, all_attributes)))
            if item_path in alone:
                row[1].caption(f"alone: {alone[item_path]:,}")
            if item.attribute in attributes:
                row[2].button("Change", key=f"seg_change_{item_path}", on_click=load_condition,
                              args=(item_path, item.model_dump()))
            if row[3].button("Remove", key=f"seg_rm_{item_path}"):
                remove(item_path)
                st.rerun()


show_group(rule.root, ())

st.subheader("Add a condition")
cols = st.columns(3)
target = cols[0].selectbox("Add to", group_paths, format_func=group_label, key="seg_new_group")
attr_key = cols[1].selectbox("Attribute", list(attributes), key="seg_new_attr",
                             format_func=lambda k: attributes[k].display_label)
attr = attributes[attr_key]
operator = cols[2].selectbox("Operator", rules.OPERATORS_BY_TYPE[attr.type], key="seg_new_op",
                             format_func=lambda o: rules.OPERATOR_LABELS[o])
reset_value_inputs()
with st.form("seg_add_condition", clear_on_submit=False):
    shape = rules.value_shape(operator)
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

with st.expander("First 100 members"):
    try:
        st.dataframe(repo.preview_rule(db, rule, [*repo.DEFAULT_PREVIEW_KEYS, *rules.attribute_keys(rule)]),
                     hide_index=True, width="stretch", key="seg_draft_preview")
    except ERRORS as exc:
        st.error(error_text(exc))

with st.form("seg_save"):
    name = st.text_input("Name", key="seg_name")
    description = st.text_area("Description", key="seg_description")
    kind = st.radio("Type", ["dynamic", "static"], horizontal=True, key="seg_kind",
                    format_func=lambda k: "Dynamic (re-evaluated at every refresh)" if k == "dynamic"
                    else "Static (members frozen when saved)")
    if st.form_submit_button("Save changes" if editing else "Save segment", type="primary"):
        try:
            if editing:
                svc.update_segment(db, user, editing["id"], name=name, description=description, rule=rule, kind=kind)
            else:
                S["seg_editing_id"] = svc.save_segment(db, user, name, description, rule, kind)
            S["seg_saved"] = name
            st.rerun()
        except ERRORS as exc:
            st.error(error_text(exc))
if S.pop("seg_saved", None):
    st.success("Segment saved.")
