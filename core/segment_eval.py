"""A plain-Python evaluator of segment rules with exactly the semantics of the SQL compiler.

Used by the property test (DuckDB result == this evaluator on random profiles and rules) and handy
for explaining a single profile. Never used to compute membership in the product: that runs in DuckDB.

``row`` maps attribute keys to Python values as DuckDB would return them after its casts: text as
``str``, numbers as ``int``/``float``, dates as ``date``/``datetime``, booleans as ``bool``; ``None``
is NULL. Values that DuckDB's TRY_CAST could not read should be passed as ``None``.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any, Mapping

from core.segments import (
    O,
    AttributeLike,
    Condition,
    RuleGroup,
    SegmentRule,
    SegmentRuleError,
    date_bounds,
    is_empty_group,
)


def duck_lower(text: str) -> str:
    """DuckDB's lower(): per code point (no final-sigma context), and 'İ' lowers to plain 'i'."""
    return "".join("i" if ch == "\u0130" else ch.lower() for ch in text)


def matches(rule: SegmentRule | Mapping | str, attributes: Mapping[str, AttributeLike], row: Mapping[str, Any],
            *, today: date) -> bool:
    rule = SegmentRule.parse(rule)
    return _group(rule.root, attributes, row, today)


def _group(group: RuleGroup, attributes, row, today) -> bool:
    results = []
    for item in group.items:
        if isinstance(item, RuleGroup):
            if is_empty_group(item):
                continue
            results.append(_group(item, attributes, row, today))
        else:
            results.append(condition_matches(item, attributes, row, today=today))
    if not results:
        return True
    return all(results) if group.join == "and" else any(results)


def condition_matches(cond: Condition, attributes: Mapping[str, AttributeLike], row: Mapping[str, Any], *,
                      today: date) -> bool:
    attr = attributes.get(cond.attribute)
    if attr is None:
        raise SegmentRuleError(f"The attribute {cond.attribute!r} is not available.")
    value = row.get(cond.attribute)
    op = cond.operator
    if attr.type == "text":
        return _text(op, None if value is None else str(value), cond)
    if attr.type == "number":
        return _number(op, value, cond)
    if attr.type == "date":
        return _date(op, value, cond, today)
    return {O.IS_TRUE: value is True, O.IS_FALSE: value is False, O.IS_EMPTY: value is None}[op]


def _text(op: O, value: str | None, cond: Condition) -> bool:
    if op is O.IS_EMPTY:
        return value is None or value == ""
    if op is O.IS_NOT_EMPTY:
        return value is not None and value != ""
    if op is O.NOT_EQUALS:
        return value is None or duck_lower(value) != duck_lower(cond.value)
    if value is None:
        return False
    low = duck_lower(value)
    if op is O.EQUALS:
        return low == duck_lower(cond.value)
    if op is O.IN_LIST:
        return low in {duck_lower(v) for v in cond.value}
    if op is O.CONTAINS:
        return duck_lower(cond.value) in low
    if op is O.STARTS_WITH:
        return low.startswith(duck_lower(cond.value))
    if op is O.ENDS_WITH:
        return low.endswith(duck_lower(cond.value))
    raise SegmentRuleError(f"{op.value} is not a text comparison.")


def _number(op: O, value: Any, cond: Condition) -> bool:
    if op is O.IS_EMPTY:
        return value is None
    if op is O.IS_NOT_EMPTY:
        return value is not None
    if op is O.NE:
        return value is None or float(value) != cond.value
    if value is None:
        return False
    x = float(value)
    if op is O.BETWEEN:
        return cond.value <= x <= cond.value2
    return {O.EQ: x == cond.value, O.LT: x < cond.value, O.LE: x <= cond.value,
            O.GT: x > cond.value, O.GE: x >= cond.value}[op]


def _date(op: O, value: Any, cond: Condition, today: date) -> bool:
    if op is O.IS_EMPTY:
        return value is None
    if op is O.IS_NOT_EMPTY:
        return value is not None
    if value is None:
        return False
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    low, high = date_bounds(cond, today)
    return (low is None or value >= low) and (high is None or value < high)
