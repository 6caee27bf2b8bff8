"""Enrichment use cases: save (wizard), preview, run / cancel, activate, delete, browse results,
review queue. Every state-changing function checks the actor's role and writes the audit log.

API
---
EnrichmentInputError                          bad input (message shown as is)
connection_choices(db, actor) -> list[{id, name, vendor, region}]     Leadspace connections actor may use
segment_choices(db) -> list[{id, name}]
name_columns(db) -> list[(column, label)]     profile text attributes for the name/website mapping
connection_tps(db, connection_id) -> float    requests per second of the connection (30 for Leadspace)
preview(db, config, enrichment_id=None) -> dict   profiles, skipped_recent, invalid_input, duplicates,
                                              companies (to send), credits, bulk_calls, seconds, duration
save_enrichment(db, actor, name, config, enrichment_id=None) -> id      (saving never runs it)
set_active(db, actor, id, active); delete_enrichment(db, actor, id)
run_enrichment(db, actor, id, trigger="manual") -> run_id    (continues an unfinished pass)
cancel_run(db, actor, run_id) -> str
list_enrichments(db) -> list[dict]            status, last refresh, enriched, match rate, coverage
get_enrichment(db, id) -> dict | None; latest_run(db, id) -> dict | None; run_history(db, id)
confidence_distribution(db, id); enriched_data(db, id, search, industry, min_confidence, page, page_size)
profile_comparison(db, id, customer_id) -> list[{field, original, enriched}] + confidence
review_queue(db, id, limit, offset) -> list[dict]; decide(db, actor, id, customer_ids, accept) -> n
demo_setup(db, actor) -> id | None
"""
from __future__ import annotations

import json
from typing import Any

from core.errors import InputError
from core import enrichment as core
from core.enrichment import EnrichmentConfig
from core.permissions import Action, Actor, User, require
from jobs import runner
from storage import audit
from storage import enrichment as repo

ENTITY = "enrichment"
MAX_NAME_LEN = 80
DEMO_NAME = "Company firmographics"


class EnrichmentInputError(InputError, ValueError):
    """Invalid input for an enrichment (message shown as is)."""


# ---------------------------------------------------------------- choices for the wizard

def connection_choices(db, actor: User) -> list[dict]:
    from services import connections as connection_service

    return [c for c in connection_service.usable_connections(db, actor, "enrichment") if c["vendor"] == "leadspace"]


def segment_choices(db) -> list[dict]:
    from storage import segments

    return [{"id": s["id"], "name": s["name"]} for s in segments.list_segments(db)]


def name_columns(db) -> list[tuple[str, str]]:
    return repo.profile_text_columns(db)


def connection_tps(db, connection_id: int | None) -> float:
    from connectors import registry

    limit = registry.spec("leadspace").rate_limits.get("default")   # Leadspace's documented limit
    return float(limit.count / limit.period_s) if limit else float(core.DEFAULT_TPS)


def check_connection(db, actor: User, connection_id: int | None) -> dict:
    """"Connect" in the editor: one cheap call with the chosen connection's stored token.
    {"ok": bool, "message": str}; a connection the actor may not use raises EnrichmentInputError."""
    require(actor, Action.EDIT_ENRICHMENTS)
    _check_connection(db, actor, connection_id)
    from jobs.clients import make_client_for

    client = make_client_for(db, int(connection_id))
    try:
        result = client.verify()
    finally:
        client.close()
    return {"ok": bool(result.ok), "message": result.message}


# Where the editor links for what Leadspace's API does (the seed documents link there too).
LEADSPACE_API_DOCS_URL = "https://support.leadspace.com/hc/en-us/sections/201997649-API"
OPTIONAL_FIELDS = ("company_website", "company_location")


def new_form(db, actor: User) -> dict:
    """A new enrichment's editor values, defaults filled in (the first Leadspace connection, all profiles,
    the primary address, Company name from company_name, the default confidence)."""
    conns = connection_choices(db, actor)
    return {"connection_id": conns[0]["id"] if conns else None, "dataset": "all", "segment_id": None,
            "address": "primary", "name_column": "company_name", "website_column": "company_website",
            "use_website": False, "use_location": False, "min_confidence": core.DEFAULT_MIN_CONFIDENCE,
            "write_mode": "overwrite", "skip_recent_days": 0, "name": DEMO_NAME}


