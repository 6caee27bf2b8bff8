"""Segment exports: save (wizard), list, dry run, run, retry failed, duplicate, remove, demo.

Every state-changing function checks the actor's role (Action.EDIT_EXPORTS or Action.RUN) and writes
the audit log. Runs go through the job queue (kind "export", jobs/export_run.py); saving never runs.

API
---
ExportInputError (message shown as is)
vendor_field_specs(vendor) -> list[FieldSpec]; allows_data_fields(vendor) -> bool
field_limits(vendor) -> {field: max chars}
attribute_choices(db) -> list[{key, label, source}]       catalogue attributes for "Add attribute"
usable_connections(db, actor) -> list[{id, name, vendor, region}]
vendor_targets(db, actor, connection_id) -> list[{id, name}]  the account's lists (SendGrid picker)
read_only_reason(db, actor, export) -> str | None   why the actor may not operate this export
draft_checks(db, draft, export_id=None) -> {"contacts", "limit_warning", "hard", "account_contacts",
    "cap_problem", "over_limit_fields", "estimate_text", "schedule_note"}      shown before saving
email_field_choices(db); email_field_stats(db, attribute, segment_ids) -> {"profiles", "missing", "invalid"}
new_form / form_from_export / draft_from_form / form_checks / save_form   the one-page editor's values
schedule_note(db, id|None); list_schedule_note(db)   "runs with every refresh, but the refresh is off"
export_from_param(db, raw) -> export | None          ?export=<id>
save_export(db, actor, draft, export_id=None) -> id
    draft: name, connection_id, mapping [{field, attribute}], segment_ids, targets {segment_id: {mode:
    "id"|"name", id, name}}, sync_mode "mirror"|"add_only", over_limit "truncate"|"skip"
delete_export(db, actor, id); duplicate_export(db, actor, id) -> id; set_active(db, actor, id, active)
run_gate(db, actor, id, *, dry_run=False) -> RunGate   THE export gate (jobs/export_plan.py): blocked + reason,
    needs_confirmation, warnings, contacts, account_contacts, to_send, estimate; the runner enforces the same
run_export(db, actor, id, *, confirm_removals=False, trigger="manual") -> run_id   refuses on the gate
dry_run(db, actor, id) -> run_id; retry_failed(db, actor, id) -> run_id
cancel_run(db, actor, run_id); resume_run(db, actor, run_id) -> run_id
overview(db) -> list[dict]                                the Exports list rows
get_export(db, id); runs_of(db, id, limit) ; last_run(db, id, *, dry_run=None)
run_detail(db, run_id) -> {"run", "by_outcome", "targets"}
run_contacts_page(db, run_id, *, outcome, action, limit, offset) -> (rows, total)
run_contacts_csv(db, run_id, *, outcome=None, action=None) -> str
demo_setup(db, actor) -> list[id]
"""
from __future__ import annotations

from core.errors import InputError
from core import sync
from core.csvfile import csv_text
from core.permissions import Action, Actor, PermissionDenied, Role, SystemActor, User, require
from jobs import export_journal, export_plan, export_run, runner
from jobs.export_plan import RunGate
from connectors import registry
from connectors.errors import ConnectorError
from storage import audit
from storage import exports as repo
from storage import runs as runs_repo

KIND = "export"
MAX_NAME = 100
DEFAULT_EMAIL_ATTRIBUTE = "profile.email"
INVALID_EXAMPLES_CHECKED = 20_000   # distinct values the pattern rejects, checked exactly in Python at most


class ExportInputError(InputError, ValueError):
    """Bad wizard input; the message is shown to the user as is."""


# ------------------------------------------------------------------------------ vendor facts

def vendor_spec(vendor: str):
    """The export vendor's SPEC (connectors/<vendor>.py): label, target word and modes, default target
    name, fields, limits. None for a vendor that is not an export vendor."""
    return registry.export_spec(vendor)


def vendor_field_specs(vendor: str) -> list[sync.FieldSpec]:
    spec = registry.export_spec(vendor)
    return list(spec.fields) if spec else []


def allows_data_fields(vendor: str) -> bool:
    spec = registry.export_spec(vendor)
    return bool(spec and spec.data_fields)


def field_limits(vendor: str) -> dict[str, int]:
    return export_plan.field_limits(vendor)


