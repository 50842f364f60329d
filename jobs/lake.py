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


def conflicts() -> tuple[type[Exception], ...]:
    """Delta's commit-conflict exceptions (none of them derives from a common conflict class in Python)."""
    from delta import exceptions as d

    return (d.DeltaConcurrentModificationException, d.ConcurrentWriteException, d.MetadataChangedException,
            d.ProtocolChangedException, d.ConcurrentAppendException, d.ConcurrentDeleteReadException,
            d.ConcurrentDeleteDeleteException, d.ConcurrentTransactionException)


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
    from delta.tables import DeltaTable

    return DeltaTable.forPath(spark, path).detail().select("properties").first()["properties"] or {}


def set_properties(spark: SparkSession, path: str, props: dict[str, str]) -> None:
    """Set the table properties that differ (a metadata-only commit)."""
    if any(table_properties(spark, path).get(k) != v for k, v in props.items()):
        spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ("
                  + ", ".join(f"'{k}' = '{v}'" for k, v in props.items()) + ")")


def committed(write, what: str, attempts: int = CONFLICT_ATTEMPTS, sleep=time.sleep):
    """Run `write` (one Delta transaction) and redo it when another writer committed first. Each try reads the
    table afresh, and a Delta commit is all or nothing, so a conflict never leaves half a write behind."""
    for attempt in range(1, attempts + 1):
        try:
            return write()
        except conflicts() as e:
            if attempt == attempts:
                raise RuntimeError(f"{what}: another writer kept committing to this table first ({attempts} tries); "
                                   f"nothing of this write was applied. Rerun when the other writer is done. "
                                   f"Last conflict: {type(e).__name__}") from e
            log.warning("%s: %s (another writer committed first); trying again (%d/%d)", what,
                        type(e).__name__, attempt + 1, attempts)
            sleep(0.5 * 2 ** attempt)


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

    def version(self, spark: SparkSession, path: str) -> int | None:
        return delta_version(path) if self.exists(path) else None

    # -- writing ---------------------------------------------------------------------------------------
    def ensure(self, spark: SparkSession, path: str, schema) -> None:
        if not self.exists(path):
            spark.createDataFrame([], schema).write.format("delta").mode("ignore").save(path)

    def merge(self, spark: SparkSession, path: str, schema, source: DataFrame, keys: list[str],
              update_when: str | None = None, update_set: dict[str, str] | None = None,
              insert: bool = True, prune: str | None = None, properties: dict[str, str] | None = None) -> None:
        """Upsert `source` into the Delta table at `path` on `keys` (created with `schema` if missing). `prune`, a
        condition on the target alone (`t.`) that every matching row meets, lets Delta skip the files that cannot
        match (by their min/max statistics) instead of reading the whole table. `properties`: table properties
        the table must have (set at creation, or before this write)."""
        from delta.tables import DeltaTable

        source = source.select([c.name for c in schema.fields])
        if not self.exists(path):  # first load: a plain write is one commit instead of two
            if not insert:
                return
            committed(lambda: source.write.format("delta").options(**(properties or {})).mode("append").save(path),
                      f"append to {path}")
            return
        if properties:
            set_properties(spark, path, properties)
        cond = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys) + (f" AND {prune}" if prune else "")

        def once():
            m = DeltaTable.forPath(spark, path).alias("t").merge(source.alias("s"), cond)
            if update_set is not None:
                m = m.whenMatchedUpdate(condition=update_when, set=update_set)
            elif update_when != "never":
                m = m.whenMatchedUpdateAll(condition=update_when)
            if insert:
                m = m.whenNotMatchedInsertAll()
            m.execute()
        committed(once, f"merge into {path}")

    def append(self, spark: SparkSession, path: str, schema, df: DataFrame) -> None:
        self.ensure(spark, path, schema)
        df = df.select([c.name for c in schema.fields])
        committed(lambda: df.write.format("delta").mode("append").save(path), f"append to {path}")

    def overwrite(self, spark: SparkSession, path: str, schema, df: DataFrame) -> None:
        df = df.select([c.name for c in schema.fields])
        committed(lambda: df.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path),
                  f"overwrite {path}")

    def replace_where(self, spark: SparkSession, path: str, schema, df: DataFrame, cond: str) -> None:
        """Replace the rows matching `cond` (e.g. one run's) with `df`, in one commit."""
        self.ensure(spark, path, schema)
        df = df.select([c.name for c in schema.fields])
        committed(lambda: df.write.format("delta").mode("overwrite").option("replaceWhere", cond).save(path),
                  f"replace {cond} in {path}")
