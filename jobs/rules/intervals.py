"""Gaps and islands over [start, stop) intervals (null stop = open-ended), in Spark."""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

FAR = "9999-12-31 00:00:00"


def islands(
    df: DataFrame,
    keys: list[str],
    start: str = "start",
    stop: str = "stop",
    basis: str = "stop_basis",
    basis_order: tuple[str, ...] = (),
) -> DataFrame:
    """Merge overlapping or touching intervals per key: keys, start, stop, stop_basis (of the latest stop). When
    several intervals share the latest stop, the basis earliest in `basis_order` wins (then the greatest name),
    never the row order."""
    far = F.lit(FAR).cast("timestamp")
    d = df.select(*keys, F.col(start).alias("_s"), F.coalesce(F.col(stop), far).alias("_e"), F.col(basis).alias("_b"))
    w = Window.partitionBy(*keys).orderBy("_s", "_e")
    prev_end = F.max("_e").over(w.rowsBetween(Window.unboundedPreceding, -1))
    d = d.withColumn("_new", F.when(prev_end.isNull() | (F.col("_s") > prev_end), 1).otherwise(0))
    d = d.withColumn("_island", F.sum("_new").over(w.rowsBetween(Window.unboundedPreceding, 0)))
    rank = F.lit(len(basis_order))
    for i, b in reversed(list(enumerate(basis_order))):
        rank = F.when(F.col("_b") == b, F.lit(i)).otherwise(rank)
    g = d.groupBy(*keys, "_island").agg(
        F.min("_s").alias(start),
        F.max("_e").alias("_e"),
        F.max_by("_b", F.struct("_e", (-rank).alias("_r"), "_b")).alias(basis),
    )
    return g.select(*keys, start, F.when(F.col("_e") < far, F.col("_e")).alias(stop), basis)