def attribute_choices(db) -> list[dict]:
    from storage import catalogue

    return [{"key": a.key, "label": a.display_label,
             "source": a.source} for a in catalogue.list_attributes(db) if a.key != "profile.email_opt_out"]


def email_field_choices(db) -> list[dict]:
    """Text attributes (profile or enriched) that may hold the email address: [{key, label, source}]."""
    from storage import catalogue

    return [{"key": a.key, "label": a.display_label, "source": a.source}
            for a in catalogue.list_attributes(db) if a.type == "text"]


def email_field_stats(db, attribute_key: str, segment_ids: list[int] | None = None) -> dict:
    """For the data-matching choice: {"profiles", "missing", "invalid"} over the segments' members (all
    profiles when none are picked). One SQL pass; values DuckDB's pattern rejects are checked exactly."""
    if attribute_key not in {a["key"] for a in email_field_choices(db)}:
        raise ExportInputError("Pick a text attribute that holds the email address.")
    exprs, joins, _ = repo.mapping_columns(db, [{"field": sync.EMAIL_FIELD, "attribute": attribute_key}])
    value = f"nullif(lower(trim({exprs[0]})), '')"
    where, params = "", []
    if segment_ids:
        members, params = repo.members_sql(db, [int(s) for s in segment_ids])
        where = f"WHERE p.customer_id IN ({members})"
    base = f"SELECT {value} AS email FROM profiles p {' '.join(joins)} {where}"
    pattern = sync.FAST_EMAIL_SQL
    total, missing = db.query_one(f"SELECT count(*), count(*) FILTER (WHERE email IS NULL) FROM ({base})", params)
    odd = db.query(f"SELECT email, count(*) FROM ({base}) WHERE email IS NOT NULL AND NOT "
                   f"coalesce(regexp_full_match(email, ?), FALSE) GROUP BY email LIMIT {INVALID_EXAMPLES_CHECKED}",
                   params + [pattern])
    invalid = sum(int(n) for email, n in odd if sync.email_problem(email))
    return {"profiles": int(total), "missing": int(missing), "invalid": invalid}


def schedule_note(db, export_id: int | None) -> str | None:
    """A sentence when the export follows the system refresh while that is off (then it never runs on
    its own), else None. A new export follows the system refresh."""
    from services import schedule

    mode = schedule.get_item_schedule(db, KIND, int(export_id))["mode"] if export_id is not None else "system"
    if mode == "system" and schedule.get_system_schedule(db).mode == "off":
        return ("It runs with every scheduled refresh, but the system refresh is off: it will not run on its own "
                "until an admin turns the schedule on (or give it its own schedule).")
    return None


def segment_choices(db) -> dict[int, str]:
    """{segment id: name} for the editor's segment picker."""
    from storage import segments

    return {s["id"]: s["name"] for s in segments.list_segments(db)}


def vendor_label(vendor: str | None) -> str:
    return _vendor_label(vendor) if vendor else "—"


def suggest_name(db, form: dict) -> str:
    """The default name of a new export: "<segments> to <connection>"."""
    segs = segment_choices(db)
    conn = _connection(db, form.get("connection_id")) if form.get("connection_id") is not None else None
    names = ", ".join(segs.get(int(s), "") for s in form.get("segment_ids") or [])
    if not names or conn is None:
        return ""
    return f"{names} to {conn['name']}"[:MAX_NAME]


def usable_connections(db, actor: User) -> list[dict]:
    from services import connections

    return [c for c in connections.usable_connections(db, actor, "export") if registry.export_spec(c["vendor"])]


def _connection(db, connection_id) -> dict | None:
    from storage import connections

    return connections.get_connection(db, connection_id)


def read_only_reason(db, actor: Actor, export: dict) -> str | None:
    """Why ``actor`` may not operate this export (its connection is not usable by them), or None.

    Admins and the system actor may use every connection; contributors only export connections an
    admin shared with them. Every export action checks this, the page uses it to show the export read-only.
    """
    if isinstance(actor, SystemActor) or (isinstance(actor, User) and Role(actor.role) == Role.ADMIN):
        return None
    conn = _connection(db, export.get("connection_id"))
    if conn is None:
        return "Its connection no longer exists; only an admin can change this export."
    if not conn.get("shared_with_contributors"):
        return (f"Its connection “{conn['name']}” is not shared with contributors; only an admin can run or "
                "change this export.")
    return None


