"""Linked phones of a person (rules.md, Terms): bound / unbound Health Kit phones and phones registered to
the person's ID. A link holds from its start to its end as known at T; a phone's records count for the person
only inside that interval."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.rules.intervals import islands


def linked_phones(kit_bindings: DataFrame, phone_registrations: DataFrame) -> DataFrame:
    """person_id, phone, link_type (bound/unbound/registered), link_from, link_to (null = open), link_known_at."""
    bound = kit_bindings.select(
        "person_id",
        "phone",
        F.when(F.col("unbound_at").isNotNull(), F.lit("unbound")).otherwise(F.lit("bound")).alias("link_type"),
        F.col("bound_at").alias("link_from"),
        F.col("unbound_at").alias("link_to"),
        F.col("_known_at").alias("link_known_at"),
    )
    registered = phone_registrations.select(
        "person_id",
        "phone",
        F.lit("registered").alias("link_type"),
        F.col("registered_at").alias("link_from"),
        F.col("deregistered_at").alias("link_to"),
        F.col("_known_at").alias("link_known_at"),
    )
    return bound.unionByName(registered)


def registered_only(rows: DataFrame, links: DataFrame, lo: str, hi: str) -> DataFrame:
    """Add `registered_only` to rows of a person's phone (person_id, phone, link_type) over [lo, hi]: true for a
    `registered` row unless a bound/unbound link of the same person and phone held during the whole of [lo, hi]
    (rules.md, Verifications: the letter is needed when the evidence reached p only through `registered` links,
    not when the phone was also bound to p then). Only when each link held counts: a binding that ended years
    ago, or that starts after the record, does not spare the letter.

    A binding covering only part of [lo, hi] leaves the row registered-only: its own row (the record clipped to
    the binding, not registered-only) is the evidence of that part wherever that part is evidence at all, and
    the registered row may be evidence only through the part the binding missed (a stay exposed before the
    phone was bound). Touching or overlapping bindings of the phone count as one stretch, as a link's interval is
    closed at both ends ([link_from, link_to], as `clip_to_links` clips)."""
    bound = links.where(F.col("link_type") != "registered").select(
        "person_id", "phone", "link_from", "link_to", F.lit(None).cast("string").alias("stop_basis")
    )
    held = islands(bound, ["person_id", "phone"], "link_from", "link_to").select(
        F.col("person_id").alias("_b_person"),
        F.col("phone").alias("_b_phone"),
        F.col("link_from").alias("_b_from"),
        F.col("link_to").alias("_b_to"),
    )
    # the islands are disjoint with gaps between them, so at most one covers a row: the left join adds no rows
    covered = (
        (F.col("person_id") == F.col("_b_person"))
        & (F.col("phone") == F.col("_b_phone"))
        & (F.col("_b_from") <= F.col(lo))
        & (F.col("_b_to").isNull() | (F.col("_b_to") >= F.col(hi)))
    )
    return (
        rows.join(held, covered, "left")
        .withColumn("registered_only", (F.col("link_type") == "registered") & F.col("_b_from").isNull())
        .drop("_b_person", "_b_phone", "_b_from", "_b_to")
    )


def clip_to_links(records: DataFrame, links: DataFrame, t_from: str, t_to: str) -> DataFrame:
    """Join phone records [t_from, t_to] to the persons whose link covers them, clipped to the link interval.

    Adds person_id, link_type, link_known_at, p_from, p_to and `registered_only` (`registered_only`: the row is
    a registration's and no binding of the same person and phone held during its clipped interval [p_from, p_to]).
    Records of a phone linked to a person both ways appear once per link."""
    j = records.join(links, "phone")
    lo = F.greatest(F.col(t_from), F.col("link_from"))
    hi = F.when(F.col("link_to").isNull(), F.col(t_to)).otherwise(F.least(F.col(t_to), F.col("link_to")))
    j = j.withColumn("p_from", lo).withColumn("p_to", hi).where(F.col("p_from") <= F.col("p_to"))
    return registered_only(j, links, "p_from", "p_to")
