"""Popup ③ reason 3d — spatio-temporal companion (时空伴随). Not built yet (its own issue): the seam returns no
candidates, so the rest of the engine already carries 3d reasons end to end once this produces them."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession

from jobs.policy import Policy


def rule(spark: SparkSession, grid_dwells: DataFrame, links: DataFrame, case_reports: DataFrame, policy: Policy) -> DataFrame:
    from jobs.rules.common import CANDIDATE_COLUMNS
    from jobs.rules.episodes import CANDIDATE_SCHEMA

    return spark.createDataFrame([], CANDIDATE_SCHEMA).select(*CANDIDATE_COLUMNS)