def _require_usable(db, actor: Actor, export: dict) -> None:
    reason = read_only_reason(db, actor, export)
    if reason:
        raise PermissionDenied(f"You cannot operate “{export['name']}”: {reason}")


def _require_usable_run(db, actor: Actor, run_id: int) -> None:
    run = runner.get_run(db, int(run_id))
    if run and run["kind"] == KIND and run["target_id"] is not None:
        export = repo.get_export(db, int(run["target_id"]))
        if export is not None:
            _require_usable(db, actor, export)


def require_usable_export(db, actor: Actor, export_id: int) -> None:
    """For other services acting on an export (its schedule): refuse when its connection is not usable."""
    export = repo.get_export(db, int(export_id))
    if export is not None:
        _require_usable(db, actor, export)


def vendor_targets(db, actor: Actor, connection_id: int) -> list[dict]:
    """The account's lists for the picker (ConnectorError.user_message is raised as ExportInputError)."""
    require(actor, Action.EDIT_EXPORTS)
    if connection_id is None or int(connection_id) not in {c["id"] for c in usable_connections(db, actor)}:
        raise PermissionDenied("You cannot use that connection for exports.")
    client = export_run.connection_client(db, connection_id)
    try:
        return [{"id": t.id, "name": t.name} for t in client.list_targets()]
    except ConnectorError as exc:   # the vendor's answer in words; anything else is a bug, not hidden
        raise ExportInputError(exc.user_message) from None
    finally:
        client.close()


# ------------------------------------------------------------------------------ validation

def _segment_names(db, segment_ids: list[int]) -> dict[int, str]:
    from storage import segments

    out = {}
    for sid in segment_ids:
        seg = segments.get_segment(db, int(sid))
        if seg is None:
            raise ExportInputError(f"Segment {sid} no longer exists. Pick the segments again.")
        out[int(sid)] = seg["name"]
    return out


def clean_draft(db, actor: User, draft: dict, export_id: int | None = None) -> dict:
    name = (draft.get("name") or "").strip()
    if not name:
        raise ExportInputError("Give the export a name.")
    if len(name) > MAX_NAME:
        raise ExportInputError(f"Keep the name under {MAX_NAME} characters.")
    if repo.name_taken(db, name, export_id):
        raise ExportInputError(f"An export named “{name}” already exists. Pick another name.")
    usable = {c["id"]: c for c in usable_connections(db, actor)}
    conn_id = draft.get("connection_id")
    if conn_id is None or int(conn_id) not in usable:
        raise ExportInputError("Pick a connection you may use for exports.")
    vendor = usable[int(conn_id)]["vendor"]
    spec = registry.spec(vendor)   # usable_connections keeps export vendors only
    allowed_fields = {f.key for f in vendor_field_specs(vendor)}
    catalogue_keys = {a["key"] for a in attribute_choices(db)}
    mapping, seen = [], set()
    email_attribute = (draft.get("email_attribute") or (repo.email_mapping(draft.get("mapping")) or {}).get("attribute")
                       or DEFAULT_EMAIL_ATTRIBUTE)
    if email_attribute not in {a["key"] for a in email_field_choices(db)}:
        raise ExportInputError("Pick a text attribute that holds the email address.")
    if email_attribute != DEFAULT_EMAIL_ATTRIBUTE:
        mapping.append({"field": sync.EMAIL_FIELD, "attribute": email_attribute})
        seen.add(sync.EMAIL_FIELD)
    for item in draft.get("mapping") or []:
        field, attribute = (item.get("field") or "").strip(), item.get("attribute")
        if field == sync.EMAIL_FIELD:
            continue   # the email attribute is chosen above (data matching), never as a plain field
        if not field or not attribute:
            raise ExportInputError("Each added attribute needs both a vendor field and a source attribute.")
        if field not in allowed_fields and not (allows_data_fields(vendor) and sync.valid_data_field_name(field)):
            raise ExportInputError(f"“{field}” is not a field this vendor accepts." + (
                " Data field names start with a letter and use letters, digits and _." if allows_data_fields(vendor) else ""))
        if field in seen:
            raise ExportInputError(f"“{field}” is mapped twice. Map each vendor field once.")
        if attribute not in catalogue_keys:
            raise ExportInputError(f"The attribute {attribute!r} does not exist.")
        seen.add(field)
        mapping.append({"field": field, "attribute": attribute})
    segment_ids = [int(s) for s in draft.get("segment_ids") or []]
    if not segment_ids:
        raise ExportInputError("Pick at least one segment.")
    if len(set(segment_ids)) != len(segment_ids):
        raise ExportInputError("A segment is picked twice.")
    names = _segment_names(db, segment_ids)
    targets = {}
    for sid in segment_ids:
        t = dict((draft.get("targets") or {}).get(sid) or (draft.get("targets") or {}).get(str(sid)) or {})
        mode = t.get("mode") or "name"
        if mode == "id" and "id" in spec.target_modes:
            tid = (t.get("id") or "").strip()
            if not tid:
                raise ExportInputError(f"Type or pick the {spec.label} {spec.target_word} ID for “{names[sid]}”.")
            targets[sid] = {"mode": "id", "id": tid, "name": (t.get("name") or "").strip() or None}
        else:
            default = spec.default_target_name(names[sid])
            tname = ((t.get("name") or "").strip() or default) if spec.target_name_editable else default
            if len(tname) > 100:
                raise ExportInputError(f"The {spec.target_word} name for “{names[sid]}” is too long.")
            targets[sid] = {"mode": "name", "id": None, "name": tname}
    sync_mode = draft.get("sync_mode") or sync.MODE_MIRROR
    if sync_mode not in sync.SYNC_MODES:
        raise ExportInputError("Pick a sync mode: mirror or add only.")
    over_limit = draft.get("over_limit") or sync.OVER_LIMIT_TRUNCATE
    if over_limit not in (sync.OVER_LIMIT_TRUNCATE, sync.OVER_LIMIT_SKIP):
        raise ExportInputError("Pick what to do with values over the vendor's limits: truncate or skip.")
    return {"name": name, "connection_id": int(conn_id), "vendor": vendor, "mapping": mapping,
            "segment_ids": segment_ids, "targets": targets, "sync_mode": sync_mode, "over_limit": over_limit}


