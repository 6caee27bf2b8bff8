"""Planning an export run, and the one gate that says whether it may run now (issue 15 §2).

Shared by the runner (jobs/export_run.py, which enforces the gate with the plan it made) and the
services (services/exports.py::run_gate wraps `gate` with the actor's checks; the page renders it and
`run_export` refuses on it). Nothing else decides "may this export run now".

API
---
RunGate                         blocked + reason, needs_confirmation (removal guard entries), warnings,
                                contacts, account_contacts, to_send, estimate_s / estimate_text
gate(db, export, *, dry_run, plans=None, targets=None, contacts=None) -> RunGate
max_removal_share(db) -> float; limits_hard(db) -> bool
account_cap(db, connection_id) -> int | None      an admin's hard cap on contacts per connection (account)
account_cap_setting(connection_id) -> settings key
segment_names(db, ids); plan_targets(db, export) -> [{key, mode, id, name, segment_ids}]
action_counts(cur, source, params); count_plan(db, export, target, retry_run) -> {action: n}
check_removal_guard(db, export, targets, plans) -> [{target, removals, list_size, share, max_share}]
field_limits(vendor) -> {field: max chars}   documented limits (core.sync) + the connector's own
count_contacts(db, segment_ids) -> int          distinct members over the segments
account_contacts(db, connection_id, *, draft=None) -> int   distinct members over every active export
                                                on that connection (the draft's segments in place of its own)
limit_warning(vendor, contacts) -> str | None   over the vendor's per-export limit
account_warning(vendor, total) -> str | None    over the vendor's per-account limit (SendGrid)
cap_problem(cap, total) -> str | None           over an admin's contact cap on the connection (any vendor)
estimate_seconds(vendor, contacts) -> float | None;  human_duration(seconds) -> str
"""
from __future__ import annotations

from dataclasses import dataclass, field

from connectors import registry
from core import sync
from storage import exports as repo
from storage import settings

SETTING_MAX_REMOVAL_SHARE = "export_max_removal_share"
SETTING_LIMITS_HARD = "export_limits_hard"
_ACCOUNT_CAP_PREFIX = "export_account_cap."

# Vendors whose contact limit counts every contact in the account, not per export (their SPECs say so).
ACCOUNT_WIDE_LIMIT = frozenset(v for v, s in registry.SPECS.items() if s.contact_limit_per_account)


def _contact_limit(vendor: str | None) -> int | None:
    spec = registry.export_spec(vendor)
    return spec.contact_limit if spec else None


def account_cap_setting(connection_id: int) -> str:
    """The settings key of an admin's contact cap on a connection."""
    return f"{_ACCOUNT_CAP_PREFIX}{int(connection_id)}"


# ------------------------------------------------------------------------------ settings

def max_removal_share(db) -> float:
    return float(settings.get(db, SETTING_MAX_REMOVAL_SHARE, sync.DEFAULT_MAX_REMOVAL_SHARE))


def limits_hard(db) -> bool:
    return bool(settings.get(db, SETTING_LIMITS_HARD, False))


def account_cap(db, connection_id: int | None) -> int | None:
    if connection_id is None:
        return None
    value = settings.get(db, account_cap_setting(connection_id), None)
    return int(value) if value else None


# ------------------------------------------------------------------------------ plan

def segment_names(db, segment_ids: list[int]) -> dict[int, str]:
    from storage import segments

    out = {}
    for sid in segment_ids:
        seg = segments.get_segment(db, sid)
        out[sid] = seg["name"] if seg else f"segment {sid}"
    return out


def plan_targets(db, export: dict) -> list[dict]:
    """Group the export's segments by destination: [{key, mode, id, name, segment_ids}]."""
    names = segment_names(db, export["segment_ids"])
    groups: dict[str, dict] = {}
    for sid in export["segment_ids"]:
        t = dict(export["targets"].get(sid) or {"mode": "name"})
        if t.get("mode") != "id" and not t.get("name"):
            t["name"] = registry.spec(export["vendor"]).default_target_name(names[sid])
        key = repo.target_key(t)
        g = groups.setdefault(key, {"key": key, "mode": t.get("mode", "name"), "id": t.get("id"),
                                    "name": t.get("name") or t.get("id"), "segment_ids": []})
        g["segment_ids"].append(sid)
    return list(groups.values())


