"""Connector error hierarchy, named by what the caller should do.

API
---
ConnectorError(user_message, *, status=None, vendor=None, resume=None, detail=None)   a core.errors.UserError
    (FixConnectionError and RecordRejectedError are also InputErrors; the others are Unavailable)
    .user_message  plain sentence a wizard can show as is (never contains secrets)
    .status        HTTP status (or None), .vendor, .resume (opaque resume hint), .detail
├── FixConnectionError            the user must fix the connection settings
│   ├── AuthError                 key rejected (401)
│   └── PermissionMissingError    key valid but lacks a permission (403)
├── RateLimitedError(user_message, retry_after_s=..., retry_at=None, budget_exhausted=False, ...)
│       try again later (.retry_after_s; .retry_at = epoch seconds). budget_exhausted: the vendor asked for
│       a wait beyond the run's rate-limit budget (connectors.http): the run pauses, resumable.
├── TransientError                we retried and gave up; try again later
├── RecordRejectedError           the vendor refused a record/request payload (400/413/422)
├── VendorError                   vendor failure or unexpected answer
├── InsufficientCreditsError      Leadspace 427 (out of credits)
└── VendorUnreachableError        DNS/connect failures; host not reachable

STATUS_ERRORS: dict[int, (error class, message template)]; templates use {vendor}.
error_for_status(status, vendor, *, detail=None, retry_after_s=None) -> ConnectorError
vendor_label(vendor) -> display name used in messages (the vendor's SPEC label).
human_seconds(seconds) -> "a few seconds" | "45 seconds" | "12 minutes" | "1.5 hours"
"""
from __future__ import annotations

from typing import Any

from core.errors import InputError, Unavailable, UserError

def vendor_label(vendor: str | None) -> str:
    """The vendor's display name from its SPEC (connectors.registry); "the vendor" when unknown/None."""
    if not vendor:
        return "the vendor"
    from connectors import registry   # here: the vendor modules import this one

    return registry.label(vendor)


class ConnectorError(UserError):
    """Base class. `user_message` is a plain sentence safe to show to users."""

    default_message = "Something went wrong talking to {vendor}."

    def __init__(
        self,
        user_message: str | None = None,
        *,
        status: int | None = None,
        vendor: str | None = None,
        resume: Any = None,
        detail: str | None = None,
    ) -> None:
        if user_message is None:
            user_message = self.default_message.format(vendor=vendor_label(vendor))
        self.user_message = user_message
        self.status = status
        self.vendor = vendor
        self.resume = resume
        self.detail = detail
        super().__init__(user_message)

    def __str__(self) -> str:  # keep str() equal to the user message (already redacted)
        return self.user_message

    def to_dict(self) -> dict:
        return {
            "error": type(self).__name__,
            "user_message": self.user_message,
            "status": self.status,
            "vendor": self.vendor,
            "detail": self.detail,
        }


class FixConnectionError(ConnectorError, InputError):
    default_message = "The connection to {vendor} needs attention. Check its settings."


class AuthError(FixConnectionError):
    default_message = "The API key was rejected by {vendor}. Check that you copied the whole key."


class PermissionMissingError(FixConnectionError):
    default_message = (
        "The API key is valid but lacks a permission {vendor} requires for this. "
        "Give the key the missing permission or use another key."
    )


class RateLimitedError(ConnectorError, Unavailable):
    default_message = "{vendor} is limiting how fast we can send. Try again later."

    def __init__(self, user_message: str | None = None, *, retry_after_s: float | None = None,
                 retry_at: float | None = None, budget_exhausted: bool = False, **kw: Any) -> None:
        self.retry_after_s = retry_after_s
        self.retry_at = retry_at
        self.budget_exhausted = budget_exhausted
        if user_message is None and retry_after_s is not None:
            user_message = (
                f"{vendor_label(kw.get('vendor'))} is limiting how fast we can send. "
                f"Try again in about {human_seconds(retry_after_s)}."
            )
        super().__init__(user_message, **kw)

    def to_dict(self) -> dict:
        d = super().to_dict()
        d["retry_after_s"] = self.retry_after_s
        d["retry_at"] = self.retry_at
        d["budget_exhausted"] = self.budget_exhausted
        return d


class TransientError(ConnectorError, Unavailable):
    default_message = "{vendor} did not answer properly after several tries. Try again in a few minutes."


class RecordRejectedError(ConnectorError, InputError):
    default_message = "{vendor} rejected the data we sent."


class VendorError(ConnectorError, Unavailable):
    default_message = "{vendor} returned an unexpected answer."


class InsufficientCreditsError(ConnectorError, Unavailable):
    default_message = "Your {vendor} account has run out of credits. Add credits and try again."
    # Set by the Leadspace client when credits ran out part-way: what was answered before that.
    partial_results: list = []


class VendorUnreachableError(ConnectorError, Unavailable):
    default_message = "We could not reach {vendor}. Check the network and the base URL, then try again."


def human_seconds(seconds: float) -> str:
    s = max(0, int(round(seconds)))
    if s < 5:
        return "a few seconds"
    if s < 90:
        return f"{s} seconds"
    if s < 90 * 60:
        return f"{round(s / 60)} minutes"
    return f"{round(s / 3600, 1)} hours"



# One table: HTTP status -> (error class, message template). Templates use {vendor}.
STATUS_ERRORS: dict[int, tuple[type[ConnectorError], str]] = {
    400: (RecordRejectedError, "{vendor} rejected the request as invalid."),
    401: (AuthError, "The API key was rejected by {vendor}. Check that you copied the whole key."),
    402: (InsufficientCreditsError, "Your {vendor} account needs payment or credits before this can run."),
    403: (PermissionMissingError, "The API key is valid but is not allowed to do this in {vendor}. Give it the missing permission."),
    404: (VendorError, "{vendor} could not find what we asked for (it may have been deleted)."),
    408: (TransientError, "{vendor} timed out. Try again in a few minutes."),
    410: (VendorError, "{vendor} says this API is no longer available."),
    413: (RecordRejectedError, "{vendor} said the request was too large."),
    422: (RecordRejectedError, "{vendor} rejected some of the data we sent."),
    427: (InsufficientCreditsError, "Your {vendor} account has run out of credits. Add credits and try again."),
    429: (RateLimitedError, "{vendor} is limiting how fast we can send. Try again later."),
    500: (TransientError, "{vendor} had an internal error. Try again in a few minutes."),
    502: (TransientError, "{vendor} is temporarily unavailable. Try again in a few minutes."),
    503: (TransientError, "{vendor} is temporarily unavailable. Try again in a few minutes."),
    504: (TransientError, "{vendor} timed out. Try again in a few minutes."),
}


def error_for_status(
    status: int,
    vendor: str | None,
    *,
    detail: str | None = None,
    retry_after_s: float | None = None,
    message: str | None = None,
) -> ConnectorError:
    """Build the ConnectorError for an HTTP status (unknown 4xx/5xx fall back sensibly)."""
    if status in STATUS_ERRORS:
        cls, template = STATUS_ERRORS[status]
    elif status >= 500:
        cls, template = TransientError, "{vendor} had an internal error. Try again in a few minutes."
    else:
        cls, template = VendorError, "{vendor} returned an unexpected answer (HTTP {status})."
    text = message or template.format(vendor=vendor_label(vendor), status=status)
    if cls is RateLimitedError:
        return RateLimitedError(message, retry_after_s=retry_after_s, status=status, vendor=vendor, detail=detail) \
            if message or retry_after_s is not None else RateLimitedError(text, status=status, vendor=vendor, detail=detail)
    return cls(text, status=status, vendor=vendor, detail=detail)