def count_contacts(db, segment_ids: list[int]) -> int:
    """Distinct members over the export's segments (what the vendor limit is about), cached per data state."""
    return export_plan.cached_contacts(db, segment_ids)


def _over_limit_counts(db, vendor: str, mapping: list[dict], segment_ids: list[int]) -> dict[str, int]:
    limits = field_limits(vendor)
    checked = [m for m in mapping if m["field"] in limits and m["field"] != sync.EMAIL_FIELD]
    if not checked or not segment_ids:
        return {}
    exprs, joins, keys = repo.mapping_columns(db, checked)
    members, params = repo.members_sql(db, segment_ids)
    counts = ", ".join(f"count(*) FILTER (WHERE length({e}) > {int(limits[k])})" for e, k in zip(exprs, keys))
    row = db.query_one(f"SELECT {counts} FROM profiles p {' '.join(joins)} "
                       f"WHERE p.customer_id IN ({members})", params)
    return {k: int(n) for k, n in zip(keys, row) if n}


def draft_checks(db, draft: dict, export_id: int | None = None) -> dict:
    """What the editor shows before saving: contacts, the vendor's limits (per export, or per account
    over every export on the connection), the admin's cap, fields over their limits, a duration."""
    vendor = draft.get("vendor")
    conn_id = draft.get("connection_id")
    if vendor is None and conn_id is not None:
        conn = _connection(db, conn_id)
        vendor = conn["vendor"] if conn else None
    segment_ids = [int(s) for s in draft.get("segment_ids") or []]
    contacts = count_contacts(db, segment_ids)
    out = {"contacts": contacts, "limit_warning": None, "hard": export_plan.limits_hard(db), "account_contacts": None,
           "cap_problem": None, "over_limit_fields": {}, "estimate_text": "—", "schedule_note": None}
    if not vendor:
        return out
    out["limit_warning"] = export_plan.limit_warning(vendor, contacts)
    cap = export_plan.account_cap(db, int(conn_id)) if conn_id is not None else None
    if conn_id is not None and (vendor in export_plan.ACCOUNT_WIDE_LIMIT or cap is not None):
        total = export_plan.account_contacts(db, int(conn_id), draft={"id": export_id, "segment_ids": segment_ids})
        out["account_contacts"] = total
        if vendor in export_plan.ACCOUNT_WIDE_LIMIT:
            out["limit_warning"] = export_plan.account_warning(vendor, total, contacts)
        out["cap_problem"] = export_plan.cap_problem(cap, total)
    out["over_limit_fields"] = _over_limit_counts(db, vendor, draft.get("mapping") or [], segment_ids)
    out["estimate_text"] = export_plan.human_duration(export_plan.estimate_seconds(vendor, contacts))
    return out