def form_from_enrichment(db, enrichment_id: int) -> dict:
    row = get_enrichment(db, enrichment_id)
    if row is None:
        raise EnrichmentInputError("That enrichment no longer exists.")
    cfg: EnrichmentConfig = row["config"]
    return {"connection_id": cfg.connection_id, "dataset": cfg.dataset, "segment_id": cfg.segment_id,
            "address": cfg.address, "name_column": cfg.name_column, "website_column": cfg.website_column,
            "use_website": "company_website" in cfg.fields, "use_location": "company_location" in cfg.fields,
            "min_confidence": cfg.min_confidence, "write_mode": cfg.write_mode,
            "skip_recent_days": cfg.skip_recent_days, "name": row["name"]}


def config_from_form(form: dict) -> EnrichmentConfig:
    fields = ["company_name"] + (["company_website"] if form.get("use_website") else []) + (
        ["company_location"] if form.get("use_location") else [])
    try:
        return EnrichmentConfig(
            connection_id=form.get("connection_id"), dataset=form.get("dataset") or "all",
            segment_id=form.get("segment_id") if form.get("dataset") == "segment" else None,
            address=form.get("address") or "primary", fields=fields,
            name_column=form.get("name_column") or "company_name",
            website_column=form.get("website_column") or "company_website",
            min_confidence=form.get("min_confidence") or core.DEFAULT_MIN_CONFIDENCE,
            write_mode=form.get("write_mode") or "overwrite", skip_recent_days=int(form.get("skip_recent_days") or 0))
    except (ValueError, TypeError) as exc:
        raise EnrichmentInputError(f"Check the enrichment's settings: {exc}") from None


def preview_form(db, form: dict, enrichment_id: int | None = None) -> dict:
    """preview() for the editor's values; problems that keep it from saving are listed, not raised."""
    config = config_from_form(form)
    problems = config.problems()
    out = {"problems": problems, "preview": None}
    if config.connection_id is not None and not problems:
        out["preview"] = preview(db, config, enrichment_id)
    return out


def save_form(db, actor: User, form: dict, enrichment_id: int | None = None) -> int:
    require(actor, Action.EDIT_ENRICHMENTS)
    return save_enrichment(db, actor, form.get("name") or "", config_from_form(form), enrichment_id)


def enrichment_from_param(db, raw) -> dict | None:
    """The enrichment a URL's `?enrichment=` names (a whole number of an existing one), else None."""
    text = str(raw or "").strip()
    if not text.isdigit() or len(text) > 18:
        return None
    return get_enrichment(db, int(text))


# ---------------------------------------------------------------- preview / save

def preview(db, config: EnrichmentConfig, enrichment_id: int | None = None) -> dict:
    """What a run would send: profiles after skips and de-duplication, credits and duration."""
    try:
        plan = repo.plan(db, config, enrichment_id)
    except ValueError as exc:
        raise EnrichmentInputError(str(exc)) from None
    tps = connection_tps(db, config.connection_id)
    est = core.estimate(plan.to_send, tps=tps)
    return {
        "profiles": plan.profiles, "skipped_recent": plan.skipped_recent, "invalid_input": plan.invalid_input,
        "duplicates": plan.duplicates, "companies": plan.to_send, "credits": est.credits,
        "bulk_calls": est.bulk_calls, "requests": est.requests, "tps": tps, "seconds": est.seconds,
        "duration": core.human_duration(est.seconds), "duration_basis": _estimate_basis(db, config.connection_id),
    }


def _estimate_basis(db, connection_id: int | None) -> str:
    """What the duration rests on, said next to it; on a Sandbox connection, that the run will be quicker."""
    from storage import connections as connection_store

    row = connection_store.get_connection(db, connection_id) if connection_id is not None else None
    sandbox = row is not None and row.get("region") == "sandbox"
    return core.ESTIMATE_BASIS + (" " + core.SANDBOX_ESTIMATE_NOTE if sandbox else "")


def _clean_name(cur, name: str, exclude_id: int | None) -> str:
    name = (name or "").strip()
    if not name:
        raise EnrichmentInputError("Give the enrichment a name.")
    if len(name) > MAX_NAME_LEN:
        raise EnrichmentInputError(f"Keep the name under {MAX_NAME_LEN} characters.")
    if repo.name_taken(cur, name, exclude_id):
        raise EnrichmentInputError(f"An enrichment named “{name}” already exists. Choose another name.")
    return name


def _connection_problem(db, connection_id: int | None) -> str | None:
    """Why an enrichment cannot use this connection (missing, not Leadspace, inactive), or None."""
    from storage import connections as connection_store

    if connection_id is None:
        return "Choose a Leadspace connection."
    row = connection_store.get_connection(db, connection_id)
    if row is None:
        return "That connection no longer exists. Choose a Leadspace connection."
    if row["vendor"] != "leadspace":
        return f"“{row['name']}” is not a Leadspace connection; enrichments need one."
    if not row["active"]:
        return (f"The connection “{row['name']}” is inactive. An admin can reactivate it in Admin › Connections, "
                "or choose another Leadspace connection.")
    return None


