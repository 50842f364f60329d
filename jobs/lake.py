"""The thin I/O layer: where tables live in the lake and how they are read and written (Delta)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from jobs import schemas

log = logging.getLogger("screening")
CONFLICT_ATTEMPTS = 4  # a commit that lost a race is redone this many times in all, then the run fails


CONFLICTS = (
    "ConcurrentModificationException",
    "ConcurrentWriteException",
    "MetadataChangedException",
    "ProtocolChangedException",
    "ConcurrentAppendException",
    "ConcurrentDeleteReadException",
    "ConcurrentDeleteDeleteException",
    "ConcurrentTransactionException",
)
# The same conflicts as Spark Connect reports them (an error condition, no Delta exception class on the client).
CONFLICT_CONDITIONS = {
    "DELTA_CONCURRENT_APPEND": "ConcurrentAppendException",
    "DELTA_CONCURRENT_DELETE_READ": "ConcurrentDeleteReadException",
    "DELTA_CONCURRENT_DELETE_DELETE": "ConcurrentDeleteDeleteException",
    "DELTA_CONCURRENT_TRANSACTION": "ConcurrentTransactionException",
    "DELTA_CONCURRENT_WRITE": "ConcurrentWriteException",
    "DELTA_METADATA_CHANGED": "MetadataChangedException",
    "DELTA_PROTOCOL_CHANGED": "ProtocolChangedException",
}


def conflict(e: Exception) -> str | None:
    """The name of Delta's commit-conflict exception `e` is (another writer committed first), else None. Classic
    sessions raise Delta's Python exceptions; a Spark Connect client gets an error condition and the JVM class."""
    name = type(e).__name__
    if name.endswith(CONFLICTS):  # Delta's Python classes (DeltaConcurrentModificationException too)
        return name
    condition = ""
    for getter in ("getCondition", "getErrorClass"):
        try:
            condition = getattr(e, getter)() or ""
        except Exception:  # noqa: BLE001 (not a Spark error)
            continue
        if condition:
            break
    for prefix, cls in CONFLICT_CONDITIONS.items():
        if condition.startswith(prefix):
            return cls
    text = str(e)
    return next(
        (c for c in CONFLICTS if f"io.delta.exceptions.{c}" in text or f"org.apache.spark.sql.delta.{c}" in text), None
    )


def delta_version(path: str | Path) -> int:
    """The table's latest version: its newest commit file in _delta_log (no Spark job: loading the table's
    history for this cost a second or more per table in a fresh JVM)."""
    names = (p.name for p in (Path(path) / "_delta_log").glob("*.json"))
    return max(int(n[:-5]) for n in names if n[:-5].isdigit())


# Bronze records its changes: an hourly run reads what ingest wrote since the previous run, including what a
# re-delivery overwrote in place (jobs/incremental.py).
CHANGE_FEED = {"delta.enableChangeDataFeed": "true"}


def checksum(path: str | Path) -> dict | None:
    """The latest version's checksum file (file count, metadata), or None when Delta did not write one."""
    crc = Path(path) / "_delta_log" / f"{delta_version(path):020d}.crc"
    try:
        return json.loads(crc.read_text())
    except (OSError, ValueError):
        return None


def table_properties(spark: SparkSession, path: str) -> dict[str, str]:
    crc = checksum(path)
    if crc is not None:
        return (crc.get("metadata") or {}).get("configuration") or {}
    return spark.sql(f"DESCRIBE DETAIL delta.`{path}`").select("properties").first()["properties"] or {}


