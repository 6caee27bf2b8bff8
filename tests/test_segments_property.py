"""Property: for random profiles and random rules, DuckDB (compiled SQL) == the plain-Python evaluator."""
from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import HealthCheck, given, settings, strategies as st

from core import segments as rules
from core.segment_eval import condition_matches, duck_lower, matches
from core.segments import Condition, Operator as O, RuleGroup, SegmentRule
from tests.test_segments_support import ATTRS, TODAY, memory_db, row_for

# Few letters (so conditions often match), mixed case, non-ASCII with tricky lower-casing,
# LIKE wildcards, quotes and backslashes.
ALPHABET = "aAbBiIİıßẞσΣςéÉüÜ%_\\'\" -."
texts = st.text(alphabet=ALPHABET, min_size=1, max_size=4)
maybe_texts = st.one_of(st.none(), st.just(""), texts)
numbers = st.one_of(st.integers(-5, 5).map(float), st.floats(-10, 10, allow_nan=False, allow_infinity=False))
timestamps = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2025, 12, 31)).map(
    lambda d: d.replace(microsecond=0))
days = st.integers(0, 400)
dates = st.dates(min_value=TODAY - timedelta(days=400), max_value=TODAY + timedelta(days=30))

TEXT_KEYS = ["profile.country", "profile.first_name", "enrichment.7.industry"]


def text_conditions():
    key = st.sampled_from(TEXT_KEYS)
    return st.one_of(
        st.builds(lambda k, o, v: Condition(attribute=k, operator=o, value=v), key,
                  st.sampled_from([O.EQUALS, O.NOT_EQUALS, O.CONTAINS, O.STARTS_WITH, O.ENDS_WITH]), texts),
        st.builds(lambda k, v: Condition(attribute=k, operator=O.IN_LIST, value=v), key,
                  st.lists(texts, min_size=1, max_size=3)),
        st.builds(lambda k, o: Condition(attribute=k, operator=o), key, st.sampled_from([O.IS_EMPTY, O.IS_NOT_EMPTY])),
    )


def number_conditions():
    key = "enrichment.7.employees"
    return st.one_of(
        st.builds(lambda o, v: Condition(attribute=key, operator=o, value=v),
                  st.sampled_from([O.EQ, O.NE, O.LT, O.LE, O.GT, O.GE]), numbers),
        st.builds(lambda a, b: Condition(attribute=key, operator=O.BETWEEN, value=a, value2=b), numbers, numbers),
        st.builds(lambda o: Condition(attribute=key, operator=o), st.sampled_from([O.IS_EMPTY, O.IS_NOT_EMPTY])),
    )


def date_conditions():
    key = "profile.updated_at"
    return st.one_of(
        st.builds(lambda o, v: Condition(attribute=key, operator=o, value=v), st.sampled_from([O.BEFORE, O.AFTER]), dates),
        st.builds(lambda a, b: Condition(attribute=key, operator=O.DATE_BETWEEN, value=a, value2=b), dates, dates),
        st.builds(lambda o, n: Condition(attribute=key, operator=o, value=n),
                  st.sampled_from([O.IN_LAST_DAYS, O.MORE_THAN_DAYS_AGO]), days),
        st.builds(lambda o: Condition(attribute=key, operator=o), st.sampled_from([O.IS_EMPTY, O.IS_NOT_EMPTY])),
    )


def boolean_conditions():
    return st.builds(lambda o: Condition(attribute="profile.email_opt_out", operator=o),
                     st.sampled_from([O.IS_TRUE, O.IS_FALSE, O.IS_EMPTY]))


conditions = st.one_of(text_conditions(), number_conditions(), date_conditions(), boolean_conditions())
groups = st.recursive(
    st.builds(lambda j, items: RuleGroup(join=j, items=items), st.sampled_from(["and", "or"]),
              st.lists(conditions, max_size=3)),
    lambda children: st.builds(lambda j, items: RuleGroup(join=j, items=items), st.sampled_from(["and", "or"]),
                               st.lists(st.one_of(conditions, children), max_size=3)),
    max_leaves=8,
).filter(lambda g: rules.depth(g) <= rules.MAX_DEPTH)

profiles_strategy = st.lists(
    st.fixed_dictionaries({
        "country": maybe_texts, "first_name": maybe_texts,
        "email_opt_out": st.one_of(st.none(), st.booleans()),
        "updated_at": st.one_of(st.none(), timestamps),
        "has_enrichment": st.booleans(),
        "employees": st.one_of(st.none(), numbers),
        "industry": maybe_texts,
    }),
    max_size=12,
)


_shared = {}


def _connection():
    # One in-memory database for all examples (re-filled each time): connecting per example is slow.
    if "con" not in _shared:
        _shared["con"] = memory_db([], [])
    return _shared["con"]


def _load(profiles):
    for i, p in enumerate(profiles):
        p["customer_id"] = f"c{i}"
    enrichments = [{"customer_id": p["customer_id"], "employees": p["employees"], "industry": p["industry"]}
                   for p in profiles if p["has_enrichment"]]
    by_id = {e["customer_id"]: e for e in enrichments}
    rows = {p["customer_id"]: row_for(p, by_id.get(p["customer_id"])) for p in profiles}
    return memory_db(profiles, enrichments, _connection()), rows


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(profiles=profiles_strategy, root=groups)
def test_duckdb_agrees_with_python_evaluator(profiles, root):
    rule = SegmentRule(root=root)
    con, rows = _load(profiles)
    sql, params = rules.compile_rule(rule, ATTRS, today=TODAY).members()
    got = {r[0] for r in con.execute(sql, params).fetchall()}
    expected = {cid for cid, row in rows.items() if matches(rule, ATTRS, row, today=TODAY)}
    assert got == expected

    plan = rules.compile_counts(rule, ATTRS, today=TODAY)
    counts = con.execute(plan.sql, list(plan.params)).fetchall()[0]
    assert counts[0] == len(expected)
    for path, n in zip(plan.condition_paths, counts[1:]):
        node = rule.root
        for index in path:
            node = node.items[index]
        assert n == sum(condition_matches(node, ATTRS, row, today=TODAY) for row in rows.values())


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=8))
def test_python_lower_mirrors_duckdb_lower(text):
    assert _connection().execute("SELECT lower(?)", [text]).fetchall()[0][0] == duck_lower(text)