def _check_connection(db, actor: Actor, connection_id: int | None) -> None:
    """An enrichment runs on an active Leadspace connection the actor may use, or is not saved."""
    problem = _connection_problem(db, connection_id)
    if problem:
        raise EnrichmentInputError(problem)
    if int(connection_id) not in {c["id"] for c in connection_choices(db, actor)}:
        raise EnrichmentInputError("You cannot use that connection. Choose one of the Leadspace connections listed.")


def _check_config(db, actor: User, config: EnrichmentConfig) -> None:
    problems = config.problems()
    if problems:
        raise EnrichmentInputError(" ".join(problems))
    _check_connection(db, actor, config.connection_id)
    allowed = {c for c, _ in repo.profile_text_columns(db)}
    if config.name_column not in allowed:
        raise EnrichmentInputError("The company name must come from a text attribute of the profiles.")
    if "company_website" in config.fields and config.website_column not in allowed:
        raise EnrichmentInputError("The company website must come from a text attribute of the profiles.")


def save_enrichment(db, actor: User, name: str, config: EnrichmentConfig, enrichment_id: int | None = None) -> int:
    """Create or edit an enrichment. Saving never runs it. Editing abandons an unfinished pass
    (it was planned with the old settings)."""
    require(actor, Action.EDIT_ENRICHMENTS)
    _check_config(db, actor, config)
    with db.transaction() as cur:
        clean = _clean_name(cur, name, enrichment_id)
        if enrichment_id is None:
            eid = repo.insert(cur, clean, config, actor.username)
            repo.create_results_table(cur, eid)
            row = {"id": eid, "name": clean, "active": True}
            repo.sync_catalogue(cur, row)
            audit.record(cur, actor, "create", ENTITY, eid, after={"name": clean, **config.model_dump()})
            return eid
        before = cur.execute("SELECT name, config_json, active FROM enrichments WHERE id = ?",
                             [int(enrichment_id)]).fetchone()
        if before is None:
            raise EnrichmentInputError("That enrichment no longer exists.")
        repo.update(cur, enrichment_id, name=clean, connection_id=config.connection_id,
                    config_json=config.model_dump_json(), updated_by=actor.username)
        if json.loads(before[1]) != json.loads(config.model_dump_json()):
            repo.abandon_open_passes(cur, enrichment_id)
        repo.sync_catalogue(cur, {"id": enrichment_id, "name": clean, "active": before[2]})
        audit.record(cur, actor, "update", ENTITY, enrichment_id,
                     before={"name": before[0], **json.loads(before[1])}, after={"name": clean, **config.model_dump()})
        return int(enrichment_id)


def set_active(db, actor: User, enrichment_id: int, active: bool) -> None:
    """Inactive enrichments are not run by refreshes and their attributes leave the catalogue
    (segments and exports use only active enrichments); activating puts them back."""
    require(actor, Action.EDIT_ENRICHMENTS)
    with db.transaction() as cur:
        row = cur.execute("SELECT name, active FROM enrichments WHERE id = ?", [int(enrichment_id)]).fetchone()
        if row is None:
            raise EnrichmentInputError("That enrichment no longer exists.")
        repo.update(cur, enrichment_id, active=bool(active), updated_by=actor.username)
        repo.sync_catalogue(cur, {"id": enrichment_id, "name": row[0], "active": bool(active)})
        audit.record(cur, actor, "activate" if active else "deactivate", ENTITY, enrichment_id,
                     before={"active": row[1]}, after={"active": bool(active)})


def delete_enrichment(db, actor: User, enrichment_id: int) -> None:
    """Delete the enrichment, its results table, review queue and catalogue attributes.
    A queued run is cancelled; a running one must be cancelled first."""
    require(actor, Action.EDIT_ENRICHMENTS)
    active = runner.active_run(db, "enrichment", int(enrichment_id))
    if active and active[1] == "running":
        raise EnrichmentInputError("This enrichment is running. Cancel the run, then delete it.")
    if active:
        runner.request_cancel(db, actor, active[0])
    with db.transaction() as cur:
        row = cur.execute("SELECT name, config_json FROM enrichments WHERE id = ?", [int(enrichment_id)]).fetchone()
        if row is None:
            return
        repo.delete(cur, enrichment_id)
        audit.record(cur, actor, "delete", ENTITY, enrichment_id, before={"name": row[0], **json.loads(row[1])})


# ---------------------------------------------------------------- runs

