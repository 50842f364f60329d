"""The lake's tables by name: where each lives, which hold personal data, time travel, and registering the
tables and analyst views a query names as temporary views.

Shared by `screening sql`, `screening explain` and the run report. Bronze tables holding raw ID numbers, names or
phones (and `rejects`, whose raw rows do too) are refused by `check_pii` unless SCREENING_SQL_ALLOW_PII=1.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

from jobs import schemas
from jobs.asof_time import LOCAL
from jobs.settings import settings
from jobs.views import BUILT, VIEWS, build, dependencies

ALLOW_PII_ENV = "SCREENING_SQL_ALLOW_PII"
PII_COLUMNS = {"person_id", "phone"}  # and persons (names); venues.name is a place
# Direct file reads (delta.`/path`, read_files(...)) would bypass the table check.
PATH_READ = re.compile(r"\b(delta|parquet|csv|json|text|orc|avro|binaryfile)\s*\.\s*`|\bread_files\s*\(", re.I)


class SqlRefused(SystemExit):
    pass


# -- names -----------------------------------------------------------------------------------------------------
def table_paths(lake) -> dict[str, str]:
    out = {f: lake.bronze(f) for f in schemas.FEEDS}
    out.update({t: lake.gold(t) for t in schemas.GOLD})
    return out


def referenced(query: str, names) -> set[str]:
    return {n for n in names if re.search(rf"(?<![\w.`]){re.escape(n)}(?!\w)", query, re.I)}


# -- the personal-data guard -----------------------------------------------------------------------------------
def personal_tables() -> set[str]:
    return {f for f in schemas.FEEDS if PII_COLUMNS & {c["name"] for c in schemas.feed_spec(f)["columns"]}} | {
        "persons",
        "rejects",
    }


def check_pii(query: str) -> None:
    if settings().sql_allow_pii:
        return
    hit = sorted(referenced(query, personal_tables()))
    if hit:
        raise SqlRefused(
            f"screening sql: {', '.join(hit)} hold raw ID numbers, names or phones (bronze personal data) "
            f"and are refused; query the gold tables and views, or set {ALLOW_PII_ENV}=1 if you are authorised"
        )
    if PATH_READ.search(query):
        raise SqlRefused(
            "screening sql: reading files by path is refused (it bypasses the personal-data check); "
            f"query tables by name, or set {ALLOW_PII_ENV}=1 if you are authorised"
        )


# -- time travel -----------------------------------------------------------------------------------------------
def commits(path: str):
    """(version, commit time as naive local time, commitInfo) of each commit still in the table's Delta log, oldest
    first; read from the log files, no Spark."""
    for f in sorted((Path(path) / "_delta_log").glob("*.json")):
        if not f.stem.isdigit():
            continue
        info = {}
        with open(f, encoding="utf-8") as fh:
            for line in fh:
                if (found := json.loads(line).get("commitInfo")) is not None:
                    info = found
                    break
        ms = info.get("inCommitTimestamp") or info.get("timestamp") or f.stat().st_mtime * 1000
        yield int(f.stem), datetime.fromtimestamp(ms / 1000, LOCAL).replace(tzinfo=None), info


def version_at(path: str, at: datetime) -> int | None:
    """The table's last commit at or before `at` (naive local time), from the Delta log's commit timestamps."""
    best = None
    for version, when, _ in commits(path):
        if when <= at:
            best = version
    return best


# Operations that change rows (OPTIMIZE rewrites files, VACUUM deletes them: no row counts for those).
ROW_OPERATIONS = {"WRITE", "MERGE", "DELETE", "UPDATE", "CREATE TABLE AS SELECT", "REPLACE TABLE AS SELECT"}
# What a commit did, from Delta's operationMetrics: (column, the metrics it shows, the first one present).
HISTORY_METRICS = (
    ("inserted", ("numTargetRowsInserted", "numOutputRows")),
    ("updated", ("numTargetRowsUpdated", "numUpdatedRows")),
    ("deleted", ("numTargetRowsDeleted", "numDeletedRows")),
)


def history(path: str) -> tuple[list[str], list[tuple]]:
    """The table's commits, newest first: version, when, the run and stage that made it (commitInfo.userMetadata,
    stamped by jobs.run), the operation and the rows it inserted, updated and deleted."""
    rows = []
    for version, when, info in commits(path):
        m = (info.get("operationMetrics") or {}) if info.get("operation") in ROW_OPERATIONS else {}
        counts = []
        for _, names in HISTORY_METRICS:
            hit = next((m[n] for n in names if n in m), None)  # a MERGE's counts, else a write's or a delete's
            counts.append(int(hit) if hit is not None else None)
        rows.append((version, when, info.get("userMetadata"), info.get("operation"), *counts))
    columns = ["version", "committed_at", "run", "operation"] + [c for c, _ in HISTORY_METRICS]
    return columns, rows[::-1]


# -- tables and views as temporary views -----------------------------------------------------------------------
def register(spark, lake, query: str, versions: dict[str, int] | None = None, at: datetime | None = None) -> list[str]:
    """Register the tables and views `query` names (and what those views read); returns the names. `versions`:
    a Delta version per table name ("*": every table); `at`: each table as its last commit at or before it."""
    paths = table_paths(lake)
    versions = versions or {}
    wanted = referenced(query, set(paths) | set(VIEWS) | set(BUILT))
    todo, done = list(wanted), []
    while todo:  # views first pull in their dependencies
        n = todo.pop()
        if n in done:
            continue
        done.append(n)
        if n in VIEWS or n in BUILT:
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
    for n in BUILT:  # in order: person_area reads area_names
        if n in done:
            build(spark, n).createOrReplaceTempView(n)
    for n in sorted(VIEWS, key=_view_order):
        if n in done:
            spark.sql(VIEWS[n][1]).createOrReplaceTempView(n)
    return sorted(done)


def _view_order(name: str) -> int:
    return len([d for d in dependencies(name) if d in VIEWS])
