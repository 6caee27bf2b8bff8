"""Segment rules: a pydantic model of nested AND/OR groups, compiled to one parameterised DuckDB query.

Pure code (no duckdb import): the compiler turns a :class:`SegmentRule` plus the attribute
catalogue into a :class:`SegmentQuery` (SQL text + ``?`` parameters). Identifiers come ONLY from
the catalogue entries passed in (unknown keys raise :class:`SegmentRuleError`); values are ONLY
parameters, never spliced into the SQL text.

Semantics (``core.segment_eval`` implements exactly the same in plain Python):

* Text comparisons are case-insensitive: both sides go through DuckDB ``lower()`` (per code point;
  e.g. "Straße" does not equal "STRASSE", "ÄBC" equals "äbc"). No trimming.
* "Empty" text means NULL or ''. A number, date or boolean is empty when it is NULL or cannot be
  read as that type (``TRY_CAST``).
* Missing values (NULL) never satisfy a condition, EXCEPT the negative ones: text "not equals" and
  number "≠" include profiles whose value is empty ("country is not Germany" includes profiles with
  no country), and of course "is empty".
* Booleans: "is true"/"is false" are strict — an empty value is neither. Combine with "is empty" in
  an OR group for "is false or unknown".
* Dates have day precision in the rule and are compared with the stored timestamp:
  before D = earlier than D 00:00; after D = from D+1 00:00; between D1 and D2 = D1 00:00 up to the
  end of D2 (both days included); within the last N days = from (today − N) 00:00 up to the end of
  today (future dates excluded); more than N days ago = earlier than (today − N) 00:00. "today" is
  passed in by the caller (the storage layer uses the UTC date), so counts are stable within a day.
* Number "between" includes both ends; the two values may be given in either order.
* An empty group is ignored (it neither narrows nor widens its parent); a rule with no conditions at
  all matches every profile.
"""
from __future__ import annotations

import enum
import math
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Iterable, Iterator, Literal, Mapping, Protocol, Union

from core.errors import InputError

if TYPE_CHECKING:   # for annotations and linters: at run time built on first use (_models, below)
    from pydantic import ValidationError

    from core.segments import Condition, RuleGroup, SegmentRule

MAX_DEPTH = 4                 # root group = depth 1; "groups inside groups" is depth 2+
MAX_CONDITIONS = 100
MAX_LIST_VALUES = 1000
MAX_TEXT_LEN = 1000
MAX_DAYS = 36_500
PROFILE_TABLE = "profiles"
PROFILE_ALIAS = "p"
KEY_COLUMN = "customer_id"
LIKE_SPECIAL = ("%", "_", "\\")
MAX_OR_CHAIN = 50             # in_list with more values compiles to lower(x) IN (...)


class SegmentRuleError(InputError, ValueError):
    """The rule cannot be used as it is. The message is a plain sentence for the user."""


class Operator(str, enum.Enum):
    # text
    EQUALS = "equals"
    NOT_EQUALS = "not_equals"
    IN_LIST = "in_list"
    CONTAINS = "contains"
    STARTS_WITH = "starts_with"
    ENDS_WITH = "ends_with"
    # any type
    IS_EMPTY = "is_empty"
    IS_NOT_EMPTY = "is_not_empty"
    # number
    EQ = "eq"
    NE = "ne"
    LT = "lt"
    LE = "le"
    GT = "gt"
    GE = "ge"
    BETWEEN = "between"
    # date
    BEFORE = "before"
    AFTER = "after"
    DATE_BETWEEN = "date_between"
    IN_LAST_DAYS = "in_last_days"
    MORE_THAN_DAYS_AGO = "more_than_days_ago"
    # boolean
    IS_TRUE = "is_true"
    IS_FALSE = "is_false"


