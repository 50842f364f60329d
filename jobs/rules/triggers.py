"""Popup ④ — 72-hour triggers released by a negative NAT (rules.md).

Triggers: a Beijing entry (entries within 24 h of the previous form one trigger, timed at the first), a
purchase of one of the four drug categories, a clinic visit with one of the eleven symptoms. A trigger first
known more than 72 h after its event creates nothing; once raised it persists until a negative NAT sampled at
or after the event (entry: from 48 h before) releases it. `episodes` applies the NAT part.
"""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from jobs.asof import ts
from jobs.keys import mask_phone
from jobs.policy import Policy
from jobs.rules.common import candidates, evidence_json, plus_hours
from jobs.rules.links import clip_to_links


def entry_events(stays: DataFrame, tickets: DataFrame, links: DataFrame, policy: Policy, t: datetime) -> DataFrame:
    """person_id, e, known_at, valid_to, source, record_id, phone_masked, link_type, registered_only."""
    cur = stays.where("_is_current")
    w = Window.partitionBy("phone").orderBy("first_seen", "record_id")
    home = F.col("county_code").startswith(policy.home_prefix)
    prev_home = F.lag(home).over(w)
    entering = cur.withColumn("_prev_home", prev_home).where(home & (F.col("_prev_home") == F.lit(False)))
    # an open stay is re-reported with a later last_seen: the entry was known from its first report that had it
    same = ["record_id", "phone", "county_code", "first_seen"]
    first = (
        stays.join(entering.select("record_id").distinct(), "record_id", "left_semi")
        .groupBy(*same)
        .agg(F.min("_known_at").alias("_entry_known"))
    )
    entering = entering.join(first, same)
    s = clip_to_links(entering, links, "first_seen", "first_seen").select(
        "person_id",
        F.col("first_seen").alias("e"),
        F.greatest("_entry_known", "link_known_at").alias("known_at"),
        F.col("_valid_to").alias("valid_to"),
        F.lit("telecom_stays").alias("source"),
        "record_id",
        mask_phone(F.col("phone")).alias("phone_masked"),
        "link_type",
        "registered_only",
    )
    tk = tickets.where(
        (F.col("status") != "refunded")
        & F.col("dest_county").startswith(policy.home_prefix)
        & ~F.col("origin_county").startswith(policy.home_prefix)
        & (F.col("arrive_at") <= ts(t))
    )
    k = tk.select(
        "person_id",
        F.col("arrive_at").alias("e"),
        F.col("_known_at").alias("known_at"),
        F.col("_valid_to").alias("valid_to"),
        F.lit("tickets").alias("source"),
        F.col("ticket_id").alias("record_id"),
        F.lit(None).cast("string").alias("phone_masked"),
        F.lit("ticket").alias("link_type"),
        F.lit(False).alias("registered_only"),
    )
    return s.unionByName(k)


