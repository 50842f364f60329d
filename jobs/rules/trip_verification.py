"""Trip verification (行程核验, rules.md) and its outcomes 3e and no_pre_entry_nat.

- A city (4 digits) outside the home region is starred at t while a medium/high area inside it is in its
  risk period; it counts for p only with >= 4 h of p's linked-phone stays in it (telecom only).
- Present at t in W14 in a starred city with no declaration declared after t → (T, city=X)
  `declaration_required`; released `declared` by such a declaration, or `left_14d`.
- A declaration naming a county outside the home region that contains a medium/high area whose risk period
  overlaps the 14 days before it → 3e `declared_risk_county` (popup ③), judged on every declaration.
- Else, the declaration that released a `T` reason, when p entered Beijing after that reason's starred presence
  without a negative NAT sampled from 48 h before the entry → ④ `no_pre_entry_nat` (released by a NAT as in ④).
Risk periods are read as ③ reads them (`risk_areas.lifted_at`): a later `low` under the presence withdraws
what it raised at the instant the `low` became known; a `low` inside it ends the presence when known by then.
"""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from jobs.policy import Policy
from jobs.rules.common import candidates, evidence_json, least_with_basis, plus_days, plus_hours
from jobs.rules.risk_areas import RISKY, announcement_cols, lifted_at


def starred_presence(stays_presence: DataFrame, announcements: DataFrame, policy: Policy) -> DataFrame:
    """Stays (clipped to links) overlapping a starred city's risk period, with the >= 4 h rule applied. Adds
    lo/hi (the starred stretch), start (when the rule can first hold) and withdrawn_at (a later `low` under
    the stretch, or the announcement corrected)."""
    p = stays_presence.where(F.col("source") == "telecom_stays").withColumn("city", F.substring("county_code", 1, 4))
    a = announcement_cols(
        announcements.where(F.col("risk_level").isin(*RISKY) & ~F.col("area_code").startswith(policy.home_prefix))
    )
    j = p.join(F.broadcast(a.withColumn("city", F.substring("a_area", 1, 4))), "city")
    j = j.withColumn("lo", F.greatest("p_from", "a_eff")).where(F.col("lo") <= F.col("p_to"))
    j = j.withColumn("start", F.greatest("known_at", "a_known", "lo"))
    j = lifted_at(j, announcements, "lo", until="p_to", start=F.col("start"))
    j = j.withColumn("hi", F.coalesce("risk_to", "p_to")).withColumn(
        "withdrawn_at", F.least("lifted_known_at", "a_valid_to")
    )
    # >= 4 h of this person's time in the city within the trip window around the starred presence, on the stays
    # known when the rule would hold (each record's version current then), counted once: a phone both bound and
    # registered gives each stay twice, and two phones carried together overlap
    dur = p.select(
        "person_id",
        "city",
        F.col("p_from").alias("d_from"),
        F.col("p_to").alias("d_to"),
        F.col("known_at").alias("d_known"),
        F.col("valid_to").alias("d_valid_to"),
    )
    win = plus_days(F.col("lo"), -policy.trip_window_days)
    keys = ["person_id", "city", "record_id", "known_at", "link_type", "a_id", "lo", "hi", "start"]
    spans = (
        j.select(*keys)
        .join(dur, ["person_id", "city"])
        .where(
            (F.col("d_to") >= win)
            & (F.col("d_from") <= F.col("hi"))
            & (F.col("d_known") <= F.col("start"))
            & (F.col("d_valid_to").isNull() | (F.col("d_valid_to") > F.col("start")))
        )
    )
    spans = spans.select(*keys, F.greatest("d_from", win).alias("s"), F.least("d_to", "hi").alias("e"))
    # the length of the union: each span adds what lies beyond the latest end before it (in start order)
    before = F.max("e").over(Window.partitionBy(*keys).orderBy("s", "e").rowsBetween(Window.unboundedPreceding, -1))
    new_secs = F.unix_timestamp("e") - F.unix_timestamp(F.greatest("s", F.coalesce(before, F.col("s"))))
    stayed = (
        spans.withColumn("_secs", F.greatest(new_secs, F.lit(0)))
        .groupBy(*keys)
        .agg((F.sum("_secs") / 3600).alias("city_hours"))
    )
    return j.join(stayed, keys).where(F.col("city_hours") >= policy.trip_min_stay_hours)