def action_counts(cur, source: str, params: list) -> dict[str, int]:
    """{action: rows} of a plan (a table name or a parenthesised plan query)."""
    return {a: n for a, n in cur.execute(f"SELECT action, count(*) FROM {source} GROUP BY action", params).fetchall()}


def count_plan(db, export: dict, target: dict, retry_run: int | None = None) -> dict[str, int]:
    sql, params, _ = repo.plan_sql(db, export, target["segment_ids"], target["key"], only_emails_from_run=retry_run)
    with db.cursor() as cur:
        counts = action_counts(cur, f"({sql})", params)
    removals = 0
    if export["sync_mode"] == sync.MODE_MIRROR:
        rsql, rparams = repo.removal_sql(db, export, target["segment_ids"], target["key"],
                                         only_emails_from_run=retry_run)
        removals = db.query_one(f"SELECT count(*) FROM ({rsql})", rparams)[0]
    counts[sync.REMOVE] = removals
    return counts


def check_removal_guard(db, export: dict, targets: list[dict], plans: dict[str, dict]) -> list[dict]:
    """Targets whose planned removals exceed the allowed share of what this export delivered there."""
    share = max_removal_share(db)
    over = []
    for t in targets:
        removals = plans[t["key"]].get(sync.REMOVE, 0)
        size = repo.delivered_count(db, export["id"], t["key"])
        if sync.needs_removal_confirmation(removals, size, share):
            over.append({"target": t["name"], "removals": removals, "list_size": size,
                         "share": sync.removal_share(removals, size), "max_share": share})
    return over


def field_limits(vendor: str | None) -> dict[str, int]:
    """The vendor's field limits (its SPEC: the one table), without the email (validated on its own)."""
    spec = registry.SPECS.get(vendor or "")
    return {k: v for k, v in spec.field_limits.items() if k != "email"} if spec else {}


# ------------------------------------------------------------------------------ contacts and limits

def count_contacts(db, segment_ids: list[int]) -> int:
    """Distinct members over the export's segments (what the vendor limit is about)."""
    if not segment_ids:
        return 0
    sql, params = repo.members_sql(db, [int(s) for s in segment_ids])
    return int(db.query_one(f"SELECT count(*) FROM ({sql})", params)[0])


def account_contacts(db, connection_id: int, *, draft: dict | None = None) -> int:
    """Distinct profiles over every active export on this connection: what the account will hold.

    `draft` (an export being saved: its "id" or None, and "segment_ids") counts with its segments in
    place of its saved ones. Distinct, because a contact in two lists is one contact of the account."""
    segment_ids: set[int] = set()
    draft_id = (draft or {}).get("id")
    for e in repo.list_exports(db):
        if e["connection_id"] == connection_id and e["active"] and e["id"] != draft_id:
            segment_ids.update(int(s) for s in e["segment_ids"])
    if draft is not None:
        segment_ids.update(int(s) for s in draft.get("segment_ids") or [])
    return count_contacts(db, sorted(segment_ids))


def _vendor_label(vendor: str) -> str:
    from connectors.errors import vendor_label

    return vendor_label(vendor)


def limit_warning(vendor: str, contacts: int) -> str | None:
    """Over the vendor's per-export limit (vendors whose limit is per account: see account_warning)."""
    limit = _contact_limit(vendor)
    if limit is None or contacts <= limit or vendor in ACCOUNT_WIDE_LIMIT:
        return None
    return (f"This export has {contacts:,} contacts; {_vendor_label(vendor)} recommends at most {limit:,} "
            "per export. It may take a long time or be refused by the vendor.")


def account_warning(vendor: str, total: int, own: int | None = None) -> str | None:
    limit = _contact_limit(vendor)
    if vendor not in ACCOUNT_WIDE_LIMIT or limit is None or total <= limit:
        return None
    mine = f"This export has {own:,} contacts; " if own is not None else ""
    return (f"{mine}the exports on this {_vendor_label(vendor)} connection send {total:,} contacts in total. "
            f"{_vendor_label(vendor)} recommends at most {limit:,} profiles per account: runs may take a "
            "long time or be refused by the vendor.")


