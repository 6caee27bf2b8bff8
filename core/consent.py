"""Per-vendor data-privacy and compliance texts an admin must agree to before connecting.

Each text has a version string. The version agreed to is stored on the connection (with who and
when) and in the audit log; when a text changes, bump its version so new consents can be told apart.

API
---
ConsentText(vendor, version, title, body)   body is Markdown
consent_for(vendor) -> ConsentText           KeyError for an unknown vendor
current_version(vendor) -> str
is_current(vendor, version) -> bool
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConsentText:
    vendor: str
    version: str
    title: str
    body: str


_CUSTOMER_RESPONSIBILITY = (
    "**Your responsibility.** You (the customer) are the data controller. You must have a lawful basis "
    "(for example consent or legitimate interest) to share this data with {vendor}, tell the people "
    "concerned in your privacy notice, and have a data processing agreement with {vendor} where the law "
    "requires one (for example under GDPR or CCPA). {vendor}'s own terms and privacy policy govern the "
    "data once it arrives there; Insight Relay cannot recall or delete it from {vendor} for you."
)

_SANDBOX_NOTE = (
    "**Sandbox region.** A connection with the Sandbox region sends nothing over the internet: the data "
    "goes to a built-in emulator inside this Insight Relay installation."
)

_TEXTS: dict[str, ConsentText] = {
    "leadspace": ConsentText(
        vendor="leadspace",
        version="leadspace-2026-01",
        title="Leadspace enrichment: data privacy and compliance",
        body="\n\n".join([
            "**What data leaves.** For every profile you enrich, Insight Relay sends the company fields you map "
            "(company name, and optionally the company website and location: street, city, state, postal code, "
            "country). No email addresses, personal names or phone numbers are sent.",
            "**To whom.** Leadspace, Inc. (United States), over HTTPS, authenticated with your Leadspace token. "
            "Leadspace returns firmographic data (industry, size, revenue and similar) and charges credits per "
            "request.",
            "**Where it goes.** Enriched values are stored in this installation in their own table; your "
            "original profiles are never changed.",
            _CUSTOMER_RESPONSIBILITY.format(vendor="Leadspace"),
            _SANDBOX_NOTE,
        ]),
    ),
    "sendgrid": ConsentText(
        vendor="sendgrid",
        version="sendgrid-2026-01",
        title="SendGrid export: data privacy and compliance",
        body="\n\n".join([
            "**What data leaves.** For every profile in the segments you export: the email address, plus the "
            "attributes you map (first and last name, country/region, state, city, post code). Profiles that "
            "opted out of email or are on the suppression list are never sent.",
            "**To whom.** Twilio SendGrid (Twilio Inc., United States; the EU region keeps data in the EU where "
            "SendGrid offers it), over HTTPS with your API key, into your SendGrid Marketing Campaigns lists.",
            "**What happens there.** The contacts can receive email you send from SendGrid. Mirror-mode "
            "exports remove contacts from lists but never delete them from SendGrid.",
            _CUSTOMER_RESPONSIBILITY.format(vendor="SendGrid"),
            _SANDBOX_NOTE,
        ]),
    ),
    "iterable": ConsentText(
        vendor="iterable",
        version="iterable-2026-01",
        title="Iterable export: data privacy and compliance",
        body="\n\n".join([
            "**What data leaves.** For every profile in the segments you export: the email address, plus the "
            "profile or enriched attributes you map as Iterable data fields. Profiles that opted out of email "
            "or are on the suppression list are never sent.",
            "**To whom.** Iterable, Inc. (United States, or its EU data centre when you choose the EU region), "
            "over HTTPS with your API key, into lists named after your segments.",
            "**What happens there.** Iterable creates or updates a user per email. Removing a contact from a "
            "list never unsubscribes it globally.",
            _CUSTOMER_RESPONSIBILITY.format(vendor="Iterable"),
            _SANDBOX_NOTE,
        ]),
    ),
    "omnisend": ConsentText(
        vendor="omnisend",
        version="omnisend-2026-01",
        title="Omnisend export: data privacy and compliance",
        body="\n\n".join([
            "**What data leaves.** For every profile in the segments you export: the email address, plus the "
            "attributes you map (first and last name, address, country/region, state, city, post code), and a "
            "tag per segment. Profiles that opted out of email or are on the suppression list are never sent.",
            "**To whom.** Omnisend (UAB Omnisend, Lithuania, EU), over HTTPS with your API key. Contacts are "
            "created as not subscribed unless their consent is known.",
            "**What happens there.** Omnisend stores the contacts in your store's audience; removing a contact "
            "from a segment removes the tag, never the contact.",
            _CUSTOMER_RESPONSIBILITY.format(vendor="Omnisend"),
            _SANDBOX_NOTE,
        ]),
    ),
}


def consent_for(vendor: str) -> ConsentText:
    return _TEXTS[vendor]


def current_version(vendor: str) -> str:
    return _TEXTS[vendor].version


def is_current(vendor: str, version: str | None) -> bool:
    return vendor in _TEXTS and version == _TEXTS[vendor].version
