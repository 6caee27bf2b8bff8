"""One UserError base (core.errors): every exception a person can act on derives from it, so pages
catch exactly that and everything else shows as a bug."""
import importlib
import inspect

import pytest

from core import errors
from core.errors import Busy, InputError, PermissionDenied, Unavailable, UserError

# (module, class name, the UserError kind it must be)
USER_FACING = [
    ("core.passwords", "WeakPasswordError", InputError),
    ("core.schedule", "ScheduleError", InputError),
    ("core.importing", "ProfileImportError", InputError),
    ("core.segments", "SegmentRuleError", InputError),
    ("core.permissions", "PermissionDenied", PermissionDenied),
    ("storage.secrets", "SecretKeyError", Unavailable),
    ("storage.db", "DatabaseError", Unavailable),
    ("storage.db", "DatabaseBusyError", Busy),
    ("storage.db", "DatabaseTooNewError", Unavailable),
    ("jobs.runner", "AlreadyRunning", Busy),
    ("jobs.runner", "RunNotResumable", InputError),
    ("services.exports", "ExportInputError", InputError),
    ("services.enrichment", "EnrichmentInputError", InputError),
    ("services.connections", "ConnectionInputError", InputError),
    ("services.connections", "ConnectionInUseError", InputError),
    ("services.connections", "ConnectionUnavailableError", Unavailable),
    ("services.suppression", "SuppressionInputError", InputError),
    ("services.segments", "SegmentError", InputError),
    ("services.segments", "SegmentInUse", InputError),
    ("services.alerts", "AlertConfigError", InputError),
    ("services.users", "AccountInputError", InputError),
    ("services.users", "SignInRefused", PermissionDenied),
    ("connectors.errors", "ConnectorError", UserError),
    ("connectors.errors", "AuthError", InputError),
    ("connectors.errors", "PermissionMissingError", InputError),
    ("connectors.errors", "RecordRejectedError", InputError),
    ("connectors.errors", "RateLimitedError", Unavailable),
    ("connectors.errors", "TransientError", Unavailable),
    ("connectors.errors", "VendorError", Unavailable),
    ("connectors.errors", "InsufficientCreditsError", Unavailable),
    ("connectors.errors", "VendorUnreachableError", Unavailable),
]


@pytest.mark.parametrize("module,name,kind", USER_FACING, ids=[f"{m}.{n}" for m, n, _ in USER_FACING])
def test_user_facing_errors_share_the_base(module, name, kind):
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, kind)
    assert issubclass(cls, UserError)


def test_permission_denied_is_one_class_importable_from_permissions():
    from core import permissions
    assert permissions.PermissionDenied is errors.PermissionDenied


def test_user_message_is_the_text_and_defaults_exist():
    assert str(InputError("Pick a list.")) == "Pick a list." == InputError("Pick a list.").user_message
    for cls in (UserError, InputError, PermissionDenied, Busy, Unavailable):
        assert cls().user_message == cls.default_message and str(cls()) == cls.default_message


def test_former_value_errors_still_are_value_errors():
    # Call sites that catch ValueError around these keep working after the rebase.
    from core.schedule import ScheduleError
    from services.exports import ExportInputError
    assert issubclass(ScheduleError, ValueError) and issubclass(ExportInputError, ValueError)


def test_every_exception_class_in_our_layers_is_a_user_error_or_known_control_flow():
    """A new exception class must pick its kind (or be listed here as control flow, never shown)."""
    control_flow = {("jobs.runner", "RunCancelled")}
    modules = [m for m, _, _ in USER_FACING] + ["jobs.runner"]
    for module in set(modules):
        mod = importlib.import_module(module)
        for name, obj in vars(mod).items():
            if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == module:
                assert issubclass(obj, UserError) or (module, name) in control_flow, \
                    f"{module}.{name}: derive it from core.errors (or list it as control flow)"


def test_the_never_raised_export_errors_are_gone():
    from jobs import export_run
    assert not hasattr(export_run, "RemovalGuardError") and not hasattr(export_run, "LimitExceededError")