def entry_triggers(entries: DataFrame, policy: Policy) -> DataFrame:
    # a ticket refunded or changed before it arrived (a stay corrected before its entry was known) was never an
    # entry: it must not time, or end, the group of a real one
    entries = entries.where(F.col("valid_to").isNull() | (F.col("valid_to") > F.greatest("known_at", "e")))
    w = Window.partitionBy("person_id").orderBy("e", "source", "record_id")
    gap = F.col("e") > plus_hours(F.lag("e").over(w), policy.entry_group_hours)
    g = entries.withColumn("_new", F.when(F.lag("e").over(w).isNull() | gap, 1).otherwise(0))
    g = g.withColumn("_grp", F.sum("_new").over(w.rowsBetween(Window.unboundedPreceding, 0)))
    first = g.groupBy("person_id", "_grp").agg(
        F.min("e").alias("e"),
        # a stay of a phone both bound and registered to p comes once per link: show the bound one, and
        # break every tie so that reruns and clusters agree
        F.min_by(
            F.struct("source", "record_id", "phone_masked", "link_type", "known_at", "valid_to"),
            F.struct("e", F.col("link_type") == "registered", "link_type", "source", "record_id"),
        ).alias("f"),
        F.bool_and("registered_only").alias("registered_only"),
        F.min(F.greatest("known_at", "e")).alias("start"),
    )
    return candidates(
        first.where(F.col("start") <= plus_hours(F.col("e"), policy.trigger_hours)),
        person_id=F.col("person_id"),
        popup_code=F.lit("4"),
        reason_type=F.lit("entry_72h"),
        cause=F.concat(F.lit("entry="), F.date_format("e", "yyyy-MM-dd'T'HH:mm:ss")),
        start=F.col("start"),
        stop=F.col("f.valid_to"),
        stop_basis=F.lit("evidence_withdrawn"),
        release_mode=F.lit("nat"),
        nat_from=plus_hours(F.col("e"), -policy.pre_entry_nat_hours),
        registered_only=F.col("registered_only"),
        evidence_known_at=F.col("f.known_at"),
        evidence=evidence_json(
            feed=F.col("f.source"),
            record_id=F.col("f.record_id"),
            entered_at=F.col("e"),
            phone=F.col("f.phone_masked"),
            link_type=F.col("f.link_type"),
        ),
    )


def drug_triggers(drug_purchases: DataFrame, policy: Policy) -> DataFrame:
    d = drug_purchases.where(F.col("drug_category").isin(*policy.drug_categories))
    start = F.greatest("_known_at", "purchased_at")
    return candidates(
        d.where(start <= plus_hours(F.col("purchased_at"), policy.trigger_hours)),
        person_id=F.col("person_id"),
        popup_code=F.lit("4"),
        reason_type=F.lit("drug_purchase"),
        cause=F.concat(F.lit("purchase="), F.col("purchase_id")),
        start=start,
        stop=F.col("_valid_to"),
        stop_basis=F.lit("evidence_withdrawn"),
        release_mode=F.lit("nat"),
        nat_from=F.col("purchased_at"),
        evidence_known_at=F.col("_known_at"),
        evidence=evidence_json(
            feed=F.lit("drug_purchases"),
            record_id=F.col("purchase_id"),
            pharmacy_id=F.col("pharmacy_id"),
            drug_category=F.col("drug_category"),
            purchased_at=F.col("purchased_at"),
        ),
    )


def clinic_triggers(clinic_visits: DataFrame, policy: Policy) -> DataFrame:
    wanted = F.array(*[F.lit(s) for s in policy.symptom_categories])
    v = clinic_visits.withColumn(
        "_hit", F.array_intersect(F.coalesce("symptoms", F.array().cast("array<string>")), wanted)
    )
    start = F.greatest("_known_at", "visited_at")
    return candidates(
        v.where((F.size("_hit") > 0) & (start <= plus_hours(F.col("visited_at"), policy.trigger_hours))),
        person_id=F.col("person_id"),
        popup_code=F.lit("4"),
        reason_type=F.lit("clinic_visit"),
        cause=F.concat(F.lit("visit="), F.col("visit_id")),
        start=start,
        stop=F.col("_valid_to"),
        stop_basis=F.lit("evidence_withdrawn"),
        release_mode=F.lit("nat"),
        nat_from=F.col("visited_at"),
        evidence_known_at=F.col("_known_at"),
        evidence=evidence_json(
            feed=F.lit("clinic_visits"),
            record_id=F.col("visit_id"),
            clinic_id=F.col("clinic_id"),
            symptoms=F.col("_hit"),
            visited_at=F.col("visited_at"),
        ),
    )


def rule(stays, tickets, links, drug_purchases, clinic_visits, policy: Policy, t: datetime) -> DataFrame:
    return (
        entry_triggers(entry_events(stays, tickets, links, policy, t), policy)
        .unionByName(drug_triggers(drug_purchases, policy))
        .unionByName(clinic_triggers(clinic_visits, policy))
    )