# ------------------------------------------------------------------------------ editor form <-> draft
# The one-page editor keeps flat values (one per widget); these map them to and from a draft.

SCHEDULE_CHOICES = ("system", "manual")


def new_form(db, actor: User) -> dict:
    """A new export's editor values, defaults filled in: the first usable connection, mirror, truncate,
    the vendor's suggested fields, the profile's email, following the system refresh."""
    conns = usable_connections(db, actor)
    form = {"connection_id": conns[0]["id"] if conns else None, "name": "", "segment_ids": [],
            "email_attribute": DEFAULT_EMAIL_ATTRIBUTE, "sync_mode": sync.MODE_MIRROR,
            "over_limit": sync.OVER_LIMIT_TRUNCATE, "schedule_mode": "system", "mapping": []}
    if conns:
        form["mapping"] = default_mapping(conns[0]["vendor"])
    return form


def default_mapping(vendor: str | None) -> list[dict]:
    """The vendor's standard fields mapped to their usual profile attributes (First name, Last name...)."""
    return [{"field": f.key, "attribute": f.default_attribute} for f in vendor_field_specs(vendor or "")
            if f.default_attribute]


def form_from_export(db, export_id: int) -> dict:
    export = _require_export(db, export_id)
    email = repo.email_mapping(export["mapping"])
    form = {"connection_id": export["connection_id"], "name": export["name"], "segment_ids": list(export["segment_ids"]),
            "email_attribute": email["attribute"] if email else DEFAULT_EMAIL_ATTRIBUTE,
            "mapping": [m for m in export["mapping"] if m["field"] != sync.EMAIL_FIELD],
            "sync_mode": export["sync_mode"], "over_limit": export["over_limit"], "schedule_mode": None}
    for sid, t in export["targets"].items():
        form[f"tmode_{sid}"] = t["mode"]
        form[f"tid_{sid}"] = t["id"] or ""
        form[f"tname_{sid}"] = t["name"] or ""
    return form


def draft_from_form(form: dict) -> dict:
    targets = {}
    for sid in form.get("segment_ids") or []:
        mode = form.get(f"tmode_{sid}") or "name"
        targets[sid] = {"mode": mode, "id": form.get(f"tid_{sid}") if mode == "id" else None,
                        "name": form.get(f"tname_{sid}")}
    return {"name": form.get("name") or "", "connection_id": form.get("connection_id"),
            "mapping": list(form.get("mapping") or []), "segment_ids": list(form.get("segment_ids") or []),
            "email_attribute": form.get("email_attribute") or DEFAULT_EMAIL_ATTRIBUTE, "targets": targets,
            "sync_mode": form.get("sync_mode"), "over_limit": form.get("over_limit")}


def form_checks(db, form: dict, export_id: int | None = None) -> dict:
    """draft_checks for the editor's values, plus the schedule note for a new export."""
    checks = draft_checks(db, draft_from_form(form), export_id)
    if export_id is None and form.get("schedule_mode", "system") == "system":
        checks["schedule_note"] = schedule_note(db, None)
    elif export_id is not None:
        checks["schedule_note"] = schedule_note(db, export_id)
    return checks


def save_form(db, actor: User, form: dict, export_id: int | None = None) -> int:
    """Save the editor's values (create or edit); a new export's schedule choice is applied too."""
    require(actor, Action.EDIT_EXPORTS)
    new_id = save_export(db, actor, draft_from_form(form), export_id)
    mode = form.get("schedule_mode")
    if export_id is None and mode in SCHEDULE_CHOICES and mode != "system":
        from services import schedule

        schedule.set_item_schedule(db, actor, KIND, new_id, mode)
    return new_id


# ------------------------------------------------------------------------------ save / remove

def _public(export: dict | None) -> dict | None:
    if export is None:
        return None
    keys = ("name", "connection_id", "vendor", "sync_mode", "over_limit", "mapping", "segment_ids", "active")
    out = {k: export.get(k) for k in keys}
    out["targets"] = {str(k): v for k, v in (export.get("targets") or {}).items()}
    return out


