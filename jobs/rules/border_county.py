"""Popup ⑤ — land border port counties: present in a listed county (valid at t) within W14; left_14d."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.policy import Policy
from jobs.rules.common import candidates, evidence_json, least_with_basis, plus_days


def rule(presence: DataFrame, border_port_counties: DataFrame, policy: Policy) -> DataFrame:
    b = border_port_counties.select(
        "county_code",
        "port_name",
        F.col("valid_from").cast("timestamp").alias("b_from"),
        F.date_add("valid_to", 1).cast("timestamp").alias("b_to"),
        F.col("_known_at").alias("b_known"),
        F.col("_valid_to").alias("b_valid_to"),
    )
    j = presence.join(b, "county_code")
    lo = F.greatest("p_from", "b_from")
    hi = F.when(F.col("b_to").isNull(), F.col("p_to")).otherwise(F.least("p_to", "b_to"))
    j = j.where(lo <= hi).withColumn("lo", lo).withColumn("hi", hi)
    stop, basis = least_with_basis(
        (plus_days(F.col("hi"), policy.window_days), "left_14d"),
        (F.col("valid_to"), "evidence_withdrawn"),
        (F.col("b_valid_to"), "evidence_withdrawn"),
    )
    return candidates(
        j,
        person_id=F.col("person_id"),
        popup_code=F.lit("5"),
        reason_type=F.lit("border_county"),
        cause=F.concat(F.lit("county="), F.col("county_code")),
        start=F.greatest("known_at", "b_known", "lo"),
        stop=stop,
        stop_basis=basis,
        release_mode=F.lit("auto"),
        registered_only=F.col("registered_only"),
        evidence_known_at=F.col("known_at"),
        evidence=evidence_json(
            feed=F.col("source"),
            record_id=F.col("record_id"),
            county=F.col("county_code"),
            port=F.col("port_name"),
            phone=F.col("phone_masked"),
            link_type=F.col("link_type"),
            present_from=F.col("p_from"),
            present_to=F.col("p_to"),
        ),
    )