def run_enrichment(db, actor: Actor, enrichment_id: int, trigger: str = "manual") -> int:
    """Queue a run. If the last run stopped early (crash, cancel, credits), this one continues it."""
    require(actor, Action.RUN)
    row = repo.get(db, enrichment_id)
    if row is None:
        raise EnrichmentInputError("That enrichment no longer exists.")
    if not row["active"]:
        raise EnrichmentInputError("This enrichment is inactive. Activate it first.")
    problem = _connection_problem(db, row.get("connection_id"))
    if problem:   # saved before connections were checked, or changed since: say so instead of failing mid-run
        raise EnrichmentInputError(f"This enrichment cannot run: {problem}")
    params: dict[str, Any] = {}
    last = latest_run(db, enrichment_id)
    if last and last["status"] in ("interrupted", "failed", "cancelled", "partially_succeeded") \
            and repo.open_pass(db, enrichment_id) is not None:
        params["resume_of"] = last["id"]
        trigger = "resume" if trigger == "manual" else trigger
    return runner.submit(db, actor, "enrichment", int(enrichment_id), row["name"], trigger, params,
                         parent_run_id=params.get("resume_of"))


def cancel_run(db, actor: User, run_id: int) -> str:
    require(actor, Action.RUN)
    return runner.request_cancel(db, actor, run_id)


def latest_run(db, enrichment_id: int) -> dict | None:
    runs = runner.list_runs(db, kind="enrichment", target_id=int(enrichment_id), limit=1)
    return runs[0] if runs else None


def run_history(db, enrichment_id: int, limit: int = 50) -> list[dict]:
    """Finished runs, oldest first: enriched profiles and outcome counts per run (for charts)."""
    out = []
    for run in reversed(runner.list_runs(db, kind="enrichment", target_id=int(enrichment_id), limit=limit)):
        c = run["counts"] or {}
        if run["status"] in ("queued", "running"):
            continue
        out.append({"run_id": run["id"], "finished_at": run["finished_at"], "status": run["status"],
                    "enriched": int(c.get("enriched", 0)), "below_threshold": int(c.get("below_threshold", 0)),
                    "not_matched": int(c.get("not_matched", 0)), "errors": int(c.get("error", 0)),
                    "sent": int(c.get("sent_this_run", 0))})
    return out


# ---------------------------------------------------------------- reads

def get_enrichment(db, enrichment_id: int) -> dict | None:
    return repo.get(db, enrichment_id)


def _status(row: dict, last: dict | None) -> str:
    if not row["active"]:
        return "Inactive"
    if last is None:
        return "Not run yet"
    return {"queued": "Queued", "running": "Running", "succeeded": "Succeeded",
            "partially_succeeded": "Partially succeeded", "failed": "Failed", "cancelled": "Cancelled",
            "skipped": "Skipped", "interrupted": "Interrupted"}.get(last["status"], last["status"])


def list_enrichments(db) -> list[dict]:
    out = []
    for row in repo.list_all(db):
        last = latest_run(db, row["id"])
        enriched = repo.results_count(db, row["id"])
        counts = (last or {}).get("counts") or {}
        valid = counts.get("profiles", 0) - counts.get("skipped_recent", 0) - counts.get("invalid_input", 0)
        cov = repo.coverage(db, row["id"]) if enriched else {}
        out.append({
            "id": row["id"], "name": row["name"], "active": row["active"], "status": _status(row, last),
            "last_run_id": last["id"] if last else None, "last_refreshed_at": row["last_refreshed_at"],
            "profiles_enriched": enriched,
            "match_rate": (counts.get("enriched", 0) / valid) if valid > 0 else None,
            "review_pending": repo.review_count(db, row["id"]),
            "coverage": {f.label: (cov.get(f.column, 0) / enriched if enriched else 0.0)
                         for f in core.ENRICHED_FIELDS if f.column in cov},
            "message": last["message"] if last else None,
        })
    return out


def confidence_distribution(db, enrichment_id: int) -> dict[str, int]:
    return repo.confidence_distribution(db, enrichment_id)