O = Operator
OPERATORS_BY_TYPE: dict[str, tuple[Operator, ...]] = {
    "text": (O.EQUALS, O.NOT_EQUALS, O.IN_LIST, O.CONTAINS, O.STARTS_WITH, O.ENDS_WITH,
             O.IS_EMPTY, O.IS_NOT_EMPTY),
    "number": (O.EQ, O.NE, O.LT, O.LE, O.GT, O.GE, O.BETWEEN, O.IS_EMPTY, O.IS_NOT_EMPTY),
    "date": (O.BEFORE, O.AFTER, O.DATE_BETWEEN, O.IN_LAST_DAYS, O.MORE_THAN_DAYS_AGO,
             O.IS_EMPTY, O.IS_NOT_EMPTY),
    "boolean": (O.IS_TRUE, O.IS_FALSE, O.IS_EMPTY),
}

OPERATOR_LABELS: dict[Operator, str] = {
    O.EQUALS: "equals", O.NOT_EQUALS: "does not equal", O.IN_LIST: "is one of", O.CONTAINS: "contains",
    O.STARTS_WITH: "starts with", O.ENDS_WITH: "ends with", O.IS_EMPTY: "is empty",
    O.IS_NOT_EMPTY: "is not empty", O.EQ: "=", O.NE: "≠", O.LT: "<", O.LE: "≤", O.GT: ">", O.GE: "≥",
    O.BETWEEN: "is between", O.BEFORE: "is before", O.AFTER: "is after", O.DATE_BETWEEN: "is between",
    O.IN_LAST_DAYS: "is within the last (days)", O.MORE_THAN_DAYS_AGO: "is more than (days) ago",
    O.IS_TRUE: "is true", O.IS_FALSE: "is false",
}

# What each operator needs as its value(s).
NO_VALUE = {O.IS_EMPTY, O.IS_NOT_EMPTY, O.IS_TRUE, O.IS_FALSE}
TEXT_VALUE = {O.EQUALS, O.NOT_EQUALS, O.CONTAINS, O.STARTS_WITH, O.ENDS_WITH}
NUMBER_VALUE = {O.EQ, O.NE, O.LT, O.LE, O.GT, O.GE}
DATE_VALUE = {O.BEFORE, O.AFTER}
DAYS_VALUE = {O.IN_LAST_DAYS, O.MORE_THAN_DAYS_AGO}


def value_shape(op: Operator) -> str:
    """'none' | 'text' | 'text_list' | 'number' | 'number_range' | 'date' | 'date_range' | 'days'."""
    if op in NO_VALUE:
        return "none"
    if op in TEXT_VALUE:
        return "text"
    if op is O.IN_LIST:
        return "text_list"
    if op in NUMBER_VALUE:
        return "number"
    if op is O.BETWEEN:
        return "number_range"
    if op in DATE_VALUE:
        return "date"
    if op is O.DATE_BETWEEN:
        return "date_range"
    return "days"


# -- value normalisation ----------------------------------------------------------------------
def _text(value: Any, what: str = "a value") -> str:
    if not isinstance(value, str) or value == "":
        raise ValueError(f"Enter {what}.")
    if len(value) > MAX_TEXT_LEN:
        raise ValueError(f"Values are limited to {MAX_TEXT_LEN} characters.")
    return value


def _number(value: Any) -> float:
    if isinstance(value, bool) or value is None:
        raise ValueError("Enter a number.")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not a number.") from None
    if not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise ValueError("Enter a finite number.")
    return float(value)


def _date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip()[:10])
        except ValueError:
            raise ValueError(f"{value!r} is not a date (use YYYY-MM-DD).") from None
    raise ValueError("Enter a date.")


def _days(value: Any) -> int:
    number = _number(value)
    if number != int(number) or not 0 <= number <= MAX_DAYS:
        raise ValueError(f"Enter a whole number of days between 0 and {MAX_DAYS}.")
    return int(number)


