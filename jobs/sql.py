"""`screening sql "SELECT ..." --lake DIR`: Spark SQL over the lake's tables and views, by name.

Every bronze feed and gold table is a temporary view named after it (only those the query names are loaded),
plus the analyst views of jobs/views.py. Time travel: `--as-of-version N` (every table the query names, or
`TABLE=N`) or `--as-of-time TS` (each table as its last commit at or before TS). Bronze tables holding raw ID
numbers, names or phones (and `rejects`, whose raw rows do too) are refused unless SCREENING_SQL_ALLOW_PII=1.
Table lookup, time travel and that refusal are jobs/catalog.py's (shared with `explain` and the run report).

Several queries in one call run in turn on one session. `screening sql describe NAME...` prints a table's columns
from its schema (a view's from Spark's analysis), `history NAME...` a table's commits from its Delta log: when, the
run and stage that made each (jobs.run stamps commitInfo.userMetadata), the operation and its row counts.
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

    words = " ".join(args.query).split()
    head = words[0].lower() if words else ""
    if head in ("views", "tables") and len(words) == 1:
        return list_names(args)
    if head in ("describe", "desc", "history"):  # "describe a b" or "describe" "a" "b": names, not SQL
        return show_history(args, words[1:]) if head == "history" else describe(args, words[1:])
    queries = args.query
    if len(queries) > 1 and (args.format == "csv" or args.output):
        raise SystemExit("screening sql: --format csv and --output take one query (one table per file)")
    lake = Lake(args.lake)
    if not lake.root.is_dir():
        raise SystemExit(f"screening sql: no lake at {lake.root}")
    try:
        for q in queries:
            check_pii(q)
    except SqlRefused as e:
        print(e, file=sys.stderr)
        return 2
    at = parse_as_of(args.as_of_time, "--as-of-time") if args.as_of_time else None  # before Spark starts
    versions = parse_versions(args.as_of_version)
    spark = quiet(get_spark("screening-sql"))
    from pyspark.errors import AnalysisException  # classic and Spark Connect raise subclasses of it

    code = 0
    for i, q in enumerate(queries):
        try:
            df = run_sql(spark, lake, q, versions, at)
            rows = df.limit(args.limit).collect() if args.limit else df.collect()
            cols = df.columns
        except AnalysisException as e:  # an unknown table or column, bad SQL: one line, not a Java stack
            which = f" (query {i + 1})" if len(queries) > 1 else ""
            print(f"screening sql{which}: {one_line(e)}", file=sys.stderr)
            code = 2
            continue
        if args.format == "csv":
            write_csv(cols, rows, args.output)
            continue
        text = format_table(cols, [tuple(r) for r in rows])
        if args.output:
            Path(args.output).write_text(text + "\n", encoding="utf-8")
        else:
            print((f"-- {q.strip()}\n" if len(queries) > 1 else "") + text + ("\n" if i + 1 < len(queries) else ""))
    return code


def quiet(spark):
    """pyspark's query-context loggers would print an analysis error again, as JSON."""
    from pyspark.logger import PySparkLogger

    for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
        PySparkLogger.getLogger(name).setLevel(logging.CRITICAL)
    return spark


def write_csv(cols: list[str], rows, output: str | None) -> None:
    f = open(output, "w", encoding="utf-8-sig", newline="") if output else sys.stdout
    w = csv.writer(f)
    w.writerow(cols)
    w.writerows([[_fmt(v) if v is not None else "" for v in r] for r in rows])
    if output:
        f.close()


def _known(command: str, names: list[str], allowed: set[str]) -> list[str]:
    """The names, lower-cased, or one line naming those that are no table (or view) and where names are listed."""
    if not names:
        raise SystemExit(f"screening sql {command}: name a table, e.g. screening sql {command} popup_reasons")
    names = [n.strip().lower() for n in names]
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise SystemExit(
            f"screening sql {command}: no {'table or view' if command == 'describe' else 'table'} named "
            f"{', '.join(unknown)} (`screening sql views` lists them)"
        )
    return names


