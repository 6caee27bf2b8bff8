"""The rule model and its compiler: every operator per type, nulls, empty groups, non-ASCII, injection."""
from __future__ import annotations

from datetime import date, datetime

import pytest

from core import segments as rules
from core.segment_eval import matches
from core.segments import Condition, Operator as O, RuleGroup, SegmentRule, SegmentRuleError
from tests.test_segments_support import ATTRS, TODAY, Attr, memory_db, row_for

PROFILES = [
    {"customer_id": "c1", "country": "Germany", "first_name": "Jürgen", "email_opt_out": False,
     "updated_at": datetime(2025, 6, 14, 12, 0)},
    {"customer_id": "c2", "country": "GERMANY", "first_name": "ÉMILE", "email_opt_out": True,
     "updated_at": datetime(2025, 1, 1, 0, 0)},
    {"customer_id": "c3", "country": "France", "first_name": "anna", "email_opt_out": None,
     "updated_at": datetime(2024, 6, 15, 23, 59)},
    {"customer_id": "c4", "country": None, "first_name": "", "email_opt_out": False, "updated_at": None},
    {"customer_id": "c5", "country": "", "first_name": "100%_real", "email_opt_out": True,
     "updated_at": datetime(2025, 6, 20, 9, 0)},   # in the future relative to TODAY
]
ENRICHMENTS = [
    {"customer_id": "c1", "employees": 50.0, "industry": "Software"},
    {"customer_id": "c2", "employees": 5000.0, "industry": "Retail"},
    {"customer_id": "c3", "employees": None, "industry": None},
]


@pytest.fixture(scope="module")
def con():
    connection = memory_db(PROFILES, ENRICHMENTS)
    yield connection
    connection.close()


def rule_of(*items, join="and") -> SegmentRule:
    return SegmentRule(root=RuleGroup(join=join, items=list(items)))


def cond(attribute, operator, value=None, value2=None) -> Condition:
    return Condition(attribute=attribute, operator=operator, value=value, value2=value2)


def members(con, rule) -> set[str]:
    sql, params = rules.compile_rule(rule, ATTRS, today=TODAY).members()
    got = {r[0] for r in con.execute(sql, params).fetchall()}
    # The plain-Python evaluator must agree on every example here too.
    enrich = {e["customer_id"]: e for e in ENRICHMENTS}
    expected = {p["customer_id"] for p in PROFILES
                if matches(rule, ATTRS, row_for(p, enrich.get(p["customer_id"])), today=TODAY)}
    assert got == expected, (sql, params)
    return got


C = "profile.country"
F = "profile.first_name"


@pytest.mark.parametrize("operator,value,expected", [
    (O.EQUALS, "germany", {"c1", "c2"}),
    (O.NOT_EQUALS, "Germany", {"c3", "c4", "c5"}),          # includes NULL and '' (documented)
    (O.IN_LIST, ["FRANCE", "germany"], {"c1", "c2", "c3"}),
    (O.CONTAINS, "RMA", {"c1", "c2"}),
    (O.STARTS_WITH, "fr", {"c3"}),
    (O.ENDS_WITH, "ANY", {"c1", "c2"}),
    (O.IS_EMPTY, None, {"c4", "c5"}),                      # NULL or ''
    (O.IS_NOT_EMPTY, None, {"c1", "c2", "c3"}),
])
def test_text_operators_are_case_insensitive(con, operator, value, expected):
    assert members(con, rule_of(cond(C, operator, value))) == expected


def test_text_non_ascii_case_folding(con):
    assert members(con, rule_of(cond(F, O.EQUALS, "JÜRGEN"))) == {"c1"}
    assert members(con, rule_of(cond(F, O.STARTS_WITH, "émi"))) == {"c2"}
    assert members(con, rule_of(cond(F, O.CONTAINS, "ürg"))) == {"c1"}