def answered(starred: DataFrame, declarations: DataFrame, policy: Policy) -> DataFrame:
    """Starred presences still open to a declaration when raised, each with when it stops holding (stop,
    stop_basis) and the declaration that released it (`d_id`, `d_known`, set when stop_basis = declared)."""
    d = declarations.select(
        "person_id",
        F.col("declaration_id").alias("d_id"),
        F.col("declared_at").alias("d_at"),
        F.col("_known_at").alias("d_known"),
    )
    s = starred.where(F.col("start") <= plus_days(F.col("hi"), policy.trip_window_days))
    j = s.join(d, "person_id", "left")
    covers = F.col("d_at") >= F.least("hi", F.greatest("d_known", "start"))
    blocked = F.max(F.when((F.col("d_known") <= F.col("start")) & covers, 1).otherwise(0))
    first = F.min(F.when((F.col("d_known") > F.col("start")) & covers, F.struct("d_known", "d_id")))
    agg = j.groupBy(*s.columns).agg(blocked.alias("_blocked"), first.alias("_first")).where("_blocked = 0")
    agg = agg.select(*s.columns, F.col("_first.d_known").alias("d_known"), F.col("_first.d_id").alias("d_id"))
    stop, basis = least_with_basis(
        (plus_days(F.col("hi"), policy.trip_window_days), "left_14d"),
        (F.col("d_known"), "declared"),
        (F.col("valid_to"), "evidence_withdrawn"),
        (F.col("withdrawn_at"), "evidence_withdrawn"),
    )
    return agg.withColumn("stop", stop).withColumn("stop_basis", basis)


def declaration_required(ans: DataFrame) -> DataFrame:
    return candidates(
        ans,
        person_id=F.col("person_id"),
        popup_code=F.lit("T"),
        reason_type=F.lit("declaration_required"),
        cause=F.concat(F.lit("city="), F.col("city")),
        start=F.col("start"),
        stop=F.col("stop"),
        stop_basis=F.col("stop_basis"),
        release_mode=F.lit("auto"),
        registered_only=F.col("registered_only"),
        evidence_known_at=F.col("known_at"),
        evidence=evidence_json(
            feed=F.col("source"),
            record_id=F.col("record_id"),
            city=F.col("city"),
            county=F.col("county_code"),
            phone=F.col("phone_masked"),
            link_type=F.col("link_type"),
            present_from=F.col("lo"),
            present_to=F.col("hi"),
            stay_hours=F.round("city_hours", 1),
            announcement_id=F.col("a_id"),
            area=F.col("a_area"),
        ),
    )


def declared_risk_county(declarations: DataFrame, announcements: DataFrame, policy: Policy) -> DataFrame:
    d = declarations.select(
        "person_id",
        "declaration_id",
        "declared_at",
        F.col("_known_at").alias("d_known"),
        F.explode_outer("counties").alias("county"),
        F.col("_valid_to").alias("d_valid_to"),
    )
    d = d.where(F.col("county").isNotNull() & ~F.col("county").startswith(policy.home_prefix))
    a = announcement_cols(announcements.where(F.col("risk_level").isin(*RISKY)))
    j = d.join(F.broadcast(a), F.substring("a_area", 1, 6) == F.col("county")).where(
        F.col("a_eff") <= F.col("declared_at")
    )
    # the risk period must reach into the 14 days before the declaration: a `low` at or before their start
    # (known later) withdraws; one inside them, known by the raise, ends the exposure there
    j = j.withColumn("exp_from", F.greatest("a_eff", plus_days(F.col("declared_at"), -policy.window_days)))
    start = F.greatest("d_known", "a_known")
    j = lifted_at(j, announcements, "exp_from", until="declared_at", start=start)
    stop = F.least("d_valid_to", "lifted_known_at", "a_valid_to")
    return candidates(
        j,
        person_id=F.col("person_id"),
        popup_code=F.lit("3"),
        reason_type=F.lit("declared_risk_county"),
        cause=F.concat(F.lit("county="), F.col("county")),
        start=start,
        stop=stop,
        stop_basis=F.lit("evidence_withdrawn"),
        release_mode=F.lit("verify"),
        exposure_end=F.coalesce("risk_to", "declared_at"),
        evidence_known_at=start,
        evidence=evidence_json(
            feed=F.lit("trip_declarations"),
            record_id=F.col("declaration_id"),
            county=F.col("county"),
            declared_at=F.col("declared_at"),
            announcement_id=F.col("a_id"),
            area=F.col("a_area"),
            risk_level=F.col("a_level"),
            effective_from=F.col("a_eff"),
        ),
    )