def describe(args, names: list[str]) -> int:
    """Each table's columns from its schema (no Spark); a view's from Spark's analysis of its SQL."""
    from jobs import schemas
    from jobs.views import BUILT, VIEWS

    views = set(VIEWS) | set(BUILT)
    names = _known("describe", names, set(schemas.FEEDS) | set(schemas.GOLD) | views)
    wanted = [n for n in names if n in views]
    shapes = view_schemas(quiet(get_spark("screening-sql")), wanted) if wanted else {}
    for i, n in enumerate(names):
        if n in views:
            doc = (BUILT.get(n) or VIEWS[n])[0]
            fields = shapes[n].fields
            head = f"{n} (view): {doc}"
            table = format_table(["column", "type"], [(f.name, f.dataType.simpleString()) for f in fields])
        else:
            feed = n in schemas.FEEDS
            spec = schemas.feed_spec(n) if feed else schemas.gold_spec(n)
            cols = schemas.bronze_columns(n) if feed else spec["columns"]
            layout = f"; partitioned by {schemas.bronze_partition(n)}" if feed and schemas.bronze_partition(n) else ""
            head = f"{n} ({'bronze' if feed else 'gold'}): {spec['description']}\nkey: {', '.join(spec.get('key', []))}{layout}"
            table = format_table(
                ["column", "type", "nullable", "description"],
                [(c["name"], c["type"], "yes" if c["nullable"] else "no", c["description"]) for c in cols],
            )
        print(head + "\n" + table + ("\n" if i + 1 < len(names) else ""))
    return 0


def view_schemas(spark, names: list[str]) -> dict:
    """The views' columns: their SQL analysed over empty tables of the schemas in schemas/ (registered once for all
    of them), so a lake made before a column was added still shows what the views give."""
    import tempfile

    from jobs import catalog
    from jobs.lake import Lake

    with tempfile.TemporaryDirectory() as empty:
        catalog.register(spark, Lake(empty), " ".join(names))
        return {n: spark.table(n).schema for n in names}


def show_history(args, names: list[str]) -> int:
    """Each table's Delta commits, newest first, from its log files (no Spark)."""
    from jobs import catalog, schemas
    from jobs.lake import Lake

    names = _known("history", names, set(schemas.FEEDS) | set(schemas.GOLD))
    lake = Lake(args.lake)
    paths = catalog.table_paths(lake)
    for i, n in enumerate(names):
        if not lake.exists(paths[n]):
            print(f"{n}: no table yet in {lake.root} (no run has written it)")
            continue
        cols, rows = catalog.history(paths[n])
        shown = rows[: args.limit] if args.limit else rows
        print(
            f"{n}: {len(rows)} commit{'s' if len(rows) != 1 else ''} in its log, newest first\n"
            + format_table(cols, shown)
        )
        if i + 1 < len(names):
            print()
    return 0


def list_names(args) -> int:
    from jobs import schemas
    from jobs.catalog import personal_tables
    from jobs.views import BUILT, VIEWS

    pii = personal_tables()
    print("tables (screening sql describe NAME: columns, types, meaning):")
    for n in list(schemas.FEEDS) + list(schemas.GOLD):
        cols = [
            c["name"] for c in (schemas.bronze_columns(n) if n in schemas.FEEDS else schemas.gold_spec(n)["columns"])
        ]
        mark = "  (personal data: needs SCREENING_SQL_ALLOW_PII=1)" if n in pii else ""
        print(f"  {n}{mark}\n      {', '.join(cols)}")
    print("views:")
    docs = {n: doc for n, (doc, _) in BUILT.items()} | {n: doc for n, (doc, _) in VIEWS.items()}
    shapes = view_schemas(quiet(get_spark("screening-sql")), list(docs))
    for n, doc in docs.items():
        print(f"  {n}: {doc}\n      {', '.join(f.name for f in shapes[n].fields)}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("sql", help="Spark SQL over the lake's tables and analyst views (docs/analyst.md)")
    p.add_argument(
        "query",
        nargs="+",
        help='one or more SELECTs, e.g. "SELECT * FROM releases_by_basis"; "views" lists tables and views with '
        'their columns; "describe NAME..." a table\'s or view\'s columns; "history NAME..." a table\'s commits',
    )
    path_option(p, "lake", "the lake folder")
    p.add_argument("--format", choices=["table", "csv"], default="table")
    p.add_argument("--output", help="write to this file instead of stdout")
    p.add_argument("--limit", type=int, default=1000, help="rows (or history commits) shown (0 = all)")
    p.add_argument(
        "--as-of-version",
        action="append",
        metavar="[TABLE=]N",
        help="read the table(s) at this Delta version (repeatable)",
    )
    p.add_argument("--as-of-time", metavar="TS", help="read every table as it was at TS (its last commit at or before)")
    p.set_defaults(func=cmd_sql)
