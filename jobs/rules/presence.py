"""Presence of a person in a county (rules.md, Terms): a telecom stay of a linked phone covering t, or a
non-refunded ticket departing / arriving at t (instants only, and only at times <= T)."""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.asof import ts
from jobs.keys import mask_phone
from jobs.rules.links import clip_to_links


def presence(stays: DataFrame, tickets: DataFrame, links: DataFrame, t: datetime) -> DataFrame:
    """person_id, county_code, p_from, p_to, known_at, valid_to (evidence withdrawn then), source, record_id,
    phone_masked, link_type, registered_only."""
    s = clip_to_links(stays, links, "first_seen", "last_seen").select(
        "person_id",
        "county_code",
        "p_from",
        "p_to",
        F.greatest("_known_at", "link_known_at").alias("known_at"),
        F.col("_valid_to").alias("valid_to"),
        F.lit("telecom_stays").alias("source"),
        "record_id",
        mask_phone(F.col("phone")).alias("phone_masked"),
        "link_type",
        "registered_only",
    )
    tk = tickets.where(F.col("status") != "refunded")
    legs = tk.select("*", F.col("origin_county").alias("county_code"), F.col("depart_at").alias("p_at")).unionByName(
        tk.select("*", F.col("dest_county").alias("county_code"), F.col("arrive_at").alias("p_at"))
    )
    legs = legs.where(F.col("p_at") <= ts(t)).select(
        "person_id",
        "county_code",
        F.col("p_at").alias("p_from"),
        F.col("p_at").alias("p_to"),
        F.col("_known_at").alias("known_at"),
        F.col("_valid_to").alias("valid_to"),
        F.lit("tickets").alias("source"),
        F.col("ticket_id").alias("record_id"),
        F.lit(None).cast("string").alias("phone_masked"),
        F.lit("ticket").alias("link_type"),
        F.lit(False).alias("registered_only"),
    )
    return s.unionByName(legs)
