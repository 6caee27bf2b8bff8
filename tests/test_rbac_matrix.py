"""One RBAC matrix over EVERY public function of ``services/`` (issue 12).

The functions are found by introspection, so a new one cannot be forgotten: each must be classified
below, or ``test_every_public_service_function_is_classified`` fails.

* ``WITH_ACTOR``: functions taking an ``actor``, with the least role the README's role table gives
  them ("admin", "contributor" or "viewer"). Viewers and contributors below that role are refused with
  PermissionDenied BEFORE anything changes: every argument but ``db`` and ``actor`` is a poison object
  that fails the test if the function touches it before its role check, and the database and the
  data folder must be byte-for-byte the same afterwards.
* ``READ_ONLY``: reviewed functions without an actor that only read (or only compute).
* ``NO_ACTOR_BY_DESIGN``: reviewed functions that change state without an actor, each with the reason.

README "Roles": admin = users, connections, system schedule, suppression list, audit log, files on the
server, demo data; contributor = import (uploads), segments, enrichments, exports on shared
connections, run on demand; viewer = read and download, change nothing.
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
import pkgutil

import pytest

import services
from core.permissions import SYSTEM, PermissionDenied, SystemActor

ROLE_RANK = {"viewer": 0, "contributor": 1, "admin": 2}

WITH_ACTOR: dict[str, str] = {
    # alerts (Admin > Schedule)
    "alerts.save_config": "admin",
    "alerts.send_test_email": "admin",
    "alerts.dismiss": "viewer",                      # the signed-in user's own alerts, seen
    # run history (Data > Run history, Admin > Schedule)
    "runs.cancel": "contributor",
    "runs.resume": "contributor",
    "users.list_users": "admin",
    # audit log (Admin > Audit log)
    "audit.filter_choices": "admin",
    "audit.entries": "admin",
    # connections (Admin > Connections)
    "connections.verify": "admin",
    "connections.create_connection": "admin",
    "connections.rename": "admin",
    "connections.set_sharing": "admin",
    "connections.set_export_user": "admin",
    "connections.set_rate_limit_budget": "admin",
    "connections.set_export_contact_cap": "admin",
    "connections.rotate_key": "admin",
    "connections.reverify": "admin",
    "connections.give_consent": "admin",
    "connections.revoke_consent": "admin",
    "connections.set_active": "admin",
    "connections.remove_connection": "admin",
    "connections.overview": "admin",
    "connections.demo_setup": "admin",
    "connections.usable_connections": "viewer",      # returns [] for a viewer; a read
    "connections.sandbox_snapshot": "contributor",
    "connections.reset_sandbox": "contributor",
    "sandbox.received": "contributor",
    # demo data replaces every profile
    "demo.generate_profiles": "admin",
    "demo.load_demo": "admin",
    # enrichment
    "enrichment.connection_choices": "viewer",       # a read
    "enrichment.save_enrichment": "contributor",
    "enrichment.set_active": "contributor",
    "enrichment.delete_enrichment": "contributor",
    "enrichment.run_enrichment": "contributor",
    "enrichment.cancel_run": "contributor",
    "enrichment.decide": "contributor",
    "enrichment.demo_setup": "contributor",
    "enrichment.check_connection": "contributor",     # "Connect" in the editor: one verify call
    "enrichment.new_form": "viewer",                  # editor defaults from the connections the actor may use
    "enrichment.save_form": "contributor",
    # exports
    "exports.usable_connections": "viewer",          # a read
    "exports.read_only_reason": "viewer",            # a read
    "exports.require_usable_export": "viewer",       # a check used by other services, changes nothing
    "exports.clean_draft": "viewer",                 # validation only, changes nothing
    "exports.vendor_targets": "contributor",
    "exports.save_export": "contributor",
    "exports.delete_export": "contributor",
    "exports.duplicate_export": "contributor",
    "exports.set_active": "contributor",
    "exports.run_export": "contributor",
    "exports.dry_run": "contributor",
    "exports.retry_failed": "contributor",
    "exports.cancel_run": "contributor",
    "exports.resume_run": "contributor",
    "exports.demo_setup": "contributor",
    "exports.run_gate": "contributor",               # the export gate (issue 15): RUN, then the connection check
    "exports.new_form": "viewer",                    # editor defaults from the connections the actor may use
    "exports.save_form": "contributor",
    # home
    "home.next_steps": "viewer",                     # (summary, user): what to show, a read
    # profiles
    "profiles.save_upload": "contributor",
    "profiles.discard_upload": "contributor",
    "profiles.resolve_server_path": "admin",
    "profiles.inspect_file": "contributor",
    "profiles.import_profiles": "contributor",
    "profiles.filtered_count": "viewer",
    "profiles.browse": "viewer",
    "profiles.browse_after": "viewer",
    "profiles.browse_before": "viewer",
    "profiles.profile_detail": "viewer",
    "profiles.profile_from_param": "viewer",          # ?profile=<customer ID>: a read
    "profiles.save_filters_as_segment": "contributor",
    # schedule
    "schedule.save_system_schedule": "admin",
    "schedule.run_all": "contributor",
    "schedule.set_item_schedule": "contributor",
    "schedule.delete_item_schedule": "contributor",
    "schedule.advance_item_schedule": "admin",       # the scheduler's bookkeeping: SYSTEM (and admins)
    "schedule.set_system_checked_until": "admin",
    "schedule.record_system_fired": "admin",
    # segments
    "segments.evaluate": "contributor",
    "segments.evaluate_all": "contributor",
    "segments.save_segment": "contributor",
    "segments.update_segment": "contributor",
    "segments.duplicate_segment": "contributor",
    "segments.delete_segment": "contributor",
    "segments.refresh_static_members": "contributor",
    "segments.members_csv": "viewer",                # download
    "segments.create_from_profile_filters": "contributor",
    "segments.demo_setup": "contributor",
    # server files
    "server_files.save_upload": "contributor",
    "server_files.own_upload": "viewer",             # a check: is this path the actor's own upload
    "server_files.discard_upload": "contributor",
    "server_files.resolve_server_path": "admin",
    "server_files.readable_source": "contributor",
    # suppression list (admins)
    "suppression.add_emails": "admin",
    "suppression.upload_csv": "admin",
    "suppression.remove_emails": "admin",
    "suppression.clear": "admin",
    # users (Admin > Users)
    "users.add_user": "admin",
    "users.set_role": "admin",
    "users.reset_password": "admin",
    "users.set_active": "admin",
    "users.unlock": "admin",
    "users.list_sessions": "admin",
    "users.end_session": "admin",
    "users.end_all_sessions": "admin",
}

# Arguments a role check legitimately needs (which kind of item is scheduled decides the right).
NEEDED_ARGS: dict[str, dict] = {
    "schedule.set_item_schedule": {"kind": "export"},
    "schedule.delete_item_schedule": {"kind": "export"},
}

READ_ONLY: set[str] = {
    "alerts.events_for_run", "alerts.get_config", "alerts.list_events",
    "alerts.pending_alerts", "alerts.public_config", "alerts.rejected_share",
    "audit.changes",
    "runs.any_active", "runs.child_runs", "runs.count_runs", "runs.get_run", "runs.list_runs",
    "connections.clean_base_url", "connections.clean_key", "connections.clean_name", "connections.clean_region",
    "connections.connections_needing_new_key", "connections.dependants", "connections.describe_error",
    "connections.key_label", "connections.key_status",
    "connections.master_key_problem", "connections.export_contact_cap",
    "connections.vendor_links", "connections.describe_users", "connections.consent_history", "connections.verify_result", "connections.region_label",
    "connections.sandbox_vendors", "connections.status_of", "connections.vendor_catalog", "connections.who_can_use",
    "enrichment.confidence_distribution", "enrichment.connection_tps", "enrichment.enriched_data",
    "enrichment.get_enrichment", "enrichment.industries", "enrichment.latest_run", "enrichment.list_enrichments",
    "enrichment.name_columns", "enrichment.form_from_enrichment", "enrichment.config_from_form",
    "enrichment.preview_form", "enrichment.enrichment_from_param", "enrichment.preview", "enrichment.profile_comparison", "enrichment.review_count",
    "enrichment.review_queue", "enrichment.run_history", "enrichment.segment_choices",
    "exports.allows_data_fields", "exports.attribute_choices", "exports.count_contacts", "exports.draft_checks",
    "exports.field_limits", "exports.get_export", "exports.last_run", "exports.overview",
    "exports.email_field_choices", "exports.email_field_stats", "exports.schedule_note", "exports.default_mapping",
    "exports.form_from_export", "exports.export_from_param", "exports.list_schedule_note", "exports.run_status", "exports.segment_choices", "exports.vendor_label", "exports.suggest_name", "exports.draft_from_form", "exports.form_checks",
    "exports.run_contacts_csv", "exports.run_contacts_page", "exports.run_detail", "exports.runs_of",
    "exports.vendor_field_specs", "exports.vendor_spec",
    "home.summary",
    "sandbox.field_key", "sandbox.field_label", "sandbox.latest_run_vendor", "sandbox.vendor_choices",
    "profiles.country_options", "profiles.column_labels", "profiles.import_folder_problem", "profiles.importing_sample_rows", "profiles.normalize_filters",
    "profiles.recent_imports", "profiles.segment_saving_available",
    "schedule.active_items", "schedule.active_refresh", "schedule.describe_item_schedule",
    "schedule.due_item_schedules", "schedule.get_item_schedule", "schedule.get_system_schedule",
    "schedule.get_system_state", "schedule.item_name", "schedule.item_table_exists", "schedule.list_item_schedules",
    "schedule.next_system_runs", "schedule.now_utc", "schedule.preview_cron",
    "segments.demo_rules", "segments.draft_counts", "segments.list_with_counts", "segments.rule_from_profile_filters",
    "segments.write_members_csv",
    "segments.attributes", "segments.attribute_labels", "segments.describe_rule", "segments.describe_condition",
    "segments.segment_from_param", "segments.segment_detail", "segments.exports_using", "segments.preview_members",
    "segments.preview_draft", "segments.download_columns", "segments.value_suggestions",
    "server_files.hide_paths", "server_files.import_dir_problem", "server_files.is_protected",
    "server_files.paths_hidden",
    "suppression.count", "suppression.list_page", "suppression.parse_csv",
}

NO_ACTOR_BY_DESIGN: dict[str, str] = {
    "alerts.on_run_finished": "the runner's hook after every run: records alert events derived from that run",
    "alerts.send_email": "sends an alert with a config read by its callers (on_run_finished, send_test_email)",
    "demo.cli_main": "the `manage.py demo` entry point: acts as an existing admin (load_demo checks it)",
    "profiles.forget_counts": "drops an in-memory cache of counts",
    "profiles.upload_dir": "the private upload folder (created 0700 if missing)",
    "segments.clear_count_cache": "drops an in-memory cache of counts",
    "server_files.upload_dir": "the private upload folder (created 0700 if missing)",
    "users.create_first_admin": "first run only: refused once any user exists",
    "users.create_first_admin_and_sign_in": "first run only: refused once any user exists",
    "users.bootstrap_admin_from_env": "first run only, from the server's environment",
    "users.sign_in": "signing in is what establishes an actor",
    "wiring.install": "start-up: registers the runner's hooks (alerts, export target check), changes no data",
    "users.sign_out": "ends the caller's own session (by its token)",
}


def _public_service_functions() -> dict[str, object]:
    found = {}
    for info in pkgutil.iter_modules(services.__path__):
        module = importlib.import_module(f"services.{info.name}")
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if fn.__module__ == module.__name__ and not name.startswith("_"):
                found[f"{info.name}.{name}"] = fn
    return found


FUNCTIONS = _public_service_functions()


def _takes_actor(fn) -> bool:
    params = inspect.signature(fn).parameters
    return "actor" in params or "user" in params


def test_every_public_service_function_is_classified():
    lists = [set(WITH_ACTOR), READ_ONLY, set(NO_ACTOR_BY_DESIGN)]
    unclassified = sorted(set(FUNCTIONS) - set().union(*lists))
    assert not unclassified, (
        "Classify these new public service functions in tests/test_rbac_matrix.py: a function that changes "
        f"state takes an actor and checks it (WITH_ACTOR); otherwise READ_ONLY or NO_ACTOR_BY_DESIGN: {unclassified}")
    for a, b in ((0, 1), (0, 2), (1, 2)):
        assert not lists[a] & lists[b], lists[a] & lists[b]
    gone = sorted(set().union(*lists) - set(FUNCTIONS))
    assert not gone, f"listed but no longer in services/: {gone}"


def test_functions_with_an_actor_are_in_the_matrix_and_the_others_have_none():
    for name, fn in FUNCTIONS.items():
        if name in WITH_ACTOR:
            assert _takes_actor(fn), f"{name} is in the matrix but takes no actor"
        else:
            assert not _takes_actor(fn), f"{name} takes an actor: give it its role in WITH_ACTOR"


class Poison:
    """An argument the function must not touch before its role check."""

    def __init__(self, name):
        object.__setattr__(self, "_name", name)

    def _fail(self, *args, **kwargs):
        raise AssertionError(f"argument {object.__getattribute__(self, '_name')!r} was used before the role check")

    def __getattr__(self, item):
        self._fail()

    __setattr__ = __getitem__ = __iter__ = __len__ = __bool__ = __int__ = __float__ = __index__ = _fail
    __str__ = __fspath__ = __eq__ = __hash__ = __lt__ = __contains__ = __call__ = _fail

    def __repr__(self):
        return f"<poison {object.__getattribute__(self, '_name')}>"


def _call(name: str, fn, db, actor):
    args, kwargs = [], {}
    needed = NEEDED_ARGS.get(name, {})
    for param in inspect.signature(fn).parameters.values():
        if param.name in ("db", "db_or_none"):
            value = db
        elif param.name in ("actor", "user"):
            value = actor
        elif param.name in needed:
            value = needed[param.name]
        elif param.default is not inspect.Parameter.empty:
            continue
        elif param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        else:
            value = Poison(param.name)
        if param.kind == param.KEYWORD_ONLY:
            kwargs[param.name] = value
        else:
            args.append(value)
    return fn(*args, **kwargs)


def _fingerprint(db, data_dir) -> str:
    digest = hashlib.sha256()
    tables = [r[0] for r in db.query("SELECT table_name FROM information_schema.tables "
                                     "WHERE table_schema = 'main' ORDER BY table_name")]
    for table in tables:
        digest.update(table.encode())
        digest.update(repr(db.query(f'SELECT * FROM "{table}" ORDER BY ALL')).encode())
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file() and not p.name.startswith("insight_relay")):
        digest.update(f"{path.relative_to(data_dir)}:{path.stat().st_size}".encode())
    return digest.hexdigest()


REFUSALS = [(name, role) for name, least in sorted(WITH_ACTOR.items())
            for role in ("viewer", "contributor") if ROLE_RANK[role] < ROLE_RANK[least]]


@pytest.mark.parametrize("name,role", REFUSALS, ids=[f"{n}-{r}" for n, r in REFUSALS])
def test_role_below_the_table_is_refused_before_any_change(name, role, db, data_dir, request):
    actor = request.getfixturevalue(role)
    before = _fingerprint(db, data_dir)
    with pytest.raises(PermissionDenied):
        _call(name, FUNCTIONS[name], db, actor)
    assert _fingerprint(db, data_dir) == before, f"{name} changed state before refusing a {role}"


# What the scheduler, workers and CLI may do (core.permissions.SYSTEM_ACTIONS): run and keep the
# schedule's bookkeeping; never users, connections, keys, the suppression list, demo data or files.
SYSTEM_REFUSED = sorted(n for n, least in WITH_ACTOR.items() if least == "admin"
                        and n not in ("schedule.advance_item_schedule", "schedule.set_system_checked_until",
                                      "schedule.record_system_fired"))


@pytest.mark.parametrize("name", SYSTEM_REFUSED)
def test_the_system_actor_cannot_do_an_admins_work(name, db, data_dir):
    before = _fingerprint(db, data_dir)
    with pytest.raises(PermissionDenied):
        _call(name, FUNCTIONS[name], db, SYSTEM)
    assert _fingerprint(db, data_dir) == before


@pytest.mark.parametrize("name", ["segments.evaluate", "enrichment.run_enrichment", "exports.run_export",
                                  "segments.evaluate_all", "exports.cancel_run"])
def test_a_bare_string_is_no_actor(name, db, data_dir):
    """Before issue 12, evaluate/run_enrichment/runner.submit skipped the check when handed a string."""
    for fake in ("system", "alice", "cli"):
        with pytest.raises(PermissionDenied):
            _call(name, FUNCTIONS[name], db, fake)


def test_runner_entry_points_refuse_strings_and_viewers(db, viewer):
    from jobs import runner

    for actor in ("system", "admin", viewer, None):
        with pytest.raises(PermissionDenied):
            runner.submit(db, actor, "export", 1, "x")
        with pytest.raises(PermissionDenied):
            runner.request_cancel(db, actor, 1)
        with pytest.raises(PermissionDenied):
            runner.resume(db, actor, 1)
    assert db.query_one("SELECT count(*) FROM runs")[0] == 0
    run_id = runner.submit(db, SYSTEM, "export", 1, "x")
    assert runner.get_run(db, run_id)["requested_by"] == "system"
    assert isinstance(SYSTEM, SystemActor)
