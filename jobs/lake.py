"""The thin I/O layer: where tables live in the lake and how they are read and written (Delta)."""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from jobs import schemas


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
        if not self.exists(path):
            return None
        from delta.tables import DeltaTable

        return DeltaTable.forPath(spark, path).history(1).collect()[0]["version"]

    # -- writing ---------------------------------------------------------------------------------------
    def ensure(self, spark: SparkSession, path: str, schema) -> None:
        if not self.exists(path):
            spark.createDataFrame([], schema).write.format("delta").mode("ignore").save(path)

    def merge(self, spark: SparkSession, path: str, schema, source: DataFrame, keys: list[str],
              update_when: str | None = None, update_set: dict[str, str] | None = None,
              insert: bool = True) -> None:
        """Upsert `source` into the Delta table at `path` on `keys` (created with `schema` if missing)."""
        from delta.tables import DeltaTable

        source = source.select([c.name for c in schema.fields])
        if not self.exists(path):  # first load: a plain write is one commit instead of two
            if not insert:
                return
            source.write.format("delta").mode("append").save(path)
            return
        cond = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
        m = DeltaTable.forPath(spark, path).alias("t").merge(source.alias("s"), cond)
        if update_set is not None:
            m = m.whenMatchedUpdate(condition=update_when, set=update_set)
        elif update_when != "never":
            m = m.whenMatchedUpdateAll(condition=update_when)
        if insert:
            m = m.whenNotMatchedInsertAll()
        m.execute()

    def append(self, spark: SparkSession, path: str, schema, df: DataFrame) -> None:
        self.ensure(spark, path, schema)
        df.select([c.name for c in schema.fields]).write.format("delta").mode("append").save(path)

    def overwrite(self, spark: SparkSession, path: str, schema, df: DataFrame) -> None:
        df.select([c.name for c in schema.fields]).write.format("delta").mode("overwrite").option(
            "overwriteSchema", "true").save(path)