def test_like_wildcards_in_values_are_literal(con):
    assert members(con, rule_of(cond(F, O.EQUALS, "100%_REAL"))) == {"c5"}
    assert members(con, rule_of(cond(F, O.STARTS_WITH, "100%"))) == {"c5"}
    assert members(con, rule_of(cond(F, O.STARTS_WITH, "1_0"))) == set()
    assert members(con, rule_of(cond(F, O.CONTAINS, "%"))) == {"c5"}
    assert members(con, rule_of(cond(F, O.EQUALS, "%"))) == set()
    assert members(con, rule_of(cond(F, O.NOT_EQUALS, "_nna"))) == {"c1", "c2", "c3", "c4", "c5"}


E = "enrichment.7.employees"


@pytest.mark.parametrize("operator,value,value2,expected", [
    (O.EQ, 50, None, {"c1"}),
    (O.NE, 50, None, {"c2", "c3", "c4", "c5"}),     # ≠ includes profiles without a value
    (O.LT, 5000, None, {"c1"}),
    (O.LE, 5000, None, {"c1", "c2"}),
    (O.GT, 50, None, {"c2"}),
    (O.GE, 50, None, {"c1", "c2"}),
    (O.BETWEEN, 10, 60, {"c1"}),
    (O.BETWEEN, 5000, 50, {"c1", "c2"}),            # either order, both ends included
    (O.IS_EMPTY, None, None, {"c3", "c4", "c5"}),   # NULL value or no enrichment row at all
    (O.IS_NOT_EMPTY, None, None, {"c1", "c2"}),
])
def test_number_operators_on_left_joined_enrichment(con, operator, value, value2, expected):
    assert members(con, rule_of(cond(E, operator, value, value2))) == expected


U = "profile.updated_at"


@pytest.mark.parametrize("operator,value,value2,expected", [
    (O.BEFORE, "2025-01-01", None, {"c3"}),                 # strictly before the day
    (O.AFTER, "2025-01-01", None, {"c1", "c5"}),            # from the next day on
    (O.DATE_BETWEEN, "2025-01-01", "2025-06-14", {"c1", "c2"}),  # both days included
    (O.DATE_BETWEEN, date(2025, 6, 14), date(2025, 1, 1), {"c1", "c2"}),
    (O.IN_LAST_DAYS, 1, None, {"c1"}),                      # future c5 excluded
    (O.IN_LAST_DAYS, 365, None, {"c1", "c2", "c3"}),        # 2024-06-15 00:00 onwards
    (O.MORE_THAN_DAYS_AGO, 30, None, {"c2", "c3"}),
    (O.IS_EMPTY, None, None, {"c4"}),
])
def test_date_operators(con, operator, value, value2, expected):
    assert members(con, rule_of(cond(U, operator, value, value2))) == expected


@pytest.mark.parametrize("operator,expected", [
    (O.IS_TRUE, {"c2", "c5"}),
    (O.IS_FALSE, {"c1", "c4"}),      # strict: NULL is neither true nor false
    (O.IS_EMPTY, {"c3"}),
])
def test_boolean_operators(con, operator, expected):
    assert members(con, rule_of(cond("profile.email_opt_out", operator))) == expected


def test_nested_groups_and_or(con):
    rule = rule_of(
        cond(C, O.EQUALS, "germany"),
        RuleGroup(join="or", items=[cond(E, O.LT, 100), RuleGroup(join="and", items=[
            cond("profile.email_opt_out", O.IS_TRUE), cond(U, O.BEFORE, "2025-02-01")])]),
    )
    assert members(con, rule) == {"c1", "c2"}
    assert members(con, rule_of(cond(C, O.EQUALS, "france"), cond(C, O.EQUALS, "germany"), join="or")) == {"c1", "c2", "c3"}


def test_empty_groups_are_ignored_and_empty_rule_matches_everyone(con):
    everyone = {"c1", "c2", "c3", "c4", "c5"}
    assert members(con, SegmentRule()) == everyone
    assert members(con, rule_of(RuleGroup(join="or"), RuleGroup(items=[RuleGroup()]))) == everyone
    # An empty group inside an OR does not make the OR true for everyone.
    assert members(con, rule_of(cond(C, O.EQUALS, "France"), RuleGroup(), join="or")) == {"c3"}


