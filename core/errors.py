"""The one base for errors a person can act on.

API
---
UserError(message)            base; `.user_message` is a plain sentence shown as is (never a secret)
├── InputError                what was typed or chosen is not acceptable (fix the input)
├── PermissionDenied          the acting user (or system actor) may not do this
├── Busy                      something else is using it right now (try again after it)
└── Unavailable               a resource (vendor, database file, key file) cannot serve the request now

Pages and ui helpers catch `UserError` and show `.user_message`; any other exception is a bug and
shows as one. Each module keeps its own named subclass (ScheduleError, ExportInputError, the
connector tree, ...) so callers and tests can be precise; the classes that were ValueErrors before
also stay ValueErrors so existing `except ValueError` call sites keep working.

Control-flow exceptions that never reach a person (the runner's RunCancelled) are not UserErrors.
"""
from __future__ import annotations


class UserError(Exception):
    """An error with a message meant for the person who asked. str(err) == err.user_message."""

    default_message = "This could not be done."

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.user_message = str(args[0]) if args and args[0] is not None else self.default_message

    def __str__(self) -> str:
        return self.user_message


class InputError(UserError):
    """The input is not acceptable; the message says what to change."""

    default_message = "Please check what you entered."


class PermissionDenied(UserError):
    """The acting user's role does not allow this. The message is shown as is."""

    default_message = "You are not allowed to do this."


class Busy(UserError):
    """The thing is in use (a run already going, the database locked by another program)."""

    default_message = "This is busy right now. Try again in a moment."


class Unavailable(UserError):
    """A resource cannot serve the request now (vendor unreachable, key file unreadable, ...)."""

    default_message = "This is not available right now. Try again later."
