"""Bronze as known at an as-of T.

Versioned feeds keep every (key, knowledge time) version known at T, each with `_valid_to`: the effective
knowledge time of the next version of the same key (null if none), so a rule can tell when a record it used
stopped being the current truth (evidence_withdrawn). Two-event feeds (bindings, registrations) expose their
end only once `_end_known_at <= T`.
"""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from jobs import schemas
from jobs.lake import Lake
from jobs.spark import each_of, lookup


def ts(value: datetime) -> F.Column:
    return F.lit(value.strftime("%Y-%m-%d %H:%M:%S.%f")).cast("timestamp")


def known_by(df: DataFrame, t: datetime) -> DataFrame:
    """Every version known at T, before versions are told apart (enough where a superset is safe)."""
    return df.where(F.col("_known_at") <= ts(t))


def as_of(df: DataFrame, feed: str, t: datetime) -> DataFrame:
    spec = schemas.feed_spec(feed)
    df = known_by(df, t)
    if schemas.is_two_event(feed):
        end = spec["end_knowledge_time"]
        visible = F.col("_end_known_at").isNotNull() & (F.col("_end_known_at") <= ts(t))
        return df.withColumn(end, F.when(visible, F.col(end))).withColumn(
            "_end_known_at", F.when(visible, F.col("_end_known_at"))
        )
    order = [F.col("_source_known_at"), F.col("_file"), F.col("_line")]  # latest knowledge time wins
    w = Window.partitionBy(*spec["key"]).orderBy(*order)
    return df.withColumn("_valid_to", F.lead("_known_at").over(w)).withColumn(
        "_is_current", F.col("_valid_to").isNull()
    )


def current(df: DataFrame) -> DataFrame:
    """Only the version current at T (for reference data such as persons and venues)."""
    return df.where("_is_current")


def load(spark: SparkSession, lake: Lake, t: datetime, skip: tuple[str, ...] = ()) -> dict[str, DataFrame]:
    """Every feed the rules read as known at T (but `skip`; the optional reference feeds only name things),
    cached: each is read by several rules. The tables' snapshots are read side by side (driver work, each table on
    its own)."""
    skip = (*skip, *schemas.optional_feeds())
    return each_of(
        lambda f: as_of(lake.read_bronze(spark, f), f, t).persist(), [f for f in schemas.FEEDS if f not in skip]
    )


def as_of_for(
    raw: DataFrame, feed: str, t: datetime, wanted: DataFrame, col: str, also: tuple[DataFrame, str] | None = None
) -> DataFrame:
    """`as_of(raw, feed, t)` restricted to the rows whose `col` is in `wanted` (and, with `also` = (frame, column),
    whose column is in that frame too), without windowing the whole feed: the version window runs only over the
    keys those rows have. It must see every version of such a key, also one whose `col` differs (a dwell corrected
    onto another phone ends the old version), hence the keys first."""
    key = schemas.feed_spec(feed)["key"]
    sides = [(lookup(df.select(c).distinct()), c) for df, c in [(wanted, col)] + ([also] if also else [])]

    def kept(df: DataFrame) -> DataFrame:
        for side, c in sides:
            df = df.join(side, c, "left_semi")
        return df

    mine = kept(known_by(raw, t))
    versions = known_by(raw, t).join(lookup(mine.select(*key).distinct()), key, "left_semi")
    return kept(as_of(versions, feed, t))
