"""One schema per table, kept as JSON under schemas/ and used both to read and to write.

schemas/feeds/<feed>.json describes a landing feed (columns, key, knowledge time, checks) and its bronze table;
schemas/gold/<table>.json describes a gold (or lake bookkeeping) table.
"""

from __future__ import annotations

import json
from functools import cache

from pyspark.sql import types as T

from jobs import ROOT

SCHEMA_DIR = ROOT / "schemas"
FEEDS = tuple(sorted(p.stem for p in (SCHEMA_DIR / "feeds").glob("*.json")))
GOLD = tuple(sorted(p.stem for p in (SCHEMA_DIR / "gold").glob("*.json")))

# Columns every bronze row carries besides the feed's own.
BRONZE_META = [
    {
        "name": "_known_at",
        "type": "timestamp",
        "nullable": False,
        "description": "Effective knowledge time (of the start event for two-event rows); late rows count from the previous run's as-of",
    },
    {"name": "_source_known_at", "type": "timestamp", "nullable": False, "description": "Knowledge time as delivered"},
    {
        "name": "_end_known_at",
        "type": "timestamp",
        "nullable": True,
        "description": "Two-event rows only: effective knowledge time of the end event",
    },
    {
        "name": "_file",
        "type": "string",
        "nullable": False,
        "description": "Landing file (relative path) the row came from",
    },
    {"name": "_line", "type": "int", "nullable": False, "description": "1-based line in that file"},
    {"name": "_run_id", "type": "string", "nullable": False, "description": "Run that ingested the row"},
    {
        "name": "_known_date",
        "type": "date",
        "nullable": False,
        "description": "Date of `_source_known_at` (Asia/Shanghai): the table's partition, so a delivery's merge "
        "reads only the days it can collide with and compaction never mixes days",
    },
]
# An event feed's bronze (`"bronze_layout": "by_known_date"`) is partitioned by the delivered knowledge date. Not a
# reference feed's: its knowledge times span years (a person's registration, a phone's binding), a partition per day.
BRONZE_PARTITION = "_known_date"

_TYPES = {
    "string": T.StringType(),
    "timestamp": T.TimestampType(),
    "date": T.DateType(),
    "int": T.IntegerType(),
    "boolean": T.BooleanType(),
    "array<string>": T.ArrayType(T.StringType()),
}


@cache
def feed_spec(feed: str) -> dict:
    return json.loads((SCHEMA_DIR / "feeds" / f"{feed}.json").read_text(encoding="utf-8"))


@cache
def gold_spec(table: str) -> dict:
    return json.loads((SCHEMA_DIR / "gold" / f"{table}.json").read_text(encoding="utf-8"))


def optional_feeds() -> tuple[str, ...]:
    """Feeds marked `"optional": true`: reference lists that only name things for people. No rule reads them and
    their absence never halts a run."""
    return tuple(f for f in FEEDS if feed_spec(f).get("optional"))


def is_two_event(feed: str) -> bool:
    return "end_knowledge_time" in feed_spec(feed)


def _struct(columns: list[dict]) -> T.StructType:
    return T.StructType([T.StructField(c["name"], _TYPES[c["type"]], c["nullable"]) for c in columns])


def bronze_partition(feed: str) -> str | None:
    """The partition column of the feed's bronze table, or None (one unpartitioned table)."""
    return BRONZE_PARTITION if feed_spec(feed).get("bronze_layout") == "by_known_date" else None


def bronze_columns(feed: str) -> list[dict]:
    meta = [
        m
        for m in BRONZE_META
        if (m["name"] != "_end_known_at" or is_two_event(feed))
        and (m["name"] != BRONZE_PARTITION or bronze_partition(feed))
    ]
    return feed_spec(feed)["columns"] + meta


def bronze_stats_columns(feed: str) -> list[str]:
    """The columns Delta keeps file statistics on (minimum, maximum, nulls): those runs skip files by, the times
    and the run that wrote a row (the feed checks read one run's rows). An identifier's range over files in
    delivery order skips nothing, and keeping it (a copy of every new largest string) was a fifth of the time to
    write bronze."""
    times = [c["name"] for c in bronze_columns(feed) if c["type"] in ("timestamp", "date")]
    return [c for c in times if c != BRONZE_PARTITION] + ["_run_id"]


def bronze_schema(feed: str) -> T.StructType:
    return _struct(bronze_columns(feed))


def gold_schema(table: str) -> T.StructType:
    return _struct(gold_spec(table)["columns"])


def data_dictionary() -> str:
    """Markdown of every table and column (docs/data_dictionary.md is this, checked by a test)."""
    out = [
        "# Data dictionary",
        "",
        "Generated from `schemas/` by `screening schemas --dictionary`; do not edit by hand.",
        "",
    ]
    out += [
        "## Bronze tables (`<lake>/bronze/<feed>`)",
        "",
        "Layout: every bronze table is a Delta table with its change data feed on. An event feed's (\"Layout: by",
        'knowledge date" below) is partitioned by `_known_date`, the date its rows became known as delivered',
        "(Asia/Shanghai); a reference feed's is one unpartitioned table (its knowledge times span years: a partition",
        "per day would be thousands of tiny files):",
        "- ingest merges a delivery only into the days it can collide with (a version is keyed by record and",
        "  knowledge time), so the older days already in the lake are not read;",
        "- an hourly run reads what ingest wrote since the previous run from the change data feed (the files of",
        "  those commits only), then keeps of the history only the people, phones and cells that touches (a",
        "  filtered scan of the columns it needs);",
        "- `screening maintain` compacts small files (OPTIMIZE) within each day and never mixes days;",
        "- Delta keeps file statistics (minimum, maximum, nulls) only on the columns runs skip files by: the times",
        '  and `_run_id` ("File statistics" below).',
        "",
        "A table made before `_known_date` existed keeps its unpartitioned layout and works as before; rebuild the",
        "lake from its landing files to lay it out by day.",
        "",
    ]
    for feed in FEEDS:
        spec = feed_spec(feed)
        kt = spec["knowledge_time"] + (f" (end: {spec['end_knowledge_time']})" if "end_knowledge_time" in spec else "")
        layout = "by knowledge date (`_known_date`)" if bronze_partition(feed) else "one unpartitioned table"
        opt = " Optional: a landing without it is complete." if spec.get("optional") else ""
        out += [
            f"### {feed}",
            "",
            spec["description"],
            "",
            f"Key: {', '.join(spec['key'])}. Knowledge time: {kt}. Layout: {layout}. "
            f"File statistics: {', '.join(bronze_stats_columns(feed))}.{opt}",
            "",
        ]
        out += _column_table(bronze_columns(feed))
    out += ["## Gold and lake tables (`<lake>/gold/<table>`, `<lake>/rejects`, `<lake>/ingested_files`)", ""]
    for table in GOLD:
        spec = gold_spec(table)
        out += [f"### {table}", "", spec["description"], "", f"Key: {', '.join(spec['key'])}.", ""]
        out += _column_table(spec["columns"])
    return "\n".join(out)


def _column_table(columns: list[dict]) -> list[str]:
    rows = ["| column | type | nullable | description |", "|---|---|---|---|"]
    for c in columns:
        extra = ""
        if "enum" in c:
            extra = " One of: " + ", ".join(f"`{v}`" for v in c["enum"]) + "."
        if c.get("check"):
            extra += f" Checked: {c['check']}."
        rows.append(
            f"| {c['name']} | {c['type']} | {'yes' if c['nullable'] else 'no'} | {c['description']}.{extra} |".replace(
                "..", "."
            )
        )
    return rows + [""]