# The rule models are pydantic models. pydantic costs ~0.1 s to import (and each model's schema more), which a
# process that only compiles a static segment's members (a CLI export run: storage.segments.member_query)
# never needs: the models are built on first use (PEP 562: `from core.segments import SegmentRule` or
# `rules.SegmentRule` builds them; the functions below that may take a dict or JSON call _models() first),
# once per process, under a lock (two builds would give two classes and break isinstance).
_MODEL_NAMES = ("Condition", "RuleGroup", "SegmentRule", "ValidationError")
_models_lock = threading.Lock()


def _models() -> None:
    if "SegmentRule" in globals():
        return
    with _models_lock:
        if "SegmentRule" not in globals():
            _build_models()


def __getattr__(name: str):
    if name in _MODEL_NAMES:
        _models()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _build_models() -> None:
    from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

    class Condition(BaseModel):
        """One test on one attribute, e.g. ``profile.country equals "Germany"``."""

        model_config = ConfigDict(extra="forbid")
        kind: Literal["condition"] = "condition"
        attribute: str = Field(min_length=1, max_length=300)
        operator: Operator
        value: Any = None
        value2: Any = None

        @model_validator(mode="after")
        def _normalise_values(self) -> "Condition":
            shape = value_shape(self.operator)
            v, v2 = self.value, self.value2
            if shape == "none":
                v = v2 = None
            elif shape == "text":
                v, v2 = _text(v), None
            elif shape == "text_list":
                if isinstance(v, str):
                    v = [part.strip() for part in v.split(",") if part.strip()]
                if not isinstance(v, (list, tuple)) or not v:
                    raise ValueError("Enter at least one value for the list.")
                if len(v) > MAX_LIST_VALUES:
                    raise ValueError(f"Lists are limited to {MAX_LIST_VALUES} values.")
                v, v2 = [_text(item) for item in v], None
            elif shape == "number":
                v, v2 = _number(v), None
            elif shape == "number_range":
                low, high = _number(v), _number(v2)
                v, v2 = min(low, high), max(low, high)
            elif shape == "date":
                v, v2 = _date(v), None
            elif shape == "date_range":
                first, last = _date(v), _date(v2)
                v, v2 = min(first, last), max(first, last)
            else:
                v, v2 = _days(v), None
            self.value, self.value2 = v, v2
            return self


    class RuleGroup(BaseModel):
        """Conditions and sub-groups joined by AND or OR. An empty group is ignored."""

        model_config = ConfigDict(extra="forbid")
        kind: Literal["group"] = "group"
        join: Literal["and", "or"] = "and"
        items: list[Annotated[Union[Condition, "RuleGroup"], Field(discriminator="kind")]] = Field(default_factory=list)


    RuleGroup.model_rebuild()


    class SegmentRule(BaseModel):
        """The stored rule of a segment (``segments.rule_json``)."""

        model_config = ConfigDict(extra="forbid")
        version: Literal[1] = 1
        root: RuleGroup = Field(default_factory=RuleGroup)

        @model_validator(mode="after")
        def _limits(self) -> "SegmentRule":
            if depth(self.root) > MAX_DEPTH:
                raise ValueError(f"Groups can be nested at most {MAX_DEPTH} levels deep.")
            if sum(1 for _ in iter_conditions(self.root)) > MAX_CONDITIONS:
                raise ValueError(f"A segment can have at most {MAX_CONDITIONS} conditions.")
            return self

        def to_json(self) -> str:
            return self.model_dump_json()

        @classmethod
        def parse(cls, data: "SegmentRule | Mapping | str") -> "SegmentRule":
            """Accept a rule, a dict or JSON text; invalid input raises SegmentRuleError in plain words."""
            if isinstance(data, SegmentRule):
                return data
            try:
                if isinstance(data, str):
                    return cls.model_validate_json(data)
                return cls.model_validate(data)
            except ValidationError as exc:
                raise SegmentRuleError(_plain_validation_message(exc)) from None

    for model in (Condition, RuleGroup, SegmentRule):
        model.__qualname__ = model.__name__
    globals().update(Condition=Condition, RuleGroup=RuleGroup, SegmentRule=SegmentRule,
                     ValidationError=ValidationError)