def save_export(db, actor: User, draft: dict, export_id: int | None = None) -> int:
    """Create (export_id None) or edit an export. Never runs it."""
    require(actor, Action.EDIT_EXPORTS)
    if export_id is not None:
        require_usable_export(db, actor, export_id)
    clean = clean_draft(db, actor, draft, export_id)
    checks = draft_checks(db, clean, export_id)
    if checks["cap_problem"]:
        raise ExportInputError(checks["cap_problem"])
    if checks["limit_warning"] and checks["hard"]:
        raise ExportInputError(checks["limit_warning"] + " An admin has made this limit a hard stop.")
    with db.transaction() as cur:
        if export_id is None:
            export_id = repo.insert_export(cur, {**clean, "created_by": actor.username},
                                           clean["segment_ids"], clean["targets"])
            audit.record(cur, actor, "create_export", "export", export_id, after=_public(clean))
        else:
            before = repo.get_export(cur, export_id)
            if before is None:
                raise ExportInputError("This export no longer exists.")
            repo.update_export(cur, export_id, {**clean, "updated_by": actor.username},
                               clean["segment_ids"], clean["targets"])
            audit.record(cur, actor, "edit_export", "export", export_id, before=_public(before), after=_public(clean))
    return export_id


def _require_export(db, export_id: int) -> dict:
    export = repo.get_export(db, int(export_id))
    if export is None:
        raise ExportInputError("This export no longer exists.")
    return export


def delete_export(db, actor: User, export_id: int) -> None:
    """Remove an export and its delivery state (contacts stay at the vendor). Refused while it runs."""
    require(actor, Action.EDIT_EXPORTS)
    export = _require_export(db, export_id)
    _require_usable(db, actor, export)
    active = runner.active_run(db, KIND, int(export_id))
    if active and active[1] == "running":
        raise ExportInputError(f"“{export['name']}” is running (run #{active[0]}). Cancel it first.")
    with db.transaction() as cur:
        runs_repo.cancel_queued_for(cur, KIND, int(export_id), "The export was removed.")
        repo.delete_export(cur, int(export_id))
        audit.record(cur, actor, "delete_export", "export", export_id, before=_public(export))
    # its journal (accepted submissions not yet on record) goes with its delivery state: nothing will
    # reconcile it now, and it may hold contacts' emails
    export_journal.journal_path(db, int(export_id)).unlink(missing_ok=True)
    from services import schedule

    schedule.delete_item_schedule(db, actor, KIND, int(export_id))


def duplicate_export(db, actor: User, export_id: int) -> int:
    require(actor, Action.EDIT_EXPORTS)
    export = _require_export(db, export_id)
    base = f"Copy of {export['name']}"[:MAX_NAME]
    name, n = base, 2
    while repo.name_taken(db, name):
        name, n = f"{base} ({n})", n + 1
    draft = {**export, "name": name,
             "targets": {sid: {**t, "id": t["id"] if t["mode"] == "id" else None}
                         for sid, t in export["targets"].items()}}
    new_id = save_export(db, actor, draft)
    with db.transaction() as cur:
        audit.record(cur, actor, "duplicate_export", "export", new_id, after={"from": export_id, "name": name})
    return new_id


def set_active(db, actor: User, export_id: int, active: bool) -> None:
    require(actor, Action.EDIT_EXPORTS)
    export = _require_export(db, export_id)
    _require_usable(db, actor, export)
    with db.transaction() as cur:
        repo.set_active(cur, int(export_id), active)
        audit.record(cur, actor, "activate_export" if active else "deactivate_export", "export", export_id,
                     before={"active": export["active"]}, after={"active": bool(active)})


# ------------------------------------------------------------------------------ runs

def run_gate(db, actor: Actor, export_id: int, *, dry_run: bool = False) -> RunGate:
    """May this export run now (blocked with a reason), what it needs confirmed (removals past the guard),
    what to know first (limits, the account total) and how long it should take. The page shows it,
    run_export and dry_run refuse on it, the runner enforces the same gate (jobs/export_plan.py)."""
    require(actor, Action.RUN)
    export = _require_export(db, export_id)
    _require_usable(db, actor, export)
    return export_plan.gate(db, export, dry_run=dry_run)


