"""Trip verification (行程核验, rules.md) and its outcomes 3e and no_pre_entry_nat.

- A city (4 digits) outside the home region is starred at t while a medium/high area inside it is in its
  risk period; it counts for p only with >= 4 h of p's linked-phone stays in it (telecom only).
- Present at t in W14 in a starred city with no declaration declared after t → (T, city=X)
  `declaration_required`; released `declared` by such a declaration, or `left_14d`.
- A declaration naming a county outside the home region that contains a medium/high area whose risk period
  overlaps the 14 days before it → 3e `declared_risk_county` (popup ③).
- Else, entered Beijing after the starred presence without a negative NAT sampled in the 48 h before the entry
  → ④ `no_pre_entry_nat` (released by a negative NAT as in ④).
"""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from jobs.policy import Policy
from jobs.rules.common import candidates, evidence_json, least_with_basis, plus_days, plus_hours

RISKY = ("medium", "high")


def risk_periods(announcements: DataFrame) -> DataFrame:
    """Medium/high announcements with the end of their period: the earliest effective_from of a later-announced
    `low` for the same area (null = still in force). Columns: announcement_id, area_code, building_id,
    risk_level, effective_from, announced_at, a_known, period_end."""
    a = announcements.where(F.col("risk_level").isin(*RISKY))
    lows = announcements.where(F.col("risk_level") == "low").select(
        F.col("area_code").alias("l_area"), F.col("building_id").alias("l_bldg"),
        F.col("effective_from").alias("l_eff"), F.col("announced_at").alias("l_ann"))
    cond = ((F.col("l_area") == F.col("area_code")) & F.col("l_bldg").eqNullSafe(F.col("building_id"))
            & (F.col("l_ann") > F.col("announced_at")))
    keys = ["announcement_id", "area_code", "building_id", "risk_level", "effective_from", "announced_at", "_known_at"]
    return a.select(*keys).join(lows, cond, "left").groupBy(*keys).agg(
        F.min(F.when(F.col("l_eff").isNotNull(), F.greatest("l_eff", "effective_from"))).alias("period_end")).withColumnRenamed("_known_at", "a_known")


def starred_presence(stays_presence: DataFrame, periods: DataFrame, policy: Policy) -> DataFrame:
    """Stays (clipped to links) overlapping a starred city's risk period, with the >= 4 h rule applied."""
    p = stays_presence.where(F.col("source") == "telecom_stays").withColumn("city", F.substring("county_code", 1, 4))
    per = periods.where(~F.col("area_code").startswith(policy.home_prefix)).withColumn("city", F.substring("area_code", 1, 4))
    j = p.join(F.broadcast(per), "city")
    lo = F.greatest("p_from", "effective_from")
    hi = F.when(F.col("period_end").isNull(), F.col("p_to")).otherwise(F.least("p_to", "period_end"))
    j = j.withColumn("lo", lo).withColumn("hi", hi).where(F.col("lo") <= F.col("hi"))
    j = j.withColumn("start", F.greatest("known_at", "a_known", "lo"))  # when the rule can first hold
    # >= 4 h of this person's time in the city within the trip window around the starred presence, on the stays
    # known when the rule would hold (each record's version current then), counted once: a phone both bound and
    # registered gives each stay twice, and two phones carried together overlap
    dur = p.select("person_id", "city", F.col("p_from").alias("d_from"), F.col("p_to").alias("d_to"),
                   F.col("known_at").alias("d_known"), F.col("valid_to").alias("d_valid_to"))
    win = plus_days(F.col("lo"), -policy.trip_window_days)
    keys = ["person_id", "city", "record_id", "known_at", "link_type", "announcement_id", "lo", "hi", "start"]
    spans = j.select(*keys).join(dur, ["person_id", "city"]).where(
        (F.col("d_to") >= win) & (F.col("d_from") <= F.col("hi")) & (F.col("d_known") <= F.col("start"))
        & (F.col("d_valid_to").isNull() | (F.col("d_valid_to") > F.col("start"))))
    spans = spans.select(*keys, F.greatest("d_from", win).alias("s"), F.least("d_to", "hi").alias("e"))
    # the length of the union: each span adds what lies beyond the latest end before it (in start order)
    before = F.max("e").over(Window.partitionBy(*keys).orderBy("s", "e").rowsBetween(Window.unboundedPreceding, -1))
    new_secs = F.unix_timestamp("e") - F.unix_timestamp(F.greatest("s", F.coalesce(before, F.col("s"))))
    stayed = spans.withColumn("_secs", F.greatest(new_secs, F.lit(0))).groupBy(*keys).agg(
        (F.sum("_secs") / 3600).alias("city_hours"))
    return j.join(stayed, keys).where(F.col("city_hours") >= policy.trip_min_stay_hours)


