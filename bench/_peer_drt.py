"""bench/peer.py helper: a drt-core 1.2.1 project per (vendor, repetition), configured as its docs intend.

write_project(project_dir, vendor, db_path, url, list_id) -> (command, env)
    drt_project.yml + syncs/peer_<vendor>.yml in project_dir, profiles.yml in project_dir/home/.drt (drt
    reads ~/.drt/profiles.yml, so the drt process runs with HOME=project_dir/home); run state (the
    incremental cursor) lives in project_dir/.drt/state.json, so a re-run in the same project sends only
    the rows whose updated_at is past the cursor of the first run.
Configuration (DRT_CONFIG below, printed by the bench):
    source   duckdb profile on drt.duckdb (the same profiles as our app database, see _peer_world.py),
             model = SELECT email, first_name, last_name, city, updated_at FROM contacts
    sync     mode: incremental, cursor_field: updated_at, batch_size (rows drt extracts and hands to the
             destination at once) = one vendor request's worth x 10 for Iterable, 30,000 for SendGrid,
             rate_limit 10,000 requests/s (generous: never the bottleneck), on_error: fail
    dest     rest_api, body_mode: batch, max_records_per_request = the vendor's batch (Iterable 1,000 per
             POST /api/lists/subscribe, SendGrid 30,000 per PUT /v3/marketing/contacts, Omnisend 100 items
             per POST /api/batches, each contact tagged with the bench's tag), a Jinja
             batch_template that builds the vendor's JSON body with tojson (escaping as the vendor needs).
drt cannot create lists: the harness creates the list at the emulator first and passes its id (Omnisend:
the tag, which needs no creating). drt cannot poll an Omnisend batch's items either: it counts the 201.
Not a script: running this file only prints a note (`make bench` runs every bench/*.py).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the bench-only venv (make bench-peer); PEER_BENCH_VENV points elsewhere, e.g. when benching a snapshot
BENCH_VENV = Path(os.environ.get("PEER_BENCH_VENV") or ROOT / ".venv-bench")
DRT_BIN = BENCH_VENV / "bin" / "drt"

PER_REQUEST = {"iterable": 1000, "sendgrid": 30000, "omnisend": 100}
BATCH_SIZE = {"iterable": 10000, "sendgrid": 30000, "omnisend": 10000}
RATE_LIMIT_PER_S = 10000
OMNISEND_VERSION = "2026-03-15"   # the API version our client speaks (connectors/omnisend.py), as a header

_ITERABLE_TEMPLATE = (
    '{"listId": %(list_id)s, "updateExistingUsersOnly": false, "subscribers": ['
    '{%% for row in rows %%}{"email": {{ row.email | tojson }}, "dataFields": {'
    '"firstName": {{ row.first_name | tojson }}, "lastName": {{ row.last_name | tojson }}, '
    '"city": {{ row.city | tojson }}}}{%% if not loop.last %%},{%% endif %%}{%% endfor %%}]}'
)
_SENDGRID_TEMPLATE = (
    '{"list_ids": [%(list_id)s], "contacts": ['
    '{%% for row in rows %%}{"email": {{ row.email | tojson }}, "first_name": {{ row.first_name | tojson }}, '
    '"last_name": {{ row.last_name | tojson }}, "city": {{ row.city | tojson }}}'
    '{%% if not loop.last %%},{%% endif %%}{%% endfor %%}]}'
)

# Omnisend: a contacts batch (POST /api/batches, at most 100 items) that tags every contact, as our export
# does (its list is a tag, "segment: <name>"); email status nonSubscribed as our client sends by default.
# drt cannot poll the batch's items: it counts the 201 as success (the emulator processes the batch later).
_OMNISEND_TEMPLATE = (
    '{"method": "POST", "endpoint": "contacts", "origin": "api", "items": ['
    '{%% for row in rows %%}{"identifiers": [{"type": "email", "id": {{ row.email | tojson }}, '
    '"channels": {"email": {"status": "nonSubscribed"}}, "sendWelcomeMessage": false}], '
    '"firstName": {{ row.first_name | tojson }}, "lastName": {{ row.last_name | tojson }}, '
    '"city": {{ row.city | tojson }}, "tags": [%(tag)s]}{%% if not loop.last %%},{%% endif %%}{%% endfor %%}]}'
)


def _destination(vendor: str, url: str, list_id) -> dict:
    if vendor == "iterable":
        return {"type": "rest_api", "url": f"{url}/api/lists/subscribe", "method": "POST",
                "headers": {"Content-Type": "application/json", "Api-Key": "bench-key"},
                "body_mode": "batch", "max_records_per_request": PER_REQUEST[vendor],
                "batch_template": _ITERABLE_TEMPLATE % {"list_id": int(list_id)}}
    if vendor == "sendgrid":
        return {"type": "rest_api", "url": f"{url}/v3/marketing/contacts", "method": "PUT",
                "headers": {"Content-Type": "application/json", "Authorization": "Bearer bench-key"},
                "body_mode": "batch", "max_records_per_request": PER_REQUEST[vendor],
                "batch_template": _SENDGRID_TEMPLATE % {"list_id": json.dumps(str(list_id))}}
    if vendor == "omnisend":
        return {"type": "rest_api", "url": f"{url}/api/batches", "method": "POST",
                "headers": {"Content-Type": "application/json", "Authorization": "Omnisend-API-Key bench-key",
                            "Omnisend-Version": OMNISEND_VERSION},
                "body_mode": "batch", "max_records_per_request": PER_REQUEST[vendor],
                "batch_template": _OMNISEND_TEMPLATE % {"tag": json.dumps(str(list_id))}}
    raise ValueError(f"no drt configuration for {vendor!r}")


def sync_config(vendor: str, url: str, list_id) -> dict:
    return {
        "name": f"peer_{vendor}",
        "description": f"bench/peer.py: DuckDB contacts -> {vendor} emulator",
        "model": "SELECT email, first_name, last_name, city, updated_at FROM contacts",
        "destination": _destination(vendor, url, list_id),
        "sync": {"mode": "incremental", "cursor_field": "updated_at", "batch_size": BATCH_SIZE[vendor],
                 "rate_limit": {"requests_per_second": RATE_LIMIT_PER_S}, "on_error": "fail"},
    }


def describe(vendor: str) -> dict:
    """How drt is configured for vendor (the bench prints it with its figures)."""
    cfg = sync_config(vendor, "http://EMULATOR", 0)
    dest = {k: v for k, v in cfg["destination"].items() if k not in ("batch_template", "headers")}
    return {"tool": "drt-core 1.2.1", "source": "duckdb profile (drt.duckdb, table contacts)",
            "model": cfg["model"], "sync": cfg["sync"], "destination": dest}


def write_project(project_dir: Path, vendor: str, db_path: Path, url: str, list_id) -> tuple[list[str], dict]:
    home = project_dir / "home"
    (home / ".drt").mkdir(parents=True, exist_ok=True)
    (project_dir / "syncs").mkdir(parents=True, exist_ok=True)
    # JSON is valid YAML: no YAML library needed in the harness's venv
    (project_dir / "drt_project.yml").write_text(json.dumps({"name": "peer_bench", "version": "0.1",
                                                             "profile": "bench"}, indent=1))
    (home / ".drt" / "profiles.yml").write_text(json.dumps({"bench": {"type": "duckdb",
                                                                      "database": str(db_path)}}, indent=1))
    (project_dir / "syncs" / f"peer_{vendor}.yml").write_text(json.dumps(sync_config(vendor, url, list_id),
                                                                         indent=1))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env.update({"HOME": str(home), "DRT_TELEMETRY": "0", "DO_NOT_TRACK": "1", "NO_COLOR": "1"})
    cmd = [str(DRT_BIN), "run", "--select", f"peer_{vendor}", "--output", "json"]
    return cmd, env



if __name__ == "__main__":
    print("bench/_peer_drt.py is a helper of bench/peer.py; run that.")
