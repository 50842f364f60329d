"""Screening at an as-of T: bronze as known at T → candidates of every rule → reason episodes → gold tables.

`screen(...)` is the pure part (DataFrames in, DataFrames out); `publish` is the thin Delta layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import asof, schemas
from jobs.asof import ts
from jobs.faults import point
from jobs.incremental import by_person
from jobs.keys import person_key
from jobs.lake import Lake
from jobs.policy import Policy, Span
from jobs.rules import (
    border_county,
    case_county,
    companion,
    inbound_quarantine,
    risk_areas,
    triggers,
    trip_verification,
)
from jobs.rules.episodes import CANDIDATE_SCHEMA, episodes, release_events
from jobs.rules.links import linked_phones
from jobs.rules.presence import presence
from jobs.spark import cut


def inputs(spark: SparkSession, lake: Lake, t: datetime) -> dict[str, DataFrame]:
    """Bronze as of T for a full screen, cached. grid_dwells, most of bronze, only in the cells case phones dwelt
    in: all the companion rule (its only reader) needs, and the whole feed is then never windowed or cached."""
    b = asof.load(spark, lake, t, skip=("grid_dwells",))
    links = linked_phones(b["kit_bindings"], b["phone_registrations"])
    b["grid_dwells"] = cut(
        companion.dwells_in_case_cells(lake.read_bronze(spark, "grid_dwells"), links, b["case_reports"], t)
    )
    return b


def rule_candidates(
    spark: SparkSession, b: dict[str, DataFrame], t: datetime, policy: Policy, people: DataFrame | None = None
) -> DataFrame:
    """Every rule's candidates (see jobs.rules) for the popup kinds the policy has switched on, of `people`
    (person_key; None = everyone). The companion rule takes them before its pairs: an hourly run's bronze also
    holds the cases' own rows, and the cases' pairs with other cases were most of its candidates (over 30 times
    the screened people's own in a quiet hour)."""
    links = cut(linked_phones(b["kit_bindings"], b["phone_registrations"]))
    person_links = None if people is None else cut(by_person(links, people))
    pres = cut(presence(b["telecom_stays"], b["tickets"], links, t))
    ann = b["risk_announcements"]
    entries = cut(triggers.entry_events(b["telecom_stays"], b["tickets"], links, policy, t))
    t_cands, e3, no_nat = trip_verification.rule(pres, b["trip_declarations"], ann, entries, policy, t, cut)
    parts = {
        "1": [case_county.rule(pres, b["case_reports"], ann, policy)],
        "2": [inbound_quarantine.rule(b["inbound_entries"], policy)],
        "3": [
            risk_areas.visit_rule(b["venue_scans"], b["venues"], ann, policy),
            risk_areas.county_rule(pres, ann, policy),
            risk_areas.colocation_rule(b["venue_scans"], b["case_reports"], policy),
            companion.rule(spark, b["grid_dwells"], links, b["case_reports"], policy, person_links),
            e3,
        ],
        "4": [
            triggers.entry_triggers(entries, policy),
            triggers.drug_triggers(b["drug_purchases"], policy),
            triggers.clinic_triggers(b["clinic_visits"], policy),
            no_nat,
        ],
        "5": [border_county.rule(pres, b["border_port_counties"], policy)],
        "T": [t_cands],
    }
    out = spark.createDataFrame([], CANDIDATE_SCHEMA)
    for code, dfs in parts.items():
        if policy.enabled(code):
            for df in dfs:
                out = out.unionByName(df)
    return (out if people is None else by_person(out, people)).distinct()


def candidates(
    spark: SparkSession,
    b: dict[str, DataFrame],
    t: datetime,
    policy: Policy,
    people: DataFrame | None = None,
    spans: list[Span] | None = None,
) -> DataFrame:
    """The candidates of each policy version over the instants it governs (rules.md, Policy versions): a version's
    holds start no earlier than it takes effect and stop when the next one does (`policy:<next id>`, which the
    episodes report as evidence_withdrawn under that version when the next one does not hold them up)."""
    if not spans or len(spans) == 1:
        return rule_candidates(spark, b, t, spans[0].policy if spans else policy, people)
    out = None
    for sp in spans:
        c = rule_candidates(spark, b, t, sp.policy, people)
        if sp.start is not None:
            c = c.withColumn("start", F.greatest("start", ts(sp.start)))
        if sp.stop is not None:
            beyond = F.col("stop").isNull() | (F.col("stop") > ts(sp.stop))
            c = c.withColumn("stop_basis", F.when(beyond, F.lit(f"policy:{sp.next_id}")).otherwise(F.col("stop_basis")))
            c = c.withColumn("stop", F.when(beyond, ts(sp.stop)).otherwise(F.col("stop")))
        c = c.where(F.col("stop").isNull() | (F.col("start") < F.col("stop")))
        out = c if out is None else out.unionByName(c)
    return out


def with_keys(eps: DataFrame) -> DataFrame:
    pk = person_key(F.col("person_id"))
    rk = F.substring(
        F.sha2(
            F.concat_ws(
                "|",
                pk,
                "popup_code",
                "reason_type",
                "cause",
                F.date_format("raised_at", "yyyy-MM-dd'T'HH:mm:ss.SSSSSS"),
            ),
            256,
        ),
        1,
        32,
    )
    return eps.withColumn("person_key", pk).withColumn("reason_key", rk)


def screen(
    spark: SparkSession,
    b: dict[str, DataFrame],
    t: datetime,
    policy: Policy,
    people: DataFrame | None = None,
    spans: list[Span] | None = None,
) -> DataFrame:
    """Reasons as of T (all episodes ever raised up to T), keyed; no run ids. `people`: person_key of the people
    to screen (None = everyone); a person's episodes depend on their own candidates and events only."""
    cands = cut(candidates(spark, b, t, policy, people, spans))
    events = release_events(b["verifications"], b["nat_results"])
    return with_keys(episodes(cands, events, t, policy)).drop("person_id")


def status(reasons: DataFrame, t: datetime, policy: Policy, run_id: str) -> DataFrame:
    """popup_status: people with an active reason or released in the last 14 days."""
    order = F.create_map(*[x for i, c in enumerate(policy.display_order) for x in (F.lit(c), F.lit(i))])
    keep_from = ts(t - timedelta(days=policy.status_keep_released_days))
    r = reasons.where((F.col("status") == "active") | (F.col("released_at") >= keep_from))
    active = F.col("status") == "active"
    g = r.groupBy("person_key").agg(
        F.array_sort(F.collect_set(F.when(active, F.col("popup_code")))).alias("codes"),
        F.min(F.when(active, F.col("raised_at"))).alias("first_active"),
        F.max("released_at").alias("last_release"),
    )
    codes_sorted = F.transform(
        F.array_sort(F.transform("codes", lambda c: F.struct(order[c].alias("o"), c.alias("c")))), lambda s: s["c"]
    )
    return g.select(
        "person_key",
        codes_sorted.alias("active_codes"),
        F.try_element_at(codes_sorted, F.lit(1)).alias("display_code"),
        (F.size("codes") == 0).alias("green"),
        F.coalesce("first_active", "last_release").alias("since"),
        F.lit(run_id).alias("updated_run_id"),
    ).withColumn("display_code", F.when(F.size("active_codes") > 0, F.col("display_code")))


def before_run(gold: DataFrame, run_id: str) -> DataFrame:
    """popup_reasons as it stood before `run_id` published anything. A rerun after a crash in the middle of
    publishing finds part of its own publish applied; its plan (and so its result gates) must still be the
    whole change."""
    mine = F.col("release_run_id") == F.lit(run_id)
    return gold.where(~F.col("first_run_id").eqNullSafe(F.lit(run_id))).withColumn(
        "status", F.when(mine, F.lit("active")).otherwise(F.col("status"))
    )


KEYS = ["person_key", "reason_key"]
# What a publish may change in a reason already in gold: an active reason takes its new state; a released one
# is a published fact and stays as it was (the MERGE updates only where the target is still active).
UPDATED = (
    "evidence",
    "status",
    "last_evidence_at",
    "release_rule",
    "release_eligible_at",
    "released_at",
    "release_basis",
    "release_detail",
    "release_run_id",
)


@dataclass(frozen=True)
class Plan:
    """What publishing a run's screened reasons does to popup_reasons: the result gates judge `assign` and
    `release`; `publish` writes `rows`, nothing else."""

    rows: DataFrame  # popup_reasons rows to upsert: the screened reasons, and the gone ones as released
    assign: DataFrame  # reasons new to popup_reasons
    release: DataFrame  # active reasons this publish releases (released by the rules, or gone)


def plan(
    gold: DataFrame, staged: DataFrame, t: datetime, run_id: str, policy: Policy, scope: DataFrame | None = None
) -> Plan:
    """The publish of `staged` (the run's screened reasons) over `gold` (popup_reasons before this run, see
    `before_run`). `scope`: person_key of the people screened (None = everyone); only their reasons can be gone:
    an active reason the rules no longer produce (a popup kind switched off, evidence gone) is released at T."""
    active = gold.where(F.col("status") == "active")
    if scope is not None:
        active = active.join(scope, "person_key", "left_semi")
    screened = staged.withColumn("first_run_id", F.lit(run_id)).withColumn(
        "release_run_id", F.when(F.col("status") == "released", F.lit(run_id))
    )
    not_produced = active.join(staged.select(*KEYS), KEYS, "left_anti")
    gone = not_produced.withColumns(
        {
            "status": F.lit("released"),
            "released_at": ts(t),
            "release_basis": F.lit("evidence_withdrawn"),
            "release_detail": F.lit(f"no longer produced under policy {policy.id}"),
            "release_rule": F.lit(None).cast("string"),
            "release_eligible_at": F.lit(None).cast("timestamp"),
            "release_run_id": F.lit(run_id),
        }
    )
    cols = schemas.gold_schema("popup_reasons").fieldNames()
    rows = screened.select(*cols).unionByName(gone.select(*cols))
    assign = staged.join(gold.select(*KEYS), KEYS, "left_anti")
    released_now = active.join(staged.where(F.col("status") == "released").select(*KEYS), KEYS, "left_semi")
    release = released_now.unionByName(not_produced)
    return Plan(rows, assign, release)


def lists(gold: DataFrame, t: datetime, run_id: str) -> tuple[DataFrame, DataFrame]:
    """This run's assignment and release list rows, from popup_reasons after its publish (the reasons it
    inserted, the reasons it released)."""
    green = gold.groupBy("person_key").agg(F.max(F.when(F.col("status") == "active", 1).otherwise(0)).alias("_a"))
    summary = F.substring(
        F.concat_ws(" ", F.col("reason_type"), F.col("cause"), F.get_json_object("evidence", "$.items[0].record_id")),
        1,
        200,
    )
    assigned = gold.where(F.col("first_run_id") == run_id).select(
        F.lit(run_id).alias("run_id"),
        ts(t).alias("as_of"),
        "person_key",
        "popup_code",
        "reason_type",
        "reason_key",
        "raised_at",
        summary.alias("evidence_summary"),
    )
    released = (
        gold.where(F.col("release_run_id") == run_id)
        .join(green, "person_key")
        .select(
            F.lit(run_id).alias("run_id"),
            ts(t).alias("as_of"),
            "person_key",
            "popup_code",
            "reason_key",
            "released_at",
            "release_basis",
            (F.col("_a") == 0).alias("person_green"),
        )
    )
    return assigned, released


def publish(
    spark: SparkSession,
    lake: Lake,
    reasons: DataFrame,
    t: datetime,
    run_id: str,
    policy: Policy,
    log=print,
    scope: DataFrame | None = None,
) -> dict:
    """Write the plan of `reasons` (the staged reasons) into popup_reasons, rewrite popup_status, add this run's
    lists. `scope`: the person_key of the people screened (None = everyone)."""
    reasons_path = lake.gold("popup_reasons")
    p = plan(before_run(lake.read_gold(spark, "popup_reasons"), run_id), reasons, t, run_id, policy, scope)
    update = {c: f"s.`{c}`" for c in UPDATED}
    lake.merge(
        spark,
        reasons_path,
        schemas.gold_schema("popup_reasons"),
        p.rows,
        KEYS,
        update_when="t.status = 'active'",
        update_set=update,
    )
    point("publish:reasons")
    gold = lake.read_gold(spark, "popup_reasons").persist()
    st = status(gold, t, policy, run_id)
    lake.overwrite(spark, lake.gold("popup_status"), schemas.gold_schema("popup_status"), st)
    point("publish:status")
    assigned, released = lists(gold, t, run_id)
    lake.merge(
        spark,
        lake.gold("assignment_list"),
        schemas.gold_schema("assignment_list"),
        assigned,
        ["run_id", "reason_key"],
        update_when="never",
    )
    point("publish:assignments")
    lake.merge(
        spark,
        lake.gold("release_list"),
        schemas.gold_schema("release_list"),
        released,
        ["run_id", "reason_key"],
        update_when="never",
    )
    point("publish:lists")
    counts = {
        "assigned": assigned.count(),
        "released": released.count(),
        "active": gold.where("status = 'active'").count(),
        "green_again": released.where("person_green").select("person_key").distinct().count(),
    }
    by_code = (
        gold.where("status = 'active'")
        .groupBy("popup_code", "reason_type")
        .count()
        .orderBy("popup_code", "reason_type")
        .collect()
    )
    log(
        f"screened at {t:%Y-%m-%d %H:%M:%S} with policy {policy.id}: {counts['active']} active reasons; "
        f"in this run's lists {counts['assigned']} reasons assigned and {counts['released']} reasons released; "
        f"{counts['green_again']} people green again"
    )
    for r in by_code:
        log(f"  popup {r['popup_code']:<2} {r['reason_type']:<24}{r['count']:>8}")
    log(f"gold tables: {lake.root / 'gold'}")
    gold.unpersist()
    return counts
