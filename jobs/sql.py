"""`screening sql "SELECT ..." --lake DIR`: Spark SQL over the lake's tables and views, by name.

Every bronze feed and gold table is a temporary view named after it (only those the query names are loaded),
plus the analyst views of jobs/views.py. Time travel: `--as-of-version N` (every table the query names, or
`TABLE=N`) or `--as-of-time TS` (each table as its last commit at or before TS). Bronze tables holding raw ID
numbers, names or phones (and `rejects`, whose raw rows do too) are refused unless SCREENING_SQL_ALLOW_PII=1.
Table lookup, time travel and that refusal are jobs/catalog.py's (shared with `explain` and the run report).
"""

from __future__ import annotations

import csv
import logging
import sys
import unicodedata
from datetime import datetime
from pathlib import Path

from jobs.asof_time import parse_as_of
from jobs.settings import path_option
from jobs.spark import get_spark

# The CLI imports this module at start-up to add its subcommand, and `screening --help` must not load pyspark:
# the modules behind the command (catalog, views, lake, schemas) are imported in the functions that use them.


def parse_versions(items: list[str] | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for it in items or []:
        name, _, num = it.rpartition("=")
        if not num.isdigit():
            raise SystemExit(f"--as-of-version {it!r}: expected N or TABLE=N")
        out[name or "*"] = int(num)
    return out


def run_sql(spark, lake, query: str, versions=None, at=None):
    from jobs import catalog

    catalog.check_pii(query)
    catalog.register(spark, lake, query, versions, at)
    return spark.sql(query)


def one_line(e: Exception) -> str:
    """Spark's message without the plan and stack it appends; a table not found also says where names are listed."""
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if "TABLE_OR_VIEW_NOT_FOUND" in first:
        first += " (`screening sql views` lists the tables and views)"
    return first


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
    from jobs.catalog import SqlRefused, check_pii
    from jobs.lake import Lake

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
    at = parse_as_of(args.as_of_time, "--as-of-time") if args.as_of_time else None  # before Spark starts
    versions = parse_versions(args.as_of_version)
    spark = get_spark("screening-sql")
    from pyspark.errors import AnalysisException  # classic and Spark Connect raise subclasses of it
    from pyspark.logger import PySparkLogger

    for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):  # they would print it again, as JSON
        PySparkLogger.getLogger(name).setLevel(logging.CRITICAL)

    try:
        df = run_sql(spark, lake, args.query, versions, at)
        rows = df.limit(args.limit).collect() if args.limit else df.collect()
        cols = df.columns
    except AnalysisException as e:  # an unknown table or column, bad SQL: one line, not a Java stack
        print(f"screening sql: {one_line(e)}", file=sys.stderr)
        return 2
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
    from jobs.catalog import personal_tables
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
    path_option(p, "lake", "the lake folder")
    p.add_argument("--format", choices=["table", "csv"], default="table")
    p.add_argument("--output", help="write to this file instead of stdout")
    p.add_argument("--limit", type=int, default=1000, help="rows shown (0 = all)")
    p.add_argument(
        "--as-of-version",
        action="append",
        metavar="[TABLE=]N",
        help="read the table(s) at this Delta version (repeatable)",
    )
    p.add_argument("--as-of-time", metavar="TS", help="read every table as it was at TS (its last commit at or before)")
    p.set_defaults(func=cmd_sql)