def declaration_required(starred: DataFrame, declarations: DataFrame, policy: Policy) -> DataFrame:
    d = declarations.select("person_id", F.col("declaration_id").alias("d_id"), F.col("declared_at").alias("d_at"),
                            F.col("_known_at").alias("d_known"))
    s = starred.where(F.col("start") <= plus_days(F.col("hi"), policy.trip_window_days))
    j = s.join(d, "person_id", "left")
    covers = F.col("d_at") >= F.least("hi", F.greatest("d_known", "start"))
    blocked = F.max(F.when((F.col("d_known") <= F.col("start")) & covers, 1).otherwise(0))
    declared = F.min(F.when((F.col("d_known") > F.col("start")) & covers, F.col("d_known")))
    keys = [c for c in s.columns]
    agg = j.groupBy(*keys).agg(blocked.alias("_blocked"), declared.alias("declared_at_known")).where("_blocked = 0")
    stop, basis = least_with_basis((plus_days(F.col("hi"), policy.trip_window_days), "left_14d"),
                                   (F.col("declared_at_known"), "declared"), (F.col("valid_to"), "evidence_withdrawn"))
    return candidates(
        agg, person_id=F.col("person_id"), popup_code=F.lit("T"), reason_type=F.lit("declaration_required"),
        cause=F.concat(F.lit("city="), F.col("city")), start=F.col("start"), stop=stop, stop_basis=basis,
        release_mode=F.lit("auto"), registered_only=F.col("registered_only"), evidence_known_at=F.col("known_at"),
        evidence=evidence_json(feed=F.col("source"), record_id=F.col("record_id"), city=F.col("city"),
                               county=F.col("county_code"), phone=F.col("phone_masked"), link_type=F.col("link_type"),
                               present_from=F.col("lo"), present_to=F.col("hi"), stay_hours=F.round("city_hours", 1),
                               announcement_id=F.col("announcement_id"), area=F.col("area_code")),
    )


def declared_risk_county(declarations: DataFrame, periods: DataFrame, policy: Policy) -> DataFrame:
    d = declarations.select("person_id", "declaration_id", "declared_at", F.col("_known_at").alias("d_known"),
                            F.explode_outer("counties").alias("county"), F.col("_valid_to").alias("d_valid_to"))
    d = d.where(F.col("county").isNotNull() & ~F.col("county").startswith(policy.home_prefix))
    window_lo = plus_days(F.col("declared_at"), -policy.window_days)
    j = d.join(F.broadcast(periods), F.substring("area_code", 1, 6) == F.col("county")).where(
        (F.col("effective_from") <= F.col("declared_at")) & (F.col("period_end").isNull() | (F.col("period_end") > window_lo)))
    exposure_end = F.when(F.col("period_end").isNull(), F.col("declared_at")).otherwise(F.least("period_end", "declared_at"))
    return candidates(
        j, person_id=F.col("person_id"), popup_code=F.lit("3"), reason_type=F.lit("declared_risk_county"),
        cause=F.concat(F.lit("county="), F.col("county")), start=F.greatest("d_known", "a_known"),
        stop=F.col("d_valid_to"), stop_basis=F.lit("evidence_withdrawn"), release_mode=F.lit("verify"),
        exposure_end=exposure_end, evidence_known_at=F.greatest("d_known", "a_known"),
        evidence=evidence_json(feed=F.lit("trip_declarations"), record_id=F.col("declaration_id"), county=F.col("county"),
                               declared_at=F.col("declared_at"), announcement_id=F.col("announcement_id"),
                               area=F.col("area_code"), risk_level=F.col("risk_level"), effective_from=F.col("effective_from")),
    )


def no_pre_entry_nat(declarations: DataFrame, starred: DataFrame, entries: DataFrame, risk_county: DataFrame,
                     policy: Policy) -> DataFrame:
    d = declarations.select("person_id", "declaration_id", "declared_at", "entered_beijing_at",
                            F.col("_known_at").alias("d_known"), F.col("_valid_to").alias("d_valid_to"))
    with_3e = risk_county.select(F.get_json_object("evidence", "$.record_id").alias("declaration_id")).distinct()
    d = d.join(with_3e, "declaration_id", "left_anti")
    first_star = starred.groupBy("person_id").agg(F.min("lo").alias("star_at"))
    d = d.join(first_star, "person_id").where(F.col("star_at") <= F.col("declared_at"))
    observed = entries.select("person_id", F.col("e").alias("obs_e"), F.col("known_at").alias("e_known"))
    # judged at the declaration: an entry that had happened and was known by then (a ticket bought for a later
    # arrival is not one yet)
    j = d.join(observed, "person_id", "left").where(
        F.col("obs_e").isNull() | ((F.col("obs_e") > F.col("star_at")) & (F.col("e_known") <= F.col("d_known"))
                                   & (F.col("obs_e") <= F.col("d_known"))))
    g = j.groupBy("person_id", "declaration_id", "declared_at", "entered_beijing_at", "d_known", "d_valid_to", "star_at").agg(
        F.min("obs_e").alias("first_obs_e"))
    e = F.coalesce("entered_beijing_at", "first_obs_e")
    g = g.withColumn("entry", e).where(F.col("entry").isNotNull() & (F.col("entry") > F.col("star_at")))
    return candidates(
        g, person_id=F.col("person_id"), popup_code=F.lit("4"), reason_type=F.lit("no_pre_entry_nat"),
        cause=F.concat(F.lit("declaration="), F.col("declaration_id")), start=F.col("d_known"),
        stop=F.col("d_valid_to"), stop_basis=F.lit("evidence_withdrawn"), release_mode=F.lit("nat"),
        nat_from=plus_hours(F.col("entry"), -policy.pre_entry_nat_hours), evidence_known_at=F.col("d_known"),
        evidence=evidence_json(feed=F.lit("trip_declarations"), record_id=F.col("declaration_id"),
                               declared_at=F.col("declared_at"), entered_beijing_at=F.col("entry"),
                               entry_declared=F.col("entered_beijing_at").isNotNull()),
    )


def rule(presence: DataFrame, declarations: DataFrame, announcements: DataFrame, entries: DataFrame, policy: Policy,
         t: datetime) -> tuple[DataFrame, DataFrame, DataFrame]:
    """(T candidates, 3e candidates, no_pre_entry_nat candidates)."""
    periods = risk_periods(announcements)
    starred = starred_presence(presence, periods, policy)
    t_cands = declaration_required(starred, declarations, policy)
    e3 = declared_risk_county(declarations, periods, policy)
    nat = no_pre_entry_nat(declarations, starred, entries, e3, policy)
    return t_cands, e3, nat