def new_condition(attribute: str, operator: Operator | str, value: Any = None, value2: Any = None) -> Condition:
    """Build a condition; invalid values raise SegmentRuleError with a plain sentence."""
    _models()
    try:
        return Condition(attribute=attribute, operator=operator, value=value, value2=value2)
    except ValidationError as exc:
        raise SegmentRuleError(_plain_validation_message(exc).replace("The rule is not valid: ", "")) from None


def _plain_validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    message = first.get("msg", "invalid rule")
    message = message.removeprefix("Value error, ")
    return f"The rule is not valid: {message}"


def depth(group: RuleGroup) -> int:
    return 1 + max((depth(item) for item in group.items if isinstance(item, RuleGroup)), default=0)


def iter_conditions(group: RuleGroup) -> Iterator[Condition]:
    for item in group.items:
        if isinstance(item, Condition):
            yield item
        else:
            yield from iter_conditions(item)


def iter_conditions_with_paths(group: RuleGroup, path: tuple[int, ...] = ()) -> Iterator[tuple[tuple[int, ...], Condition]]:
    """(path, condition) in reading order; a path is the item indexes from the root."""
    for index, item in enumerate(group.items):
        if isinstance(item, Condition):
            yield path + (index,), item
        else:
            yield from iter_conditions_with_paths(item, path + (index,))


def iter_groups_with_paths(group: RuleGroup, path: tuple[int, ...] = ()) -> Iterator[tuple[tuple[int, ...], RuleGroup]]:
    yield path, group
    for index, item in enumerate(group.items):
        if isinstance(item, RuleGroup):
            yield from iter_groups_with_paths(item, path + (index,))


def attribute_keys(rule: SegmentRule) -> list[str]:
    seen: dict[str, None] = {}
    for cond in iter_conditions(rule.root):
        seen.setdefault(cond.attribute, None)
    return list(seen)


def is_empty_group(group: RuleGroup) -> bool:
    return all(isinstance(item, RuleGroup) and is_empty_group(item) for item in group.items)


# -- editing helpers for the builder (pure: each returns a new rule) ------------------------------
def _copy(rule: SegmentRule) -> SegmentRule:
    return SegmentRule.model_validate(rule.model_dump())


def _group_at(root: RuleGroup, path: Iterable[int]) -> RuleGroup:
    node: Any = root
    for index in path:
        node = node.items[index]
    if not isinstance(node, RuleGroup):
        raise SegmentRuleError("That group no longer exists.")
    return node


def add_item(rule: SegmentRule, group_path: tuple[int, ...], item: Condition | RuleGroup) -> SegmentRule:
    new = _copy(rule)
    try:
        _group_at(new.root, group_path).items.append(item)
    except IndexError:
        raise SegmentRuleError("That group no longer exists.") from None
    return SegmentRule.parse(new.model_dump())


def replace_item(rule: SegmentRule, path: tuple[int, ...], item: Condition | RuleGroup) -> SegmentRule:
    if not path:
        raise SegmentRuleError("Choose a condition to change.")
    new = _copy(rule)
    try:
        _group_at(new.root, path[:-1]).items[path[-1]] = item
    except IndexError:
        raise SegmentRuleError("That condition no longer exists.") from None
    return SegmentRule.parse(new.model_dump())


def remove_item(rule: SegmentRule, path: tuple[int, ...]) -> SegmentRule:
    if not path:
        return SegmentRule()
    new = _copy(rule)
    try:
        del _group_at(new.root, path[:-1]).items[path[-1]]
    except IndexError:
        raise SegmentRuleError("That item no longer exists.") from None
    return new


def set_join(rule: SegmentRule, group_path: tuple[int, ...], join: str) -> SegmentRule:
    new = _copy(rule)
    _group_at(new.root, group_path).join = "or" if join == "or" else "and"
    return new


