"""Schedules as data, and when they fire next. Pure: no I/O, no Streamlit, no database.

Two kinds of schedule:

* The **system refresh** (:class:`SystemSchedule`): off, daily, or weekly on chosen days, at up to
  four local times a day, in one IANA time zone.
* An **item schedule** (export or enrichment): follow the system refresh, manual only, or its own
  cron expression (presets: hourly, daily at HH:MM, weekly on days at HH:MM) in a time zone.

Time-zone rule (both kinds): times are *wall-clock* times in the chosen zone, and each wall-clock
time fires at most once a day.
* A time that does not exist because clocks jump forward (02:30 on the last Sunday of March in
  Europe/Berlin) fires at the same instant the clock would have shown it without the jump, i.e.
  one hour later on the wall clock (03:30 CEST).
* A time that exists twice because clocks go back (02:30 on the last Sunday of October) fires once,
  at its first occurrence.
All instants handed out are timezone-aware UTC datetimes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import croniter

from core.errors import InputError

MAX_TIMES_PER_DAY = 4
SYSTEM_MODES = ("off", "daily", "weekly")
ITEM_MODES = ("system", "own", "manual")
ITEM_KINDS = ("export", "enrichment")
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
CRON_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_TIMEZONE = "UTC"
# How far ahead we look for the next firing of a schedule (a weekly schedule fires within 8 days).
_SEARCH_DAYS = 9
_TIME_PATTERN = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


class ScheduleError(InputError, ValueError):
    """An invalid schedule; the message is a plain sentence for the user."""


def utc(dt: datetime) -> datetime:
    """Aware UTC; naive datetimes are taken to be UTC already (that is how we store them)."""
    if dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or DEFAULT_TIMEZONE)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(f"Unknown time zone {name!r}. Pick one from the list, e.g. Europe/Berlin.") from exc


def timezone_names() -> list[str]:
    return sorted(available_timezones())


def parse_time(text: str) -> time:
    match = _TIME_PATTERN.match(str(text).strip())
    if not match:
        raise ScheduleError(f"{text!r} is not a time of day; use HH:MM, e.g. 06:30.")
    return time(int(match.group(1)), int(match.group(2)))


def format_time(value: time) -> str:
    return f"{value.hour:02d}:{value.minute:02d}"


def local_to_utc(day: date, at: time, tz: ZoneInfo) -> datetime:
    """Wall-clock ``day at`` in ``tz`` as UTC (fold=0: first occurrence; gaps shift forward)."""
    return datetime.combine(day, at, tzinfo=tz).replace(fold=0).astimezone(timezone.utc)


# -- system refresh ----------------------------------------------------------------------------
@dataclass(frozen=True)
class SystemSchedule:
    mode: str = "off"                                  # off | daily | weekly
    days: tuple[int, ...] = ()                         # 0 = Monday … 6 = Sunday (weekly only)
    times: tuple[str, ...] = ("06:00",)                # "HH:MM", up to four
    timezone: str = DEFAULT_TIMEZONE

    def validated(self) -> "SystemSchedule":
        if self.mode not in SYSTEM_MODES:
            raise ScheduleError("The schedule must be off, daily or weekly.")
        zone(self.timezone)
        times = sorted({format_time(parse_time(t)) for t in self.times})
        if self.mode != "off" and not times:
            raise ScheduleError("Choose at least one time of day.")
        if len(times) > MAX_TIMES_PER_DAY:
            raise ScheduleError(f"Choose at most {MAX_TIMES_PER_DAY} times a day.")
        days = tuple(sorted({int(d) for d in self.days}))
        if any(d < 0 or d > 6 for d in days):
            raise ScheduleError("Days of the week go from Monday (0) to Sunday (6).")
        if self.mode == "weekly" and not days:
            raise ScheduleError("Choose at least one day of the week.")
        return SystemSchedule(self.mode, days if self.mode == "weekly" else (), tuple(times), self.timezone)

    def to_dict(self) -> dict:
        return {"mode": self.mode, "days": list(self.days), "times": list(self.times), "timezone": self.timezone}

    @classmethod
    def from_dict(cls, data: dict | None) -> "SystemSchedule":
        data = data or {}
        return cls(
            mode=data.get("mode", "off"),
            days=tuple(data.get("days") or ()),
            times=tuple(data.get("times") or ("06:00",)),
            timezone=data.get("timezone") or DEFAULT_TIMEZONE,
        )

    def describe(self) -> str:
        if self.mode == "off":
            return "Off"
        times = ", ".join(self.times)
        if self.mode == "daily":
            return f"Daily at {times} ({self.timezone})"
        days = ", ".join(DAY_NAMES[d] for d in self.days)
        return f"Weekly on {days} at {times} ({self.timezone})"


def system_slots_between(schedule: SystemSchedule, start: datetime, end: datetime) -> list[datetime]:
    """Firing instants (UTC) of the system schedule in the half-open interval (start, end]."""
    if schedule.mode == "off":
        return []
    start, end = utc(start), utc(end)
    tz = zone(schedule.timezone)
    times = [parse_time(t) for t in schedule.times]
    first_day = start.astimezone(tz).date() - timedelta(days=1)
    last_day = end.astimezone(tz).date() + timedelta(days=1)
    slots: set[datetime] = set()
    day = first_day
    while day <= last_day:
        if schedule.mode == "daily" or day.weekday() in schedule.days:
            for at in times:
                instant = local_to_utc(day, at, tz)
                if start < instant <= end:
                    slots.add(instant)
        day += timedelta(days=1)
    return sorted(slots)


def next_system_runs(schedule: SystemSchedule, after: datetime, count: int = 5) -> list[datetime]:
    """The next ``count`` firing instants (UTC) strictly after ``after``."""
    if schedule.mode == "off":
        return []
    out: list[datetime] = []
    window_start = utc(after)
    while len(out) < count:
        window_end = window_start + timedelta(days=_SEARCH_DAYS)
        found = system_slots_between(schedule, window_start, window_end)
        if not found and schedule.mode != "off":
            break  # cannot happen for a validated schedule; guards an endless loop
        out.extend(found)
        window_start = window_end
    return out[:count]


# -- item schedules ----------------------------------------------------------------------------
def preset_cron(preset: str, at: str | None = None, days: list[int] | tuple[int, ...] | None = None,
                minute: int = 0) -> str:
    """A cron expression for a preset: 'hourly' (at ``minute``), 'daily' at HH:MM, 'weekly' days at HH:MM."""
    if preset == "hourly":
        if not 0 <= int(minute) <= 59:
            raise ScheduleError("The minute past the hour must be between 0 and 59.")
        return f"{int(minute)} * * * *"
    moment = parse_time(at or "06:00")
    if preset == "daily":
        return f"{moment.minute} {moment.hour} * * *"
    if preset == "weekly":
        chosen = sorted({int(d) for d in (days or ())})
        if not chosen:
            raise ScheduleError("Choose at least one day of the week.")
        return f"{moment.minute} {moment.hour} * * {','.join(CRON_DAY_NAMES[d] for d in chosen)}"
    raise ScheduleError(f"Unknown preset {preset!r}; use hourly, daily or weekly.")


def validate_cron(expression: str) -> str:
    expr = " ".join(str(expression or "").split())
    if len(expr.split(" ")) != 5:
        raise ScheduleError("A cron expression has five fields: minute hour day-of-month month day-of-week, "
                            "e.g. '30 6 * * mon-fri'.")
    if not croniter.is_valid(expr):
        raise ScheduleError(f"'{expr}' is not a valid cron expression.")
    return expr


def next_cron_runs(expression: str, tz_name: str | None, after: datetime, count: int = 5) -> list[datetime]:
    """Next ``count`` instants (UTC) strictly after ``after`` at which the cron expression fires.

    croniter walks wall-clock times (naive, in the zone); we convert each with the module's rule,
    so a daily job fires once on the autumn change and an hourly job does not fire twice in the
    repeated hour.
    """
    expr = validate_cron(expression)
    tz = zone(tz_name)
    after_utc = utc(after)
    local_after = after_utc.astimezone(tz).replace(tzinfo=None) - timedelta(hours=3)  # margin for DST shifts
    walker = croniter(expr, local_after)
    out: list[datetime] = []
    for _ in range(count * 50 + 200):  # bounded: a 5-field cron fires at least once a year or never
        wall: datetime = walker.get_next(datetime)
        instant = wall.replace(tzinfo=tz, fold=0).astimezone(timezone.utc)
        if instant <= after_utc or (out and instant <= out[-1]):
            continue
        out.append(instant)
        if len(out) >= count:
            break
    return out


def describe_cron(expression: str) -> str:
    """A short human reading of common cron shapes; the raw expression otherwise."""
    parts = expression.split()
    if len(parts) != 5:
        return expression
    minute, hour, dom, month, dow = parts
    if minute.isdigit() and hour == "*" and dom == month == dow == "*":
        return f"Hourly at :{int(minute):02d}"
    if minute.isdigit() and hour.isdigit() and dom == "*" and month == "*":
        at = f"{int(hour):02d}:{int(minute):02d}"
        if dow == "*":
            return f"Daily at {at}"
        names = [n for n in dow.split(",") if n in CRON_DAY_NAMES]
        if names and len(names) == len(dow.split(",")):
            return "Weekly on " + ", ".join(DAY_NAMES[CRON_DAY_NAMES.index(n)] for n in names) + f" at {at}"
    return f"Cron '{expression}'"


@dataclass(frozen=True)
class ItemSchedule:
    kind: str
    target_id: int
    mode: str = "system"                 # system | own | manual
    cron: str | None = None
    timezone: str = DEFAULT_TIMEZONE
    next_run_at: datetime | None = None  # UTC
    last_run_at: datetime | None = None  # UTC
    extra: dict = field(default_factory=dict)

    def validated(self) -> "ItemSchedule":
        if self.kind not in ITEM_KINDS:
            raise ScheduleError(f"Only exports and enrichments have schedules (not {self.kind!r}).")
        if self.mode not in ITEM_MODES:
            raise ScheduleError("The schedule must follow the system refresh, be its own, or be manual only.")
        zone(self.timezone)
        cron = validate_cron(self.cron) if self.mode == "own" else None
        return ItemSchedule(self.kind, int(self.target_id), self.mode, cron, self.timezone or DEFAULT_TIMEZONE,
                            self.next_run_at, self.last_run_at)

    def describe(self) -> str:
        if self.mode == "system":
            return "With the system refresh"
        if self.mode == "manual":
            return "Manual only"
        return f"{describe_cron(self.cron or '')} ({self.timezone})"