def enriched_data(db, enrichment_id: int, *, search: str | None = None, industry: str | None = None,
                  min_confidence: str | None = None, page: int = 1, page_size: int = 50) -> dict:
    page = max(1, int(page))
    rows, total = repo.enriched_rows(db, enrichment_id, search=search or None, industry=industry or None,
                                     min_confidence=min_confidence or None, limit=page_size,
                                     offset=(page - 1) * page_size)
    pages = max(1, -(-total // page_size))
    return {"rows": rows, "total": total, "page": min(page, pages), "pages": pages}


def industries(db, enrichment_id: int) -> list[str]:
    return repo.industries(db, enrichment_id)


_COMPARE = (  # (label, original profile column or address part, enriched column)
    ("Company name", "name", "company_name"),
    ("Website", "website", "website"),
    ("Street", "street", "hq_street"),
    ("City", "city", "hq_city"),
    ("State", "state", "hq_state"),
    ("Country", "country", "hq_country"),
    ("Postal code", "postal_code", "hq_postal_code"),
)


def profile_comparison(db, enrichment_id: int, customer_id: str) -> dict | None:
    """Original values beside the enriched ones, with the match confidence."""
    row = repo.get(db, enrichment_id)
    enriched = repo.enriched_row(db, enrichment_id, customer_id)
    if row is None or enriched is None:
        return None
    config: EnrichmentConfig = row["config"]
    addr = core.address_columns(config.address)
    cols = {"name": config.name_column, "website": config.website_column, **addr}
    allowed = {c for c, _ in repo.profile_text_columns(db)}
    from storage.db import quote_ident
    select = ", ".join(f"{quote_ident(cols[k])} AS {quote_ident(k)}" for k in cols if cols[k] in allowed)
    original = db.query_dicts(f"SELECT {select} FROM profiles WHERE customer_id = ? LIMIT 1", [customer_id])
    original = original[0] if original else {}
    pairs = [{"field": label, "original": original.get(src), "enriched": enriched.get(dst)}
             for label, src, dst in _COMPARE]
    for f in core.ENRICHED_FIELDS:
        if f.column in {"company_name", "website", "hq_street", "hq_city", "hq_state", "hq_country",
                        "hq_postal_code", "confidence", "enriched_at"}:
            continue
        pairs.append({"field": f.label, "original": None, "enriched": enriched.get(f.column)})
    return {"customer_id": customer_id, "confidence": enriched.get("confidence"),
            "enriched_at": enriched.get("enriched_at"), "accepted_by": enriched.get("accepted_by"), "fields": pairs}


def review_queue(db, enrichment_id: int, limit: int = 200, offset: int = 0) -> list[dict]:
    """Matches below the threshold, flattened: input beside the proposed match."""
    out = []
    for r in repo.review_rows(db, enrichment_id, "pending", limit, offset):
        inp = json.loads(r["input_json"] or "{}")
        res = json.loads(r["result_json"] or "{}")
        location = ", ".join(v for v in (inp.get("city"), inp.get("country")) if v)
        out.append({
            "customer_id": r["customer_id"], "confidence": r["confidence"],
            "input_name": inp.get("name"), "input_website": inp.get("website"), "input_location": location or None,
            "match_name": res.get("name"), "match_website": res.get("website"),
            "match_location": ", ".join(v for v in (res.get("hq_city"), res.get("hq_country")) if v) or None,
            "match_industry": res.get("industry"),
        })
    return out


def review_count(db, enrichment_id: int) -> int:
    return repo.review_count(db, enrichment_id)


def decide(db, actor: User, enrichment_id: int, customer_ids: list[str], accept: bool) -> int:
    """Accept (becomes enriched data) or reject below-threshold matches. Returns how many changed."""
    require(actor, Action.REVIEW_MATCHES)
    row = repo.get(db, enrichment_id)
    if row is None:
        raise EnrichmentInputError("That enrichment no longer exists.")
    ids = [str(c) for c in customer_ids]
    if not ids:
        raise EnrichmentInputError("Select at least one match.")
    with db.transaction() as cur:
        n = repo.decide_review(cur, row, ids, accept, actor.username)
        audit.record(cur, actor, "review_accept" if accept else "review_reject", ENTITY, enrichment_id,
                     after={"customer_ids": ids[:100], "count": n})
    return n


# ---------------------------------------------------------------- demo

def demo_setup(db, actor: User) -> int | None:
    """One enrichment "Company firmographics" over all profiles on the first Leadspace Sandbox
    connection, if there is one and the enrichment does not exist yet. It is not run."""
    require(actor, Action.EDIT_ENRICHMENTS)
    from storage import connections

    sandbox = [c for c in connections.list_connections(db, vendor="leadspace") if c.get("region") == "sandbox"]
    if not sandbox:
        return None
    with db.cursor() as cur:
        if repo.name_taken(cur, DEMO_NAME):
            row = cur.execute("SELECT id FROM enrichments WHERE lower(name) = lower(?)", [DEMO_NAME]).fetchone()
            return int(row[0]) if row else None
    config = EnrichmentConfig(connection_id=int(sandbox[0]["id"]), dataset="all", address="primary",
                              fields=["company_name", "company_website", "company_location"])
    return save_enrichment(db, actor, DEMO_NAME, config)
