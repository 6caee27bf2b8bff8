"""Segment benchmarks: member count and first preview page for typical rules over 1 M and 10 M profiles.

Prints one JSON object per figure per line, e.g.
{"bench": "segments.count", "profiles": 10000000, "rule": "country equals", "seconds": 0.21}

    .venv/bin/python bench/segments.py                 # 1 M and 10 M
    .venv/bin/python bench/segments.py --profiles 1000000 --repeat 5
    .venv/bin/python bench/segments.py --keep-in /tmp/segbench   # keep + reuse generated databases

Profiles are generated in DuckDB SQL (range()-based) into a temporary database file, unless
services.demo.generate_profiles(db, DEMO_ADMIN, n, seed) exists, which is used instead. Each figure is the best
of --repeat runs after one warm-up (the app's count cache is bypassed: every run queries DuckDB).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.segments import Condition, Operator, RuleGroup, SegmentRule  # noqa: E402
from storage import segments as repo  # noqa: E402
from storage.db import Database  # noqa: E402
from core.permissions import Role, User

DEMO_ADMIN = User(0, "demo-admin", Role.ADMIN)   # generating demo data is an admin's

FIRST = ["Anna", "Ben", "Chloé", "David", "Emma", "Felix", "Grace", "Hiro", "Ines", "Jonas", "Karin", "Liam",
         "Mia", "Noah", "Olga", "Paul", "Quinn", "Rosa", "Sven", "Tanja"]
LAST = ["Smith", "Müller", "García", "Rossi", "Dubois", "Jansen", "Nowak", "Svensson", "Kim", "Brown",
        "Schmidt", "Martin", "López", "Bianchi", "Novak", "Olsen", "Tanaka", "Wilson", "Fischer", "Moreau"]
COMPANIES = ["Acme Tech", "Globex", "Initech Software", "Umbrella", "Hooli Data", "Stark Industries", "Wayne",
             "Cyberdyne Systems", "Soylent", "Tyrell", "Wonka", "Vandelay", "Massive Dynamic", "Aperture Science",
             "Pied Piper"]
COUNTRIES = ["United States", "Germany", "France", "United Kingdom", "Spain", "Italy", "Netherlands", "Canada",
             "Poland", "Sweden", "US", "DE"]


def _sql_list(values: list[str]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def generate_profiles_sql(db: Database, n: int, seed: int = 7) -> None:
    """n synthetic profiles, fast (set-based in DuckDB): ~10 % no company, ~8 % opted out, some NULL countries."""
    h = f"hash(i + {int(seed)})"
    sql = f"""
    INSERT INTO profiles (customer_id, email, first_name, last_name, company_name, company_website, phone,
                          city, country, email_opt_out, updated_at)
    SELECT 'C' || lpad(CAST(i AS VARCHAR), 9, '0'),
           lower(f) || '.' || lower(l) || i || '@' || CASE WHEN {h} % 7 = 0 THEN 'gmail.com' ELSE 'example.com' END,
           f, l, c, CASE WHEN c IS NULL THEN NULL ELSE lower(replace(c, ' ', '')) || '.com' END,
           '+1 555 ' || lpad(CAST(i % 10000 AS VARCHAR), 4, '0'),
           'City ' || CAST({h} % 500 AS VARCHAR),
           CASE WHEN {h} % 50 = 0 THEN NULL ELSE {_sql_list(COUNTRIES)}[1 + CAST(({h} >> 8) % {len(COUNTRIES)} AS INTEGER)] END,
           CASE WHEN {h} % 13 = 0 THEN TRUE WHEN {h} % 17 = 0 THEN NULL ELSE FALSE END,
           CAST(current_date AS TIMESTAMP) - CAST(({h} >> 16) % (3 * 365 * 24) AS INTEGER) * INTERVAL 1 HOUR
    FROM (
        SELECT i,
               {_sql_list(FIRST)}[1 + CAST(({h} >> 20) % {len(FIRST)} AS INTEGER)] AS f,
               {_sql_list(LAST)}[1 + CAST(({h} >> 28) % {len(LAST)} AS INTEGER)] AS l,
               CASE WHEN {h} % 10 = 0 THEN NULL
                    ELSE {_sql_list(COMPANIES)}[1 + CAST(({h} >> 36) % {len(COMPANIES)} AS INTEGER)] END AS c
        FROM range({int(n)}) AS t(i)
    )
    """
    with db.transaction() as cur:
        cur.execute(sql)


def generate(db: Database, n: int) -> str:
    try:
        from services import demo  # written by another engineer; optional
        generate_profiles = demo.generate_profiles
    except (ImportError, AttributeError):
        generate_profiles_sql(db, n)
        return "bench-sql"
    generate_profiles(db, DEMO_ADMIN, n, 7)
    return "services.demo"


def _c(attribute: str, operator: Operator, value=None, value2=None) -> Condition:
    return Condition(attribute=attribute, operator=operator, value=value, value2=value2)


def typical_rules() -> dict[str, SegmentRule]:
    opted_in = RuleGroup(join="or", items=[_c("profile.email_opt_out", Operator.IS_FALSE),
                                           _c("profile.email_opt_out", Operator.IS_EMPTY)])
    search = RuleGroup(join="or", items=[_c(k, Operator.CONTAINS, "müller") for k in
                                         ("profile.first_name", "profile.last_name", "profile.email",
                                          "profile.company_name")])
    return {
        "country equals Germany": SegmentRule(root=RuleGroup(items=[_c("profile.country", Operator.EQUALS, "Germany")])),
        "EU country in list AND (opt-out false OR empty)": SegmentRule(root=RuleGroup(items=[
            _c("profile.country", Operator.IN_LIST, ["Germany", "DE", "France", "Spain", "Italy", "Netherlands",
                                                     "Poland", "Sweden"]),
            opted_in])),
        "search: name/email/company contains (OR group)": SegmentRule(root=RuleGroup(items=[search])),
        "updated between 2025-06-01 and 2025-12-31 AND company starts with 'a' AND email ends with .com":
            SegmentRule(root=RuleGroup(items=[
                _c("profile.updated_at", Operator.DATE_BETWEEN, "2025-06-01", "2025-12-31"),
                _c("profile.company_name", Operator.STARTS_WITH, "a"),
                _c("profile.email", Operator.ENDS_WITH, ".com")])),
    }


def _best(fn, repeat: int) -> tuple[float, object]:
    result = fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def run(n: int, repeat: int, workdir: Path, keep: bool = False) -> None:
    path = workdir / f"bench_segments_{n}.duckdb"
    reuse = keep and path.exists()
    db = Database(path)
    if not reuse or db.query_one("SELECT count(*) FROM profiles")[0] != n:
        start = time.perf_counter()
        source = generate(db, n)
        with db.cursor() as cur:
            cur.execute("CHECKPOINT")
        print(json.dumps({"bench": "segments.generate", "profiles": n, "source": source,
                          "seconds": round(time.perf_counter() - start, 2)}), flush=True)
    for label, rule in typical_rules().items():
        query = repo.compile_rule(db, rule)
        sql, params = query.members()
        seconds, members = _best(lambda: repo.count_sql(db, sql, params), repeat)
        print(json.dumps({"bench": "segments.count", "profiles": n, "rule": label, "members": members,
                          "seconds": round(seconds, 3)}), flush=True)
        seconds, rows = _best(lambda: repo.preview_rule(db, rule), repeat)
        print(json.dumps({"bench": "segments.preview", "profiles": n, "rule": label, "rows": len(rows),
                          "seconds": round(seconds, 3)}), flush=True)
        seconds, _ = _best(lambda: repo.condition_counts(db, rule), repeat)
        print(json.dumps({"bench": "segments.condition_counts", "profiles": n, "rule": label,
                          "seconds": round(seconds, 3)}), flush=True)
    db.close()
    if not keep:
        path.unlink(missing_ok=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, action="append",
                        help="profile count (repeatable); default 1,000,000 and 10,000,000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep-in", metavar="DIR",
                        help="keep the generated databases in DIR and reuse them on the next run")
    args = parser.parse_args(argv)
    sizes = args.profiles or [1_000_000, 10_000_000]
    if args.keep_in:
        Path(args.keep_in).mkdir(parents=True, exist_ok=True)
        for n in sizes:
            run(n, args.repeat, Path(args.keep_in), keep=True)
        return
    with tempfile.TemporaryDirectory(prefix="bench_segments_") as tmp:
        for n in sizes:
            run(n, args.repeat, Path(tmp))


if __name__ == "__main__":
    main()
