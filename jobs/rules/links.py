"""Linked phones of a person (rules.md, Terms): bound / unbound Health Kit phones and phones registered to
the person's ID. A link holds from its start to its end as known at T; a phone's records count for the person
only inside that interval."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def linked_phones(kit_bindings: DataFrame, phone_registrations: DataFrame) -> DataFrame:
    """person_id, phone, link_type (bound/unbound/registered), link_from, link_to (null = open), link_known_at."""
    bound = kit_bindings.select(
        "person_id", "phone",
        F.when(F.col("unbound_at").isNotNull(), F.lit("unbound")).otherwise(F.lit("bound")).alias("link_type"),
        F.col("bound_at").alias("link_from"), F.col("unbound_at").alias("link_to"),
        F.col("_known_at").alias("link_known_at"))
    registered = phone_registrations.select(
        "person_id", "phone", F.lit("registered").alias("link_type"),
        F.col("registered_at").alias("link_from"), F.col("deregistered_at").alias("link_to"),
        F.col("_known_at").alias("link_known_at"))
    return bound.unionByName(registered)


def clip_to_links(records: DataFrame, links: DataFrame, t_from: str, t_to: str) -> DataFrame:
    """Join phone records [t_from, t_to] to the persons whose link covers them, clipped to the link interval.

    Adds person_id, link_type, link_known_at, and `registered_only` (the person holds this phone only through
    registrations). Records of a phone linked to a person both ways appear once per link type."""
    j = records.join(links, "phone")
    lo = F.greatest(F.col(t_from), F.col("link_from"))
    hi = F.when(F.col("link_to").isNull(), F.col(t_to)).otherwise(F.least(F.col(t_to), F.col("link_to")))
    j = j.withColumn("p_from", lo).withColumn("p_to", hi).where(F.col("p_from") <= F.col("p_to"))
    reg_only = links.groupBy("person_id", "phone").agg(
        F.bool_and(F.col("link_type") == "registered").alias("registered_only"))
    return j.join(reg_only, ["person_id", "phone"])