def _submit(db, actor: Actor, export: dict, trigger: str, params: dict) -> int:
    _require_usable(db, actor, export)
    conn = _connection(db, export["connection_id"])
    attributed = (conn or {}).get("export_user") or actor.username
    params = {**params, "requested_by": actor.username}
    return runner.submit(db, actor, KIND, export["id"], export["name"], trigger, params, on_behalf_of=attributed)


def run_export(db, actor: Actor, export_id: int, *, confirm_removals: bool = False, trigger: str = "manual") -> int:
    require(actor, Action.RUN)
    export = _require_export(db, export_id)
    _require_usable(db, actor, export)
    # removals confirmed: nothing that blocks depends on the diff (the runner checks its own plan again);
    # else the removal guard needs the plan, which the page's gate has just cached (export_plan.cached_plans)
    refusal = export_plan.gate(db, export, dry_run=False, need_plan=not confirm_removals
                               ).refusal(confirm_removals=confirm_removals)
    if refusal:
        raise ExportInputError(refusal)
    run_id = _submit(db, actor, export, trigger, {"confirm_removals": bool(confirm_removals)})
    with db.transaction() as cur:
        audit.record(cur, actor, "run_export", "export", export_id, after={"run_id": run_id, "trigger": trigger})
        if confirm_removals:
            audit.record(cur, actor, "confirm_export_removals", "export", export_id, after={"run_id": run_id})
    return run_id


def dry_run(db, actor: User, export_id: int) -> int:
    require(actor, Action.RUN)
    export = _require_export(db, export_id)
    if not export["segment_ids"]:
        raise ExportInputError("This export has no segments. Edit it and pick at least one.")
    run_id = _submit(db, actor, export, "dry_run", {"dry_run": True})
    with db.transaction() as cur:
        audit.record(cur, actor, "dry_run_export", "export", export_id, after={"run_id": run_id})
    return run_id


def retry_failed(db, actor: User, export_id: int) -> int:
    require(actor, Action.RUN)
    export = _require_export(db, export_id)
    run_id = _submit(db, actor, export, "retry", {"retry_failed": True, "confirm_removals": True})
    with db.transaction() as cur:
        audit.record(cur, actor, "retry_failed_export", "export", export_id, after={"run_id": run_id})
    return run_id


def cancel_run(db, actor: Actor, run_id: int) -> str:
    require(actor, Action.RUN)
    _require_usable_run(db, actor, run_id)
    return runner.request_cancel(db, actor, run_id)


def resume_run(db, actor: Actor, run_id: int) -> int:
    require(actor, Action.RUN)
    _require_usable_run(db, actor, run_id)
    return runner.resume(db, actor, run_id)


# ------------------------------------------------------------------------------ reading

def get_export(db, export_id: int) -> dict | None:
    return repo.get_export(db, export_id)


def run_status(db, run_id: int) -> dict | None:
    """A run of an export (status and progress) for the live panel; None when it is not an export run."""
    run = runner.get_run(db, int(run_id))
    return run if run is not None and run["kind"] == KIND else None


def runs_of(db, export_id: int, limit: int = 20) -> list[dict]:
    return runner.list_runs(db, kind=KIND, target_id=int(export_id), limit=limit)


def last_run(db, export_id: int, *, dry_run: bool | None = False) -> dict | None:
    for run in runs_of(db, export_id, limit=50):
        is_dry = run["trigger"] == "dry_run"
        if dry_run is None or is_dry == dry_run:
            return run
    return None


def export_from_param(db, raw) -> dict | None:
    """The export a URL's `?export=` names, or None when it is not a whole number or no such export
    exists (every role may read every export). Nothing else is taken from the URL."""
    text = str(raw or "").strip()
    if not text.isdigit() or len(text) > 18:
        return None
    return repo.get_export(db, int(text))


def list_schedule_note(db) -> str | None:
    """For the Exports list: a sentence when some exports follow the system refresh while it is off."""
    from services import schedule

    if schedule.get_system_schedule(db).mode != "off":
        return None
    waiting = [e["name"] for e in repo.list_exports(db) if e["active"]
               and schedule.get_item_schedule(db, KIND, e["id"])["mode"] == "system"]
    if not waiting:
        return None
    return (f"{len(waiting):,} export{'s' if len(waiting) != 1 else ''} run with every scheduled refresh, but the "
            "system refresh is off: they will not run on their own until an admin turns the schedule on.")