def cap_problem(cap: int | None, total: int) -> str | None:
    """Why the connection's exports may not hold `total` contacts under an admin's cap (any vendor), or None."""
    if cap is None or total <= cap:
        return None
    return (f"The exports on this connection would hold {total:,} contacts, over the cap of {cap:,} an admin set "
            "for it. Make the segments smaller or ask an admin to raise the cap.")


def estimate_seconds(vendor: str | None, contacts: int) -> float | None:
    spec = registry.export_spec(vendor)
    rate = spec.contacts_per_s if spec else None   # the throughput the vendor's documents promise
    if rate is None:
        return None
    return contacts / rate if contacts > 0 else 0.0


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    s = int(round(seconds))
    if s < 60:
        return "under a minute"
    if s < 5400:
        return f"about {max(1, round(s / 60))} min"
    return f"about {s / 3600:.1f} hours"


# ------------------------------------------------------------------------------ the gate

@dataclass
class RunGate:
    """Whether an export may run now, what it needs and what to know first (one decision, three users)."""

    blocked: bool = False
    reason: str | None = None
    needs_confirmation: list[dict] = field(default_factory=list)   # removal guard entries (mirror)
    warnings: list[str] = field(default_factory=list)
    contacts: int = 0
    account_contacts: int | None = None
    to_send: int = 0                 # contacts to add, update, retry or remove (the plan), else all
    estimate_s: float | None = None

    @property
    def estimate_text(self) -> str:
        return human_duration(self.estimate_s)

    def refusal(self, *, confirm_removals: bool) -> str | None:
        """Why a run asked for now is refused (None: it may start)."""
        if self.blocked:
            return self.reason
        if self.needs_confirmation and not confirm_removals:
            worst = self.needs_confirmation[0]
            return (f"Not run: it would remove {worst['removals']:,} of {worst['list_size']:,} contacts "
                    f"({worst['share']:.0%}) from “{worst['target']}”, more than the {worst['max_share']:.0%} "
                    "allowed. Check the dry run, then run it again with the removals confirmed.")
        return None


def _block(g: RunGate, reason: str) -> RunGate:
    if not g.blocked:
        g.blocked, g.reason = True, reason
    return g


def gate(db, export: dict, *, dry_run: bool, plans: dict[str, dict] | None = None,
         targets: list[dict] | None = None, contacts: int | None = None) -> RunGate:
    """The gate for `export` (a stored export dict). The runner passes the plans it made; others get
    them counted here. A dry run is never blocked by limits or an inactive export (it changes nothing)."""
    g = RunGate()
    if not export.get("segment_ids"):
        return _block(g, "This export has no segments. Edit it and pick at least one.")
    if not dry_run and not export.get("active", True):
        _block(g, f"“{export['name']}” is inactive. Activate it before running.")
    vendor = export["vendor"]
    g.contacts = count_contacts(db, export["segment_ids"]) if contacts is None else int(contacts)
    hard = limits_hard(db)
    warning = limit_warning(vendor, g.contacts)
    cap = account_cap(db, export["connection_id"])
    if vendor in ACCOUNT_WIDE_LIMIT or cap is not None:
        g.account_contacts = account_contacts(db, export["connection_id"], draft=export)
        if vendor in ACCOUNT_WIDE_LIMIT:
            warning = account_warning(vendor, g.account_contacts, g.contacts)
        problem = cap_problem(cap, g.account_contacts)
        if problem and not dry_run:
            _block(g, problem)
    if warning:
        g.warnings.append(warning)
        if hard and not dry_run:
            _block(g, warning + " An admin has made this limit a hard stop.")
    targets = targets if targets is not None else plan_targets(db, export)
    if plans is None:
        plans = {t["key"]: count_plan(db, export, t) for t in targets}
    if export.get("sync_mode") == sync.MODE_MIRROR:
        g.needs_confirmation = check_removal_guard(db, export, targets, plans)
    g.to_send = sum(n for p in plans.values() for a, n in p.items()
                    if a in (sync.ADD, sync.UPDATE, sync.RETRY, sync.REMOVE))
    g.estimate_s = estimate_seconds(vendor, g.to_send)
    return g