def test_condition_counts_in_one_scan(con):
    rule = rule_of(cond(C, O.EQUALS, "germany"), RuleGroup(join="or", items=[cond(E, O.GT, 100), cond(F, O.IS_EMPTY)]))
    plan = rules.compile_counts(rule, ATTRS, today=TODAY)
    row = con.execute(plan.sql, list(plan.params)).fetchone()
    assert plan.condition_paths == ((0,), (1, 0), (1, 1))
    assert row == (1, 2, 1, 1)
    empty = rules.compile_counts(SegmentRule(), ATTRS, today=TODAY)
    assert con.execute(empty.sql, list(empty.params)).fetchone() == (5,)


def test_each_enrichment_table_is_joined_once():
    rule = rule_of(cond(E, O.GT, 1), cond("enrichment.7.industry", O.CONTAINS, "soft"), cond(E, O.LT, 10))
    sql, _ = rules.compile_rule(rule, ATTRS, today=TODAY).members()
    assert sql.count("LEFT JOIN") == 1


# -- validation ---------------------------------------------------------------------------------------
def test_unknown_attribute_is_a_clear_error():
    with pytest.raises(SegmentRuleError, match="not available"):
        rules.compile_rule(rule_of(cond("profile.nope", O.EQUALS, "x")), ATTRS, today=TODAY)


def test_operator_must_fit_the_attribute_type():
    with pytest.raises(SegmentRuleError, match="cannot be used"):
        rules.compile_rule(rule_of(cond(C, O.GT, 5)), ATTRS, today=TODAY)


@pytest.mark.parametrize("data,message", [
    ({"root": {"items": [{"kind": "condition", "attribute": C, "operator": "equals", "value": ""}]}}, "Enter a value"),
    ({"root": {"items": [{"kind": "condition", "attribute": E, "operator": "gt", "value": "lots"}]}}, "not a number"),
    ({"root": {"items": [{"kind": "condition", "attribute": E, "operator": "gt", "value": float("nan")}]}}, "finite"),
    ({"root": {"items": [{"kind": "condition", "attribute": U, "operator": "before", "value": "31/12/2024"}]}}, "not a date"),
    ({"root": {"items": [{"kind": "condition", "attribute": U, "operator": "in_last_days", "value": 1.5}]}}, "whole number"),
    ({"root": {"items": [{"kind": "condition", "attribute": C, "operator": "in_list", "value": []}]}}, "at least one"),
    ({"root": {"items": [{"kind": "condition", "attribute": C, "operator": "drop_table"}]}}, "not valid"),
    ({"root": {"items": [], "sql": "1=1"}}, "not valid"),
])
def test_invalid_rules_are_refused_in_plain_words(data, message):
    with pytest.raises(SegmentRuleError, match=message):
        SegmentRule.parse(data)


def test_nesting_depth_and_size_limits():
    group = RuleGroup()
    for _ in range(rules.MAX_DEPTH):
        group = RuleGroup(items=[group])
    with pytest.raises(SegmentRuleError, match="nested"):
        SegmentRule.parse({"root": group.model_dump()})
    many = [cond(C, O.EQUALS, str(i)).model_dump() for i in range(rules.MAX_CONDITIONS + 1)]
    with pytest.raises(SegmentRuleError, match="at most"):
        SegmentRule.parse({"root": {"items": many}})


def test_json_round_trip_keeps_the_rule():
    rule = rule_of(cond(U, O.DATE_BETWEEN, "2025-01-01", "2025-02-01"), cond(C, O.IN_LIST, "a, b ,c"),
                   RuleGroup(join="or", items=[cond(E, O.BETWEEN, 1, 2)]))
    assert rule.root.items[1].value == ["a", "b", "c"]
    assert SegmentRule.parse(rule.to_json()) == rule