def _schedule_text(db, export_id: int) -> str:
    from services import schedule

    return schedule.describe_item_schedule(db, KIND, export_id)


def overview(db) -> list[dict]:
    from storage import connections

    conns = {c["id"]: c for c in connections.list_connections(db)}
    seg_names = segment_choices(db)
    out = []
    for e in repo.list_exports(db):
        conn = conns.get(e["connection_id"]) or {}
        run = last_run(db, e["id"])
        counts = (run or {}).get("counts") or {}
        out.append({
            "id": e["id"], "name": e["name"], "connection": conn.get("name", "(removed)"), "vendor": e["vendor"],
            "type": _vendor_label(e["vendor"]),
            "segments": ", ".join(seg_names.get(s, "(removed)") for s in e["segment_ids"]),
            "sync_mode": e["sync_mode"], "active": e["active"],
            "last_status": (run or {}).get("status") or "never run",
            "last_counts": (f"{counts.get('accepted', 0):,} accepted · {counts.get('rejected', 0):,} rejected · "
                            f"{counts.get('skipped', 0):,} skipped") if run and counts else "",
            "last_run_counts": counts,
            "last_refreshed": (run or {}).get("finished_at"),
            "schedule": _schedule_text(db, e["id"]),
            "last_run_id": (run or {}).get("id"),
        })
    return out


def _vendor_label(vendor: str) -> str:
    from connectors.errors import vendor_label

    return vendor_label(vendor)


def run_detail(db, run_id: int) -> dict | None:
    run = runner.get_run(db, run_id)
    if run is None or run["kind"] != KIND:
        return None
    return {"run": run, "by_outcome": repo.run_outcome_counts(db, run_id),
            "targets": (run.get("counts") or {}).get("targets", {})}


def run_contacts_page(db, run_id: int, *, outcome: str | None = None, action: str | None = None,
                      limit: int = 100, offset: int = 0) -> tuple[list[dict], int]:
    return repo.run_contacts_page(db, run_id, outcome=outcome, action=action, limit=limit, offset=offset)


def run_contacts_csv(db, run_id: int, *, outcome: str | None = None, action: str | None = None) -> str:
    """The run's contacts as CSV text, through the app's CSV writer (cells and headers neutralised)."""
    rows = ([tkey.split(":", 1)[-1], email, cid, act, out, reason or ""]
            for tkey, email, cid, act, out, reason in repo.iter_run_contacts(db, run_id, outcome=outcome, action=action))
    return csv_text(["list", "email", "customer_id", "action", "outcome", "reason"], rows)


# ------------------------------------------------------------------------------ demo

def demo_setup(db, actor: User) -> list[int]:
    """One export per Sandbox export connection over one demo segment; not run. Idempotent by name."""
    require(actor, Action.EDIT_EXPORTS)
    from storage import connections, segments

    segs = segments.list_segments(db)
    if not segs:
        return []
    segment = segs[0]
    ids = []
    for conn in connections.list_connections(db):
        if conn["region"] != "sandbox" or registry.export_spec(conn["vendor"]) is None or not conn["active"]:
            continue
        name = f"{segment['name']} to {conn['name']}"
        existing = [e for e in repo.list_exports(db) if e["name"].lower() == name.lower()]
        if existing:
            ids.append(existing[0]["id"])
            continue
        vendor = conn["vendor"]
        mapping = [{"field": f.key, "attribute": f.default_attribute} for f in vendor_field_specs(vendor)
                   if f.default_attribute]
        draft = {"name": name, "connection_id": conn["id"], "mapping": mapping, "segment_ids": [segment["id"]],
                 "targets": {segment["id"]: {"mode": "name"}}, "sync_mode": sync.MODE_MIRROR,
                 "over_limit": sync.OVER_LIMIT_TRUNCATE}
        try:
            ids.append(save_export(db, actor, draft))
        except ExportInputError:
            continue
    return ids


__all__ = [
    "ExportInputError", "attribute_choices", "cancel_run", "delete_export", "demo_setup", "draft_checks",
    "dry_run", "duplicate_export", "get_export", "overview", "run_gate", "resume_run", "retry_failed",
    "run_contacts_csv", "run_contacts_page", "run_detail", "run_export", "runs_of", "save_export", "set_active",
    "usable_connections", "vendor_field_specs", "vendor_targets",
]
