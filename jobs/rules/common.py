"""Shared pieces of the rules: the candidate schema, time helpers."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

CANDIDATE_COLUMNS = [
    "person_id",
    "popup_code",
    "reason_type",
    "cause",
    "start",
    "stop",
    "stop_basis",
    "release_mode",
    "nat_from",
    "exposure_end",
    "registered_only",
    "evidence_known_at",
    "evidence",
]


def plus_hours(c: Column, hours: float) -> Column:
    return c + F.make_interval(F.lit(0), F.lit(0), F.lit(0), F.lit(0), F.lit(0), F.lit(0), F.lit(float(hours) * 3600))


def plus_days(c: Column, days: int) -> Column:
    return c + F.make_interval(F.lit(0), F.lit(0), F.lit(0), F.lit(int(days)))


def midnight_after_days(d: Column, days: int | Column) -> Column:
    """00:00 local of date d + days."""
    return F.date_add(d, days).cast("timestamp")


def least_with_basis(*pairs: tuple[Column, str | Column]) -> tuple[Column, Column]:
    """(earliest instant, its basis); ties go to the earlier pair; null instants are ignored."""
    stop = F.least(*[c for c, _ in pairs])
    basis = F.coalesce(*[F.when(c == stop, F.lit(b) if isinstance(b, str) else b) for c, b in pairs])
    return stop, basis


def candidates(df: DataFrame, **cols: Column) -> DataFrame:
    """Select the candidate columns, filling the optional ones with nulls."""
    defaults = {
        "stop": F.lit(None).cast("timestamp"),
        "stop_basis": F.lit(None).cast("string"),
        "nat_from": F.lit(None).cast("timestamp"),
        "exposure_end": F.lit(None).cast("timestamp"),
        "registered_only": F.lit(False),
    }
    merged = {**defaults, **cols}
    return df.select(*[merged[c].alias(c) if c in merged else F.col(c) for c in CANDIDATE_COLUMNS]).where(
        F.col("stop").isNull() | (F.col("start") < F.col("stop"))
    )


def evidence_json(**fields: Column) -> Column:
    return F.to_json(F.struct(*[v.alias(k) for k, v in fields.items()]))