# -- injection ------------------------------------------------------------------------------------------
INJECTIONS = ["'; DROP TABLE profiles; --", "\" OR 1=1 --", "x') OR ('1'='1", "Robert'); DELETE FROM profiles;--",
              "%' OR '%'='", "\\'; SELECT 1; --"]


@pytest.mark.parametrize("value", INJECTIONS)
def test_values_only_ever_travel_as_parameters(con, value):
    for operator in (O.EQUALS, O.NOT_EQUALS, O.CONTAINS, O.STARTS_WITH, O.ENDS_WITH):
        query = rules.compile_rule(rule_of(cond(C, operator, value)), ATTRS, today=TODAY)
        assert value not in query.where_sql
        assert value in query.params or value + "%" in query.params
        members(con, rule_of(cond(C, operator, value)))
    assert members(con, rule_of(cond(C, O.IN_LIST, [value, "France"]))) == {"c3"}
    assert con.execute("SELECT count(*) FROM profiles").fetchone()[0] == len(PROFILES)


@pytest.mark.parametrize("key", ["profiles; DROP TABLE profiles", 'profile.country" OR 1=1 --', "p.country"])
def test_attribute_names_come_only_from_the_catalogue(key):
    with pytest.raises(SegmentRuleError, match="not available"):
        rules.compile_rule(rule_of(cond(key, O.IS_EMPTY)), ATTRS, today=TODAY)


def test_catalogue_identifiers_are_quoted(con):
    # Even a hostile column/table name registered in the catalogue cannot break out of its quotes.
    evil = Attr("profile.evil", "Evil", "text", "profiles", 'country" IS NULL OR "1"="1')
    query = rules.compile_rule(rule_of(cond("profile.evil", O.EQUALS, "x")), {**ATTRS, evil.key: evil}, today=TODAY)
    assert 'p."country"" IS NULL OR ""1""=""1"' in query.where_sql
    sql, params = query.members()
    with pytest.raises(Exception, match="(?i)not found|does not have a column"):
        con.execute(sql, params)


def test_describe_in_plain_language():
    rule = rule_of(cond(C, O.IN_LIST, ["DE", "FR"]), RuleGroup(join="or", items=[
        cond(E, O.BETWEEN, 10, 500), cond(U, O.IN_LAST_DAYS, 30)]))
    assert rules.describe(rule, ATTRS) == ("Country is one of “DE”, “FR” AND (Employees is between 10 and 500 "
                                           "OR Updated at is within the last 30 days)")
    assert rules.describe(SegmentRule(), ATTRS) == "Everyone"


def test_editing_helpers_return_new_rules():
    rule = SegmentRule()
    rule = rules.add_item(rule, (), cond(C, O.EQUALS, "Germany"))
    rule = rules.add_item(rule, (), RuleGroup(join="or"))
    rule = rules.add_item(rule, (1,), cond(F, O.IS_EMPTY))
    rule = rules.set_join(rule, (1,), "or")
    assert [p for p, _ in rules.iter_conditions_with_paths(rule.root)] == [(0,), (1, 0)]
    changed = rules.replace_item(rule, (1, 0), cond(F, O.IS_NOT_EMPTY))
    assert changed.root.items[1].items[0].operator is O.IS_NOT_EMPTY
    assert rule.root.items[1].items[0].operator is O.IS_EMPTY
    removed = rules.remove_item(changed, (0,))
    assert len(removed.root.items) == 1
    with pytest.raises(SegmentRuleError):
        rules.add_item(rule, (0,), cond(C, O.IS_EMPTY))   # (0,) is a condition, not a group


def test_long_in_lists_compile_to_in(con):
    values = [f"land {i}" for i in range(rules.MAX_OR_CHAIN + 10)] + ["FRANCE", "g_rmany"]
    query = rules.compile_rule(rule_of(cond(C, O.IN_LIST, values)), ATTRS, today=TODAY)
    assert " IN (" in query.where_sql
    assert members(con, rule_of(cond(C, O.IN_LIST, values))) == {"c3"}
    assert members(con, rule_of(cond(C, O.IN_LIST, ["g_rmany", "germany"]))) == {"c1", "c2"}
