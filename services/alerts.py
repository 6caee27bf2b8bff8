"""Alerts after runs: an in-app banner, optional e-mail on failure and on recovery, and a
threshold alert when an export run's rejected share is too high.

``on_run_finished(db, run)`` is registered with ``jobs.runner.on_finished`` at start-up (services/wiring.py)
and so runs after every run. It records
an ``alert_events`` row per event (the banner reads those) and sends e-mail if configured.

Which runs alert:
* failed / partially succeeded: top-level runs only. Child runs of a refresh are summed up in the
  refresh's own alert (one message per refresh, not one per export).
* recovered: a top-level run succeeded and the previous finished run of the same item had failed
  or partially succeeded.
* rejected share: any run whose counts have ``rejected`` and ``planned`` (or ``accepted``), when
  rejected / planned exceeds the configured percentage.

SMTP password: encrypted at rest with ``storage.secrets`` (AES-GCM, context ``alerts:smtp_password``);
without a stored one, ``INSIGHT_RELAY_SMTP_PASSWORD`` in the environment is used.
The alert tables' SQL is in storage/alerts.py.
"""
from __future__ import annotations

import logging
import os
import smtplib
import ssl
from email.message import EmailMessage

from core.errors import InputError
from core.permissions import Action, User, require
from jobs import runner
from storage import alerts as repo
from storage import audit, secrets, settings
from storage import runs as runs_repo

log = logging.getLogger(__name__)

CONFIG_KEY = "alerts.config"
SMTP_TIMEOUT_S = 10.0
PASSWORD_ENV = "INSIGHT_RELAY_SMTP_PASSWORD"
PASSWORD_CONTEXT = "alerts:smtp_password"   # binds the ciphertext to this setting
FAILURE_EVENTS = ("failed", "partially_succeeded", "rejected_share")
DEFAULT_CONFIG = {
    "email_on_failure": False,
    "email_on_recovery": False,
    "smtp_host": "",
    "smtp_port": 587,
    "smtp_from": "",
    "smtp_to": [],
    "smtp_starttls": True,
    "smtp_username": "",
    "smtp_password_encrypted": None,
    "rejected_share_threshold_pct": None,   # e.g. 10.0 → alert when more than 10 % were rejected
}
KIND_LABELS = {"export": "Export", "enrichment": "Enrichment", "refresh": "Refresh", "segment": "Segment"}


class AlertConfigError(InputError, ValueError):
    """Invalid alert settings; the message is a plain sentence."""


# -- settings ------------------------------------------------------------------------------------
def get_config(db) -> dict:
    return {**DEFAULT_CONFIG, **(settings.get(db, CONFIG_KEY, {}) or {})}


def public_config(db) -> dict:
    """The settings without the (encrypted) password, plus whether one is stored."""
    cfg = get_config(db)
    cfg["password_stored"] = bool(cfg.pop("smtp_password_encrypted"))
    return cfg


def _split_addresses(value) -> list[str]:
    if isinstance(value, str):
        value = value.replace(";", ",").split(",")
    return [a.strip() for a in (value or []) if a and a.strip()]


def save_config(db, actor: User, *, email_on_failure: bool, email_on_recovery: bool, smtp_host: str,
                smtp_port: int, smtp_from: str, smtp_to, smtp_starttls: bool, smtp_username: str = "",
                smtp_password: str | None = None, clear_password: bool = False,
                rejected_share_threshold_pct: float | None = None) -> dict:
    """Store alert settings. ``smtp_password`` None/"" keeps the stored one."""
    require(actor, Action.MANAGE_SCHEDULE)
    recipients = _split_addresses(smtp_to)
    host = (smtp_host or "").strip()
    if email_on_failure or email_on_recovery:
        if not host:
            raise AlertConfigError("Enter the SMTP server's host name to send alert e-mails.")
        if not (smtp_from or "").strip() or "@" not in smtp_from:
            raise AlertConfigError("Enter the sender address (From) for alert e-mails.")
        if not recipients:
            raise AlertConfigError("Enter at least one recipient (To) for alert e-mails.")
    if any("@" not in a for a in recipients):
        raise AlertConfigError("Each recipient must be an e-mail address.")
    port = int(smtp_port or 0)
    if not 0 < port < 65536:
        raise AlertConfigError("The SMTP port must be between 1 and 65535.")
    if rejected_share_threshold_pct is not None and not 0 <= float(rejected_share_threshold_pct) <= 100:
        raise AlertConfigError("The rejected-share threshold is a percentage between 0 and 100.")
    before = get_config(db)
    cfg = {
        "email_on_failure": bool(email_on_failure), "email_on_recovery": bool(email_on_recovery),
        "smtp_host": host, "smtp_port": port, "smtp_from": (smtp_from or "").strip(), "smtp_to": recipients,
        "smtp_starttls": bool(smtp_starttls), "smtp_username": (smtp_username or "").strip(),
        "smtp_password_encrypted": None if clear_password else before.get("smtp_password_encrypted"),
        "rejected_share_threshold_pct": None if rejected_share_threshold_pct is None else float(rejected_share_threshold_pct),
    }
    if smtp_password:
        try:
            cfg["smtp_password_encrypted"] = secrets.encrypt(smtp_password, context=PASSWORD_CONTEXT)
        except secrets.SecretKeyError as exc:
            raise AlertConfigError(f"The SMTP password cannot be stored: {exc}") from None
    with db.transaction() as cur:
        settings.put(cur, CONFIG_KEY, cfg)
        audit.record(cur, actor, "update", "alerts", "config", before=before, after=cfg)
    return public_config(db)