def no_pre_entry_nat(
    ans: DataFrame, declarations: DataFrame, entries: DataFrame, risk_county: DataFrame, policy: Policy
) -> DataFrame:
    """Judged only on the declaration that released a `T` reason, against that reason's starred presence; each
    version of the declaration known from then on is judged when it became known. The reason stops holding when
    the starred presence is withdrawn (a later `low`, a corrected stay or announcement) or a 3e of the
    declaration is raised (3e goes first)."""
    r = ans.where(F.col("stop_basis") == "declared").select(
        "person_id",
        F.col("d_id").alias("declaration_id"),
        F.col("d_known").alias("answered_at"),
        "city",
        F.col("lo").alias("star_at"),
        F.least("valid_to", "withdrawn_at").alias("star_gone"),
    )
    d = declarations.select(
        "person_id",
        "declaration_id",
        "declared_at",
        "entered_beijing_at",
        F.col("_known_at").alias("d_known"),
        F.col("_valid_to").alias("d_valid_to"),
    )
    r = r.join(d, ["person_id", "declaration_id"]).where(F.col("d_known") >= F.col("answered_at"))
    # an observed entry counts when it had happened and was known by the declaration (a ticket bought for a
    # later arrival is not one yet), and was not refunded or corrected by then
    obs = entries.select(
        F.col("person_id").alias("o_pid"),
        F.col("e").alias("obs_e"),
        F.col("known_at").alias("e_known"),
        F.col("valid_to").alias("e_valid_to"),
    )
    cond = (
        (F.col("o_pid") == F.col("person_id"))
        & (F.col("obs_e") > F.col("star_at"))
        & (F.col("e_known") <= F.col("d_known"))
        & (F.col("obs_e") <= F.col("d_known"))
        & (F.col("e_valid_to").isNull() | (F.col("e_valid_to") > F.col("d_known")))
    )
    g = r.join(obs, cond, "left").groupBy(*r.columns).agg(F.min("obs_e").alias("first_obs_e"))
    g = g.withColumn("entry", F.coalesce("entered_beijing_at", "first_obs_e")).where(
        F.col("entry").isNotNull() & (F.col("entry") > F.col("star_at"))
    )
    e3 = (
        risk_county.select("person_id", F.get_json_object("evidence", "$.record_id").alias("declaration_id"), "start")
        .groupBy("person_id", "declaration_id")
        .agg(F.min("start").alias("e3_at"))
    )
    g = g.join(e3, ["person_id", "declaration_id"], "left")
    # a declared entry later than the declaration (declared before boarding) counts from that instant
    start = F.greatest("d_known", "entry")
    return candidates(
        g,
        person_id=F.col("person_id"),
        popup_code=F.lit("4"),
        reason_type=F.lit("no_pre_entry_nat"),
        cause=F.concat(F.lit("declaration="), F.col("declaration_id")),
        start=start,
        stop=F.least("d_valid_to", "star_gone", "e3_at"),
        stop_basis=F.lit("evidence_withdrawn"),
        release_mode=F.lit("nat"),
        nat_from=plus_hours(F.col("entry"), -policy.pre_entry_nat_hours),
        evidence_known_at=start,
        evidence=evidence_json(
            feed=F.lit("trip_declarations"),
            record_id=F.col("declaration_id"),
            declared_at=F.col("declared_at"),
            entered_beijing_at=F.col("entry"),
            entry_declared=F.col("entered_beijing_at").isNotNull(),
            city=F.col("city"),
            starred_from=F.col("star_at"),
        ),
    )


def rule(
    presence: DataFrame,
    declarations: DataFrame,
    announcements: DataFrame,
    entries: DataFrame,
    policy: Policy,
    t: datetime,
    materialize=lambda df: df,
) -> tuple[DataFrame, DataFrame, DataFrame]:
    """(T candidates, 3e candidates, no_pre_entry_nat candidates). `materialize` (the caller's `cut`) keeps the
    frames both outcomes read from being computed twice, and the plan shallow enough for a Spark Connect client."""
    ans = materialize(answered(starred_presence(presence, announcements, policy), declarations, policy))
    e3 = materialize(declared_risk_county(declarations, announcements, policy))
    return declaration_required(ans), e3, no_pre_entry_nat(ans, declarations, entries, e3, policy)