def set_properties(spark: SparkSession, path: str, props: dict[str, str]) -> None:
    """Set the table properties that differ (a metadata-only commit)."""
    if any(table_properties(spark, path).get(k) != v for k, v in props.items()):
        spark.sql(
            f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ("
            + ", ".join(f"'{k}' = '{v}'" for k, v in props.items())
            + ")"
        )


def committed(write, what: str, attempts: int = CONFLICT_ATTEMPTS, sleep=time.sleep):
    """Run `write` (one Delta transaction) and redo it when another writer committed first. Each try reads the
    table afresh, and a Delta commit is all or nothing, so a conflict never leaves half a write behind."""
    for attempt in range(1, attempts + 1):
        try:
            return write()
        except Exception as e:
            name = conflict(e)
            if name is None:
                raise
            if attempt == attempts:
                raise RuntimeError(
                    f"{what}: another writer kept committing to this table first ({attempts} tries); "
                    f"nothing of this write was applied. Rerun when the other writer is done. "
                    f"Last conflict: {name}"
                ) from e
            log.warning(
                "%s: %s (another writer committed first); trying again (%d/%d)", what, name, attempt + 1, attempts
            )
            sleep(0.5 * 2**attempt)


class Lake:
    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()

    def bronze(self, feed: str) -> str:
        return str(self.root / "bronze" / feed)

    def gold(self, table: str) -> str:
        if table == "rejects":
            return str(self.root / "rejects")
        if table == "ingested_files":
            return str(self.root / "bronze" / "_ingested_files")
        if table == "dq_results":
            return str(self.root / "dq" / "results")
        return str(self.root / "gold" / table)

    def restrict_personal(self) -> None:
        """Bronze and rejects hold raw ID numbers and phones: only the pipeline's user may enter them."""
        for d in (self.root / "bronze", self.root / "rejects"):
            if d.is_dir():
                d.chmod(0o700)

    def commit_count(self) -> int:
        """Delta commits in the lake so far (the latest versions of its tables added up, staging included)."""
        total = 0
        for pattern in ("*/_delta_log", "*/*/_delta_log", "staging/*/*/_delta_log"):
            for log_dir in self.root.glob(pattern):
                try:
                    total += delta_version(log_dir.parent) + 1
                except (ValueError, OSError):  # a table being created or removed meanwhile
                    continue
        return total

    def exists(self, path: str) -> bool:
        return (Path(path) / "_delta_log").is_dir()

    # -- reading ---------------------------------------------------------------------------------------
    def read_bronze(self, spark: SparkSession, feed: str) -> DataFrame:
        path = self.bronze(feed)
        if not self.exists(path):
            return spark.createDataFrame([], schemas.bronze_schema(feed))
        return spark.read.format("delta").load(path)

    def read_gold(self, spark: SparkSession, table: str) -> DataFrame:
        path = self.gold(table)
        if not self.exists(path):
            return spark.createDataFrame([], schemas.gold_schema(table))
        return spark.read.format("delta").load(path)

    def partition_columns(self, spark: SparkSession, path: str) -> list[str]:
        """The partition columns of the table at `path`, from its latest checksum file when Delta wrote one."""
        crc = checksum(path)
        if crc is not None:
            return (crc.get("metadata") or {}).get("partitionColumns") or []
        return list(spark.sql(f"DESCRIBE DETAIL delta.`{path}`").select("partitionColumns").first()[0] or [])

    def version(self, spark: SparkSession, path: str) -> int | None:
        return delta_version(path) if self.exists(path) else None

    # -- writing ---------------------------------------------------------------------------------------
    def ensure(self, spark: SparkSession, path: str, schema) -> None:
        if not self.exists(path):
            spark.createDataFrame([], schema).write.format("delta").mode("ignore").save(path)

    def merge(
        self,
        spark: SparkSession,
        path: str,
        schema,
        source: DataFrame,
        keys: list[str],
        update_when: str | None = None,
        update_set: dict[str, str] | None = None,
        insert: bool = True,
        prune: str | None = None,
        properties: dict[str, str] | None = None,
        partition_by: str | None = None,
    ) -> None:
        """Upsert `source` into the Delta table at `path` on `keys` (created with `schema` if missing). `prune`, a
        condition on the target alone (`t.`) that every matching row meets, lets Delta skip the files that cannot
        match (by their min/max statistics) instead of reading the whole table. `properties`: table properties
        the table must have (set at creation, or before this write). `partition_by`: the table's partition column
        when this write creates it."""
        source = source.select([c.name for c in schema.fields])
        if not self.exists(path):  # first load: a plain write is one commit instead of two
            if not insert:
                return
            writer = source.write.format("delta").options(**(properties or {})).mode("append")
            if partition_by:
                writer = writer.partitionBy(partition_by)
            committed(lambda: writer.save(path), f"append to {path}")
            return
        if properties:
            set_properties(spark, path, properties)
        cond = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys) + (f" AND {prune}" if prune else "")
        # SQL, not DeltaTable: a Spark Connect client has no Delta API, and both sessions run the same statement.
        sql = f"MERGE INTO delta.`{path}` AS t USING {{source}} AS s ON {cond}"
        if update_when != "never":
            when = f" AND ({update_when})" if update_when else ""
            sets = "*" if update_set is None else ", ".join(f"t.`{k}` = {v}" for k, v in update_set.items())
            sql += f" WHEN MATCHED{when} THEN UPDATE SET {sets}"
        if insert:
            sql += " WHEN NOT MATCHED THEN INSERT *"
        committed(lambda: spark.sql(sql, source=source).collect(), f"merge into {path}")

    def add_columns(self, spark: SparkSession, path: str, schema) -> None:
        """Add the columns of `schema` that the table at `path`, made before them, lacks (nullable: its older rows
        read as null). Nothing when the table is missing or complete."""
        if not self.exists(path):
            return
        have = set(spark.read.format("delta").load(path).columns)
        missing = [f for f in schema.fields if f.name not in have]
        if missing:
            cols = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in missing)
            sql = f"ALTER TABLE delta.`{path}` ADD COLUMNS ({cols})"
            committed(lambda: spark.sql(sql).collect(), f"add columns to {path}")

    def append(self, spark: SparkSession, path: str, schema, df: DataFrame) -> None:
        self.ensure(spark, path, schema)
        df = df.select([c.name for c in schema.fields])
        committed(lambda: df.write.format("delta").mode("append").save(path), f"append to {path}")

    def overwrite(self, spark: SparkSession, path: str, schema, df: DataFrame) -> None:
        df = df.select([c.name for c in schema.fields])
        committed(
            lambda: df.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path),
            f"overwrite {path}",
        )

    def replace_where(self, spark: SparkSession, path: str, schema, df: DataFrame, cond: str) -> None:
        """Replace the rows matching `cond` (e.g. one run's) with `df`, in one commit."""
        self.ensure(spark, path, schema)
        df = df.select([c.name for c in schema.fields])
        committed(
            lambda: df.write.format("delta").mode("overwrite").option("replaceWhere", cond).save(path),
            f"replace {cond} in {path}",
        )
