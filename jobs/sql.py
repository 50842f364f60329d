"""`screening sql "SELECT ..." --lake DIR`: Spark SQL over the lake's tables and views, by name.

Every bronze feed and gold table is a temporary view named after it (only those the query names are loaded),
plus the analyst views of jobs/views.py. Time travel: `--as-of-version N` (every table the query names, or
`TABLE=N`) or `--as-of-time TS` (each table as its last commit at or before TS). Bronze tables holding raw ID
numbers, names or phones (and `rejects`, whose raw rows do too) are refused unless SCREENING_SQL_ALLOW_PII=1.
"""

from __future__ import annotations

import csv
import json
import os
import re
import sys
import unicodedata
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ALLOW_PII_ENV = "SCREENING_SQL_ALLOW_PII"
PII_COLUMNS = {"person_id", "phone"}  # and persons (names); venues.name is a place
# Direct file reads (delta.`/path`, read_files(...)) would bypass the table check.
PATH_READ = re.compile(r"\b(delta|parquet|csv|json|text|orc|avro|binaryfile)\s*\.\s*`|\bread_files\s*\(", re.I)


class SqlRefused(SystemExit):
    pass


def table_paths(lake) -> dict[str, str]:
    from jobs import schemas

    out = {f: lake.bronze(f) for f in schemas.FEEDS}
    out.update({t: lake.gold(t) for t in schemas.GOLD})
    return out


def personal_tables() -> set[str]:
    from jobs import schemas

    return {f for f in schemas.FEEDS if PII_COLUMNS & {c["name"] for c in schemas.feed_spec(f)["columns"]}} | {
        "persons", "rejects"}


def referenced(query: str, names) -> set[str]:
    return {n for n in names if re.search(rf"(?<![\w.`]){re.escape(n)}(?!\w)", query, re.I)}


def check_pii(query: str) -> None:
    if os.environ.get(ALLOW_PII_ENV) == "1":
        return
    hit = sorted(referenced(query, personal_tables()))
    if hit:
        raise SqlRefused(f"screening sql: {', '.join(hit)} hold raw ID numbers, names or phones (bronze personal data) "
                         f"and are refused; query the gold tables and views, or set {ALLOW_PII_ENV}=1 if you are authorised")
    if PATH_READ.search(query):
        raise SqlRefused("screening sql: reading files by path is refused (it bypasses the personal-data check); "
                         f"query tables by name, or set {ALLOW_PII_ENV}=1 if you are authorised")


def version_at(path: str, at: datetime) -> int | None:
    """The table's last commit at or before `at` (naive local time), from the Delta log's commit timestamps."""
    log = Path(path) / "_delta_log"
    best = None
    for f in sorted(log.glob("*.json")):
        ms = None
        with open(f, encoding="utf-8") as fh:
            for line in fh:
                info = json.loads(line).get("commitInfo")
                if info is not None:
                    ms = info.get("inCommitTimestamp") or info.get("timestamp")
                    break
        if ms is None:
            ms = f.stat().st_mtime * 1000
        when = datetime.fromtimestamp(ms / 1000, ZoneInfo("Asia/Shanghai")).replace(tzinfo=None)
        if when <= at:
            best = int(f.stem)
    return best


def parse_versions(items: list[str] | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for it in items or []:
        name, _, num = it.rpartition("=")
        if not num.isdigit():
            raise SystemExit(f"--as-of-version {it!r}: expected N or TABLE=N")
        out[name or "*"] = int(num)
    return out


def register(spark, lake, query: str, versions: dict[str, int] | None = None, at: datetime | None = None) -> list[str]:
    """Register the tables and views `query` names (and what those views read); returns the names."""
    from jobs import schemas
    from jobs.views import VIEWS, dependencies, person_area

    paths = table_paths(lake)
    versions = versions or {}
    wanted = referenced(query, set(paths) | set(VIEWS) | {"person_area"})
    todo, done = list(wanted), []
    while todo:  # views first pull in their dependencies
        n = todo.pop()
        if n in done:
            continue
        done.append(n)
        if n in VIEWS or n == "person_area":
            todo += [d for d in dependencies(n) if d not in done]
    for n in [d for d in done if d in paths]:
        schema = schemas.bronze_schema(n) if n in schemas.FEEDS else schemas.gold_schema(n)
        v = versions.get(n, versions.get("*"))
        if v is None and at is not None:
            v = version_at(paths[n], at) if lake.exists(paths[n]) else None
            df = spark.createDataFrame([], schema) if v is None else None
        else:
            df = None
        if df is None:
            if not lake.exists(paths[n]):
                df = spark.createDataFrame([], schema)
            elif v is not None:
                df = spark.read.format("delta").option("versionAsOf", v).load(paths[n])
            else:
                df = spark.read.format("delta").load(paths[n])
        df.createOrReplaceTempView(n)
    if "person_area" in done:
        person_area(spark.table("persons")).createOrReplaceTempView("person_area")
    for n in sorted(VIEWS, key=_view_order):
        if n in done:
            spark.sql(VIEWS[n][1]).createOrReplaceTempView(n)
    return sorted(done)


def _view_order(name: str) -> int:
    from jobs.views import VIEWS, dependencies

    return len([d for d in dependencies(name) if d in VIEWS])


def run_sql(spark, lake, query: str, versions=None, at=None):
    check_pii(query)
    register(spark, lake, query, versions, at)
    return spark.sql(query)


def _width(s: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in s)


def _fmt(v) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, datetime):
        return f"{v:%Y-%m-%d %H:%M:%S}"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