def _password(cfg: dict) -> str | None:
    token = cfg.get("smtp_password_encrypted")
    if token:
        try:
            return secrets.decrypt(token, context=PASSWORD_CONTEXT)
        except secrets.SecretKeyError as exc:
            raise smtplib.SMTPException(f"The stored SMTP password cannot be used: {exc}") from None
    return os.environ.get(PASSWORD_ENV) or None


# -- e-mail --------------------------------------------------------------------------------------
def send_email(cfg: dict, subject: str, body: str) -> None:
    """Send one e-mail with the configured server; raises OSError/smtplib errors on failure."""
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = cfg["smtp_from"]
    msg["To"] = ", ".join(cfg["smtp_to"])
    msg.set_content(body)
    with smtplib.SMTP(cfg["smtp_host"], int(cfg["smtp_port"]), timeout=SMTP_TIMEOUT_S) as smtp:
        if cfg.get("smtp_starttls"):
            smtp.starttls(context=ssl.create_default_context())
        password = _password(cfg)
        if cfg.get("smtp_username") and password:
            smtp.login(cfg["smtp_username"], password)
        smtp.send_message(msg)


def send_test_email(db, actor: User) -> str:
    """Send a test message; returns a plain sentence (success or why it failed)."""
    require(actor, Action.MANAGE_SCHEDULE)
    cfg = get_config(db)
    if not cfg["smtp_host"] or not cfg["smtp_to"] or not cfg["smtp_from"]:
        return "Save the SMTP host, sender and at least one recipient first."
    try:
        send_email(cfg, "Insight Relay test alert", f"This is a test alert sent by {actor.username}.")
    except (OSError, smtplib.SMTPException) as exc:
        return f"The test e-mail could not be sent: {type(exc).__name__}: {exc}"
    return f"Test e-mail sent to {', '.join(cfg['smtp_to'])}."


# -- events --------------------------------------------------------------------------------------
def _label(run: dict) -> str:
    kind = KIND_LABELS.get(run["kind"], run["kind"].title())
    name = run.get("target_name")
    return f"{kind} '{name}'" if name else kind


def _previous_outcome(db, run: dict) -> str | None:
    return runs_repo.previous_outcome(db, run["kind"], run["target_id"], run["id"])


def rejected_share(counts: dict) -> float | None:
    rejected = counts.get("rejected")
    if not isinstance(rejected, (int, float)):
        return None
    planned = counts.get("planned")
    if not isinstance(planned, (int, float)) or planned <= 0:
        accepted = counts.get("accepted")
        planned = (accepted + rejected) if isinstance(accepted, (int, float)) else None
    if not planned:
        return None
    return float(rejected) / float(planned)


def _failure_detail(db, run: dict) -> str:
    lines = [run.get("message") or ""]
    if run["kind"] == "refresh":
        for child in runner.child_runs(db, run["id"]):
            if child["status"] in ("failed", "partially_succeeded", "cancelled", "skipped"):
                lines.append(f"- {_label(child)}: {child['status'].replace('_', ' ')}. {child['message'] or ''}")
    return "\n".join(line for line in lines if line)


def events_for_run(db, run: dict, cfg: dict) -> list[tuple[str, str]]:
    """(event, message) pairs this finished run raises."""
    events = []
    top_level = runs_repo.is_top_level(run)
    status = run["status"]
    if top_level and status in ("failed", "partially_succeeded"):
        verb = "failed" if status == "failed" else "partially succeeded"
        events.append((status, f"{_label(run)} {verb} (run #{run['id']}). {_failure_detail(db, run)}".strip()))
    if top_level and status == "succeeded" and _previous_outcome(db, run) in ("failed", "partially_succeeded", "interrupted"):
        events.append(("recovered", f"{_label(run)} succeeded again (run #{run['id']}) after an earlier failure."))
    threshold = cfg.get("rejected_share_threshold_pct")
    share = rejected_share(run.get("counts") or {})
    if threshold is not None and share is not None and share * 100 > float(threshold):
        events.append(("rejected_share",
                       f"{_label(run)} (run #{run['id']}): {share:.1%} of contacts were rejected, above the "
                       f"alert threshold of {float(threshold):g} %."))
    return events


def on_run_finished(db, run: dict) -> list[int]:
    """Record alert events for a finished run and e-mail them if configured. Returns event ids."""
    cfg = get_config(db)
    ids = []
    for event, message in events_for_run(db, run, cfg):
        wants_email = cfg["email_on_recovery"] if event == "recovered" else cfg["email_on_failure"]
        email_status, email_error = "off", None
        if wants_email and cfg["smtp_host"] and cfg["smtp_to"]:
            subject = f"Insight Relay: {message.splitlines()[0][:150]}"
            try:
                send_email(cfg, subject, message + "\n\nSee Run history in Insight Relay for details.")
                email_status = "sent"
            except (OSError, smtplib.SMTPException) as exc:
                email_status, email_error = "failed", f"{type(exc).__name__}: {exc}"
                log.warning("alert e-mail failed: %s", email_error)
        ids.append(repo.insert_event(db, run["id"], event, message, email_status, email_error))
    return ids


def list_events(db, *, limit: int = 20) -> list[dict]:
    return repo.list_events(db, limit)


def pending_alerts(db, username: str, *, limit: int = 5) -> tuple[int, list[dict]]:
    """(how many, the newest ``limit``) failure alerts since this user last dismissed them."""
    return repo.pending_for(db, username, limit)


def dismiss(db, actor: User, up_to_event_id: int | None = None) -> None:
    """Hide the alerts this user has seen (up to ``up_to_event_id``, default: all so far)."""
    require(actor, Action.READ)
    repo.dismiss_up_to(db, actor.username, up_to_event_id)