# -- compilation --------------------------------------------------------------------------------
class AttributeLike(Protocol):
    key: str
    label: str
    type: str
    table_name: str
    column_name: str


def quote_ident(name: str) -> str:
    """Same quoting as storage.db.quote_ident (core may not import storage/duckdb)."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class SegmentQuery:
    """One compiled segment: FROM (profiles + each used enrichment table LEFT JOINed once) and WHERE."""

    from_sql: str
    where_sql: str
    params: tuple

    def members(self) -> tuple[str, list]:
        """SQL selecting the ``customer_id`` of every member (wrap as ``IN (<sql>)``)."""
        return (f"SELECT {PROFILE_ALIAS}.{KEY_COLUMN} AS {KEY_COLUMN} FROM {self.from_sql} WHERE {self.where_sql}",
                list(self.params))

    def count(self) -> tuple[str, list]:
        return f"SELECT count(*) FROM {self.from_sql} WHERE {self.where_sql}", list(self.params)


@dataclass
class SqlBuilder:
    """Compiles rule nodes against a catalogue; collects joins and parameters in text order.

    Several rules may share one builder (one scan that evaluates many predicates), as long as the
    caller emits the predicate texts in the order it asked for them.
    """

    attributes: Mapping[str, AttributeLike]
    today: date
    params: list = field(default_factory=list)
    _aliases: dict[str, str] = field(default_factory=dict)

    def alias_for(self, table_name: str) -> str:
        if table_name == PROFILE_TABLE:
            return PROFILE_ALIAS
        if table_name not in self._aliases:
            self._aliases[table_name] = f"e{len(self._aliases) + 1}"
        return self._aliases[table_name]

    def from_sql(self) -> str:
        parts = [f"{quote_ident(PROFILE_TABLE)} AS {PROFILE_ALIAS}"]
        for table, alias in self._aliases.items():
            parts.append(f"LEFT JOIN {quote_ident(table)} AS {alias} "
                         f"ON {alias}.{KEY_COLUMN} = {PROFILE_ALIAS}.{KEY_COLUMN}")
        return " ".join(parts)

    def attribute(self, key: str) -> AttributeLike:
        attr = self.attributes.get(key)
        if attr is None:
            raise SegmentRuleError(
                f"The attribute {key!r} is not available (it may belong to an enrichment that was "
                "removed or deactivated). Remove that condition and try again.")
        if attr.type not in OPERATORS_BY_TYPE:
            raise SegmentRuleError(f"The attribute {attr.label!r} has an unsupported type {attr.type!r}.")
        return attr

    def column(self, attr: AttributeLike) -> str:
        return f"{self.alias_for(attr.table_name)}.{quote_ident(attr.column_name)}"

    def _param(self, value: Any) -> str:
        self.params.append(value)
        return "?"

    def _text_equals(self, x: str, value: str) -> str:
        # ILIKE without wildcards is the same test as lower(x) = lower(v) (DuckDB lowers both sides
        # for non-ASCII text) but skips allocating a lowered copy of every value: ~3x faster on
        # high-cardinality columns such as email. Values holding LIKE wildcards use lower().
        if _like_literal_ok(value):
            return f"{x} ILIKE {self._param(value)}"
        return f"lower({x}) = lower({self._param(value)})"

    def predicate(self, node: Condition | RuleGroup) -> str:
        if isinstance(node, RuleGroup):
            parts = [self.predicate(item) for item in node.items
                     if not (isinstance(item, RuleGroup) and is_empty_group(item))]
            if not parts:
                return "TRUE"
            if len(parts) == 1:
                return parts[0]
            return "(" + f" {node.join.upper()} ".join(parts) + ")"
        return self.condition(node)

    def condition(self, cond: Condition) -> str:
        attr = self.attribute(cond.attribute)
        op = cond.operator
        if op not in OPERATORS_BY_TYPE[attr.type]:
            raise SegmentRuleError(
                f"“{OPERATOR_LABELS[op]}” cannot be used with {attr.label!r} ({attr.type}).")
        col = self.column(attr)
        kind = attr.type
        if kind == "text":
            x = f"CAST({col} AS VARCHAR)"
            if op is O.IS_EMPTY:
                return f"({x} IS NULL OR {x} = '')"
            if op is O.IS_NOT_EMPTY:
                return f"({x} IS NOT NULL AND {x} <> '')"
            if op is O.EQUALS:
                return f"({self._text_equals(x, cond.value)})"
            if op is O.NOT_EQUALS:
                return f"({x} IS NULL OR NOT ({self._text_equals(x, cond.value)}))"
            if op is O.STARTS_WITH and _like_literal_ok(cond.value):
                return f"({x} ILIKE {self._param(cond.value + '%')})"
            if op is O.IN_LIST:
                if len(cond.value) <= MAX_OR_CHAIN:
                    # An OR chain of equality tests runs ~2.5x faster than lower(x) IN (...) in DuckDB.
                    return "(" + " OR ".join(self._text_equals(x, v) for v in cond.value) + ")"
                marks = ", ".join(f"lower({self._param(v)})" for v in cond.value)
                return f"(lower({x}) IN ({marks}))"
            fn = {O.CONTAINS: "contains", O.STARTS_WITH: "starts_with", O.ENDS_WITH: "ends_with"}[op]
            return f"{fn}(lower({x}), lower({self._param(cond.value)}))"
        if kind == "number":
            x = f"TRY_CAST({col} AS DOUBLE)"
            if op is O.IS_EMPTY:
                return f"({x} IS NULL)"
            if op is O.IS_NOT_EMPTY:
                return f"({x} IS NOT NULL)"
            if op is O.BETWEEN:
                return f"({x} BETWEEN {self._param(cond.value)} AND {self._param(cond.value2)})"
            if op is O.NE:
                return f"({x} IS NULL OR {x} <> {self._param(cond.value)})"
            sym = {O.EQ: "=", O.LT: "<", O.LE: "<=", O.GT: ">", O.GE: ">="}[op]
            return f"({x} {sym} {self._param(cond.value)})"
        if kind == "date":
            x = f"TRY_CAST({col} AS TIMESTAMP)"
            if op is O.IS_EMPTY:
                return f"({x} IS NULL)"
            if op is O.IS_NOT_EMPTY:
                return f"({x} IS NOT NULL)"
            low, high = date_bounds(cond, self.today)
            parts = []
            if low is not None:
                parts.append(f"{x} >= {self._param(low)}")
            if high is not None:
                parts.append(f"{x} < {self._param(high)}")
            return "(" + " AND ".join(parts) + ")"
        x = f"TRY_CAST({col} AS BOOLEAN)"
        return {O.IS_TRUE: f"({x} IS TRUE)", O.IS_FALSE: f"({x} IS FALSE)", O.IS_EMPTY: f"({x} IS NULL)"}[op]


def _like_literal_ok(value: str) -> bool:
    return not any(ch in value for ch in LIKE_SPECIAL)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day)


def date_bounds(cond: Condition, today: date) -> tuple[datetime | None, datetime | None]:
    """[low, high) as naive timestamps for a date condition (see the module docstring)."""
    op = cond.operator
    one_day = timedelta(days=1)
    if op is O.BEFORE:
        return None, _midnight(cond.value)
    if op is O.AFTER:
        return _midnight(cond.value + one_day), None
    if op is O.DATE_BETWEEN:
        return _midnight(cond.value), _midnight(cond.value2 + one_day)
    if op is O.IN_LAST_DAYS:
        return _midnight(today - timedelta(days=cond.value)), _midnight(today + one_day)
    if op is O.MORE_THAN_DAYS_AGO:
        return None, _midnight(today - timedelta(days=cond.value))
    raise SegmentRuleError(f"“{OPERATOR_LABELS[op]}” is not a date comparison.")


def compile_rule(rule: SegmentRule | Mapping | str, attributes: Mapping[str, AttributeLike], *,
                 today: date) -> SegmentQuery:
    """Compile a rule to ONE parameterised query over profiles (+ LEFT JOINed enrichment tables)."""
    _models()
    rule = SegmentRule.parse(rule)
    builder = SqlBuilder(attributes, today)
    where = builder.predicate(rule.root)
    return SegmentQuery(builder.from_sql(), where, tuple(builder.params))


@dataclass(frozen=True)
class CountsQuery:
    """One scan that counts the whole rule and each condition on its own."""

    sql: str
    params: tuple
    condition_paths: tuple[tuple[int, ...], ...]


def compile_counts(rule: SegmentRule | Mapping | str, attributes: Mapping[str, AttributeLike], *,
                   today: date) -> CountsQuery:
    """The rule's members and each condition's count alone, in ONE scan.

    Each condition is evaluated once per profile as a boolean column; the whole rule is then the
    AND/OR of those columns (NULL counts as false, which is what WHERE does with AND/OR alone).
    """
    _models()
    rule = SegmentRule.parse(rule)
    builder = SqlBuilder(attributes, today)
    conditions = list(iter_conditions_with_paths(rule.root))
    if not conditions:
        return CountsQuery(f"SELECT count(*) FROM {builder.from_sql()}", (), ())
    inner = [f"coalesce({builder.condition(cond)}, FALSE) AS c{i}" for i, (_, cond) in enumerate(conditions)]
    column_of = {path: f"c{i}" for i, (path, _) in enumerate(conditions)}

    def combine(group: RuleGroup, path: tuple[int, ...]) -> str:
        parts = []
        for index, item in enumerate(group.items):
            if isinstance(item, Condition):
                parts.append(column_of[path + (index,)])
            elif not is_empty_group(item):
                parts.append(combine(item, path + (index,)))
        if not parts:
            return "TRUE"
        return parts[0] if len(parts) == 1 else "(" + f" {group.join.upper()} ".join(parts) + ")"

    outer = [f"count(*) FILTER (WHERE {combine(rule.root, ())})"]
    outer += [f"count(*) FILTER (WHERE c{i})" for i in range(len(conditions))]
    sql = f"SELECT {', '.join(outer)} FROM (SELECT {', '.join(inner)} FROM {builder.from_sql()}) AS t"
    return CountsQuery(sql, tuple(builder.params), tuple(path for path, _ in conditions))


# -- plain-language description -----------------------------------------------------------------
def describe_condition(cond: Condition, attributes: Mapping[str, AttributeLike]) -> str:
    attr = attributes.get(cond.attribute)
    label = attr.label if attr is not None else f"{cond.attribute} (not available)"
    op = cond.operator
    shape = value_shape(op)
    if shape == "none":
        return f"{label} {OPERATOR_LABELS[op]}"
    if shape == "text_list":
        return f"{label} is one of " + ", ".join(f"“{v}”" for v in cond.value)
    if shape in ("number_range", "date_range"):
        return f"{label} is between {_fmt(cond.value)} and {_fmt(cond.value2)}"
    if op is O.IN_LAST_DAYS:
        return f"{label} is within the last {cond.value} days"
    if op is O.MORE_THAN_DAYS_AGO:
        return f"{label} is more than {cond.value} days ago"
    value = f"“{cond.value}”" if shape == "text" else _fmt(cond.value)
    return f"{label} {OPERATOR_LABELS[op]} {value}"


def _fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return f"{int(value):,}"
    return str(value)


def describe(rule: SegmentRule, attributes: Mapping[str, AttributeLike]) -> str:
    def walk(group: RuleGroup) -> str:
        parts = []
        for item in group.items:
            if isinstance(item, Condition):
                parts.append(describe_condition(item, attributes))
            elif not is_empty_group(item):
                parts.append("(" + walk(item) + ")")
        return f" {group.join.upper()} ".join(parts)
    return walk(rule.root) or "Everyone"