def format_table(columns: list[str], rows: list[tuple]) -> str:
    cells = [[_fmt(v) for v in r] for r in rows]
    widths = [max([_width(c)] + [_width(r[i]) for r in cells]) for i, c in enumerate(columns)]

    def line(vals):
        return " | ".join(v + " " * (w - _width(v)) for v, w in zip(vals, widths, strict=True)).rstrip()

    out = [line(columns), "-+-".join("-" * w for w in widths)] + [line(r) for r in cells]
    return "\n".join(out) + f"\n({len(rows)} row{'s' if len(rows) != 1 else ''})"


def cmd_sql(args) -> int:
    from jobs.cli import parse_as_of
    from jobs.lake import Lake
    from jobs.spark import get_spark

    if args.query.strip().lower() in ("views", "tables"):
        return list_names(args)
    lake = Lake(args.lake)
    if not lake.root.is_dir():
        raise SystemExit(f"screening sql: no lake at {lake.root}")
    try:
        check_pii(args.query)
    except SqlRefused as e:
        print(e, file=sys.stderr)
        return 2
    spark = get_spark("screening-sql")
    at = parse_as_of(args.as_of_time) if args.as_of_time else None
    df = run_sql(spark, lake, args.query, parse_versions(args.as_of_version), at)
    rows = df.limit(args.limit).collect() if args.limit else df.collect()
    cols = df.columns
    if args.format == "csv":
        f = open(args.output, "w", encoding="utf-8-sig", newline="") if args.output else sys.stdout
        w = csv.writer(f)
        w.writerow(cols)
        w.writerows([[_fmt(v) if v is not None else "" for v in r] for r in rows])
        if args.output:
            f.close()
    else:
        text = format_table(cols, [tuple(r) for r in rows])
        if args.output:
            Path(args.output).write_text(text + "\n", encoding="utf-8")
        else:
            print(text)
    return 0


def list_names(args) -> int:
    from jobs import schemas
    from jobs.views import PERSON_AREA_DOC, VIEWS

    pii = personal_tables()
    print("tables:")
    for n in list(schemas.FEEDS) + list(schemas.GOLD):
        print(f"  {n}" + ("  (personal data: needs SCREENING_SQL_ALLOW_PII=1)" if n in pii else ""))
    print("views:")
    print(f"  person_area: {PERSON_AREA_DOC}")
    for n, (doc, _) in VIEWS.items():
        print(f"  {n}: {doc}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("sql", help="Spark SQL over the lake's tables and analyst views (docs/analyst.md)")
    p.add_argument("query", help='a SELECT, e.g. "SELECT * FROM releases_by_basis"; "views" lists tables and views')
    p.add_argument("--lake", required=True)
    p.add_argument("--format", choices=["table", "csv"], default="table")
    p.add_argument("--output", help="write to this file instead of stdout")
    p.add_argument("--limit", type=int, default=1000, help="rows shown (0 = all)")
    p.add_argument("--as-of-version", action="append", metavar="[TABLE=]N",
                   help="read the table(s) at this Delta version (repeatable)")
    p.add_argument("--as-of-time", metavar="TS", help="read every table as it was at TS (its last commit at or before)")
    p.set_defaults(func=cmd_sql)
