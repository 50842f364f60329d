"""Dispatch lists (outputs.md, "Dispatch exports"): who must do what about which person, per run.

Routes: a Beijing resident → their community (12-digit code, grouped by street); a hotel guest → the district
culture and tourism bureau (文旅局) of the hotel's county, with the hotel; anyone else (outside Beijing, or not in
`persons`) → the 12345 hotline list; a NAT sample with no result on the platform some hours after sampling → its lab.
Actions: `verify_report` (an active ③ reason with no community verification since its evidence),
`remind_test` (④ active for some hours), `remind_declare` (trip verification pending for some hours),
`chase_upload` (lab); the hours are policy.toml's `dispatch_pending_hours`. One line per (route, person, action)
per run, with every reason behind it.

A line keeps when it was first dispatched: one the previous completed run (by as-of) also had, for the same route,
person and action, carries over its first dispatch and due time, so an action not done in time shows as overdue;
a new one is due its action's `dispatch_due_hours` after the run's as-of. Only the runs' as-ofs decide this.

`lines(...)` is the pure part; `publish(...)` writes gold `dispatch_list` (replacing this run's lines, so a
re-run never duplicates) and the work orders (jobs/workorders.py) under `<lake>/exports/dispatch/<run_id>/`.
Only the work orders carry name, masked ID and contact phone.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs import asof, schemas, workorders
from jobs.asof import ts
from jobs.keys import mask_id, person_key
from jobs.lake import Lake
from jobs.policy import Policy
from jobs.reasons_text import ACTION_ZH, why_line

POPUP3_TYPES = ("risk_area_visit", "county_risk_area", "case_colocation", "companion", "declared_risk_county")
HOTLINE = "12345"
# A line is the same action as the previous run's when these agree.
LINE_KEY = ["route_type", "route_code", "person_key", "action"]
# Feeds carrying person_id: people absent from `persons` still get a masked ID on the 12345 list.
ID_FEEDS = (
    "persons",
    "kit_bindings",
    "phone_registrations",
    "tickets",
    "trip_declarations",
    "nat_samples",
    "venue_scans",
    "drug_purchases",
    "clinic_visits",
    "inbound_entries",
    "verifications",
)


def places(persons: DataFrame) -> DataFrame:
    """person_key → route_type, route_code, street_code, hotel_id (current persons rows; no PII out)."""
    p = asof.current(persons)
    hotel = F.col("hotel_id").isNotNull()
    community = F.col("community_code").isNotNull()
    return p.select(
        person_key(F.col("person_id")).alias("person_key"),
        F.when(hotel, "hotel").when(community, "community").otherwise("outside_beijing").alias("route_type"),
        F.when(hotel, F.coalesce("hotel_county_code", F.lit("?")))
        .when(community, F.col("community_code"))
        .otherwise(F.lit(HOTLINE))
        .alias("route_code"),
        F.when(~hotel & community, F.substring("community_code", 1, 9)).alias("street_code"),
        F.col("hotel_id"),
    )


def _why(rs):
    """One line for the action: the earliest reason's evidence, then how many other reasons there are. Wrapped
    as a UDF where used, not at import: PySpark makes a classic or a Spark Connect UDF by the session active then."""
    rs = sorted(rs, key=lambda r: (r["raised_at"], r["reason_key"]))
    line = why_line(rs[0]["reason_type"], rs[0]["evidence"])
    return line + (f";另有{len(rs) - 1}项原因" if len(rs) > 1 else "")


def person_actions(reasons: DataFrame, verifications: DataFrame, t: datetime, policy: Policy) -> DataFrame:
    """person_key, action, reason_key, reason_type, raised_at, evidence of every active reason needing an action."""
    active = reasons.where(F.col("status") == "active")
    pending = ts(t - timedelta(hours=policy.dispatch_pending_hours))
    v = asof.current(verifications).select(
        person_key(F.col("person_id")).alias("person_key"), F.col("verified_at"), "outcome", "commitment_signed"
    )
    p3 = active.where(F.col("reason_type").isin(*POPUP3_TYPES)).alias("r")
    # a verification made after the evidence was known counts; an unsigned not_exposed does not when the
    # reason needs the commitment letter (registered-phone evidence)
    done = (
        p3.join(v.alias("v"), "person_key")
        .where(
            (F.col("v.verified_at") >= F.col("r.last_evidence_at"))
            & ~(
                (F.col("v.outcome") == "not_exposed")
                & ~F.coalesce(F.col("v.commitment_signed"), F.lit(False))
                & F.coalesce(F.col("r.release_rule"), F.lit("")).contains("commitment")
            )
        )
        .select("person_key", "reason_key")
    )
    verify = p3.join(done, ["person_key", "reason_key"], "left_anti").withColumn("action", F.lit("verify_report"))
    test = active.where((F.col("popup_code") == "4") & (F.col("raised_at") <= pending)).withColumn(
        "action", F.lit("remind_test")
    )
    declare = active.where((F.col("popup_code") == "T") & (F.col("raised_at") <= pending)).withColumn(
        "action", F.lit("remind_declare")
    )
    cols = ["person_key", "action", "reason_key", "reason_type", "raised_at", "evidence"]
    return verify.select(cols).unionByName(test.select(cols)).unionByName(declare.select(cols))


def lab_actions(
    nat_samples: DataFrame, nat_results: DataFrame, reasons: DataFrame, t: datetime, policy: Policy
) -> DataFrame:
    """Samples taken in the window, at least the pending hours before T, with no result known at T: one line per lab
    and person."""
    hours = policy.dispatch_pending_hours
    s = asof.current(nat_samples).where(
        (F.col("sampled_at") <= ts(t - timedelta(hours=hours)))
        & (F.col("sampled_at") >= ts(t - timedelta(days=policy.window_days)))
    )
    missing = s.join(nat_results.select("sample_id"), "sample_id", "left_anti").withColumn(
        "person_key", person_key(F.col("person_id"))
    )
    p4 = (
        reasons.where((F.col("status") == "active") & (F.col("popup_code") == "4"))
        .groupBy("person_key")
        .agg(F.array_sort(F.collect_set("reason_key")).alias("reason_keys"))
    )
    g = missing.groupBy("lab_id", "person_key").agg(
        F.min("sampled_at").alias("first_sampled"), F.array_sort(F.collect_set("sample_id")).alias("samples")
    )
    why = F.concat(
        F.lit("核酸样本 "),
        F.array_join("samples", "、"),
        F.lit(" 于 "),
        F.date_format("first_sampled", "M'月'd'日' HH:mm"),
        F.lit(f" 采样,超过{hours}小时仍未上传核酸平台"),
        F.when(F.col("reason_keys").isNotNull(), F.lit(",本人弹窗④因此未能解除")).otherwise(F.lit("")),
    )
    return g.join(p4, "person_key", "left").select(
        F.lit("lab").alias("route_type"),
        F.col("lab_id").alias("route_code"),
        F.lit(None).cast("string").alias("street_code"),
        F.lit(None).cast("string").alias("hotel_id"),
        "person_key",
        F.lit("chase_upload").alias("action"),
        F.coalesce("reason_keys", F.array().cast("array<string>")).alias("reason_keys"),
        F.col("first_sampled").alias("since"),
        why.alias("why"),
    )


def lines(
    reasons: DataFrame,
    status: DataFrame,
    b: dict[str, DataFrame],
    t: datetime,
    policy: Policy,
    run_id: str,
    previous: DataFrame,
) -> DataFrame:
    """The run's dispatch_list rows (gold schema). `b`: persons, verifications, nat_samples, nat_results as of T;
    `previous`: the previous completed run's dispatch_list rows (empty when there is none)."""
    due_hours = dict(policy.dispatch_due_hours)
    if set(ACTION_ZH) - set(due_hours):
        raise SystemExit(
            f"policy {policy.id}: dispatch_due_hours lacks {', '.join(sorted(set(ACTION_ZH) - set(due_hours)))}"
        )
    acts = person_actions(reasons, b["verifications"], t, policy)
    routed = acts.join(places(b["persons"]), "person_key", "left").select(
        F.coalesce("route_type", F.lit("outside_beijing")).alias("route_type"),
        F.coalesce("route_code", F.lit(HOTLINE)).alias("route_code"),
        "street_code",
        "hotel_id",
        "person_key",
        "action",
        "reason_key",
        "reason_type",
        "raised_at",
        "evidence",
    )
    people = (
        routed.groupBy("route_type", "route_code", "street_code", "hotel_id", "person_key", "action")
        .agg(
            F.array_sort(F.collect_set("reason_key")).alias("reason_keys"),
            F.min("raised_at").alias("since"),
            F.collect_list(F.struct("raised_at", "reason_key", "reason_type", "evidence")).alias("_rs"),
        )
        .withColumn("why", F.udf(_why, T.StringType())("_rs"))
        .drop("_rs")
    )
    out = people.unionByName(lab_actions(b["nat_samples"], b["nat_results"], reasons, t, policy))
    # carried over from the previous run: its first dispatch and due time (a line from before the first-dispatch
    # columns counts from that run's as-of, as its due time did)
    prev = previous.select(
        *LINE_KEY,
        F.coalesce("first_dispatched_at", "as_of").alias("_first_at"),
        F.coalesce("first_run_id", "run_id").alias("_first_run"),
        F.col("due_by").alias("_due_by"),
    )
    due = F.coalesce(*[F.when(F.col("action") == a, ts(t + timedelta(hours=h))) for a, h in due_hours.items()])
    return (
        out.join(status.select("person_key", "display_code"), "person_key", "left")
        .join(prev, LINE_KEY, "left")
        .select(
            F.lit(run_id).alias("run_id"),
            ts(t).alias("as_of"),
            "route_type",
            "route_code",
            "street_code",
            "hotel_id",
            "person_key",
            "action",
            "display_code",
            "reason_keys",
            "since",
            "why",
            F.coalesce("_due_by", due).alias("due_by"),
            F.coalesce("_first_at", ts(t)).alias("first_dispatched_at"),
            F.coalesce("_first_run", F.lit(run_id)).alias("first_run_id"),
        )
    )


def previous_run(spark: SparkSession, lake: Lake, t: datetime, run_id: str) -> str | None:
    """The completed run before this one by as-of (on a tie, the greater run id): the lines this run carries over.
    Decided by the as-ofs alone, so a rerun or a backfill of the same as-of carries over the same lines."""
    runs = lake.read_gold(spark, "run_log").where(
        (F.col("status") == "completed") & (F.col("as_of") < ts(t)) & (F.col("run_id") != run_id)
    )
    row = runs.orderBy(F.col("as_of").desc(), F.col("run_id").desc()).select("run_id").first()
    return row["run_id"] if row else None


# -- exports ---------------------------------------------------------------------------------------------------
def export_rows(spark: SparkSession, lake: Lake, run_lines: DataFrame, t: datetime) -> list[dict]:
    """This run's lines with name, masked ID and contact phone (persons, else an ID from another feed)."""
    ids = None
    for feed in ID_FEEDS:
        d = lake.read_bronze(spark, feed).where(F.col("_known_at") <= ts(t)).select("person_id")
        ids = d if ids is None else ids.unionByName(d)
    keys = (
        ids.distinct()
        .withColumn("person_key", person_key(F.col("person_id")))
        .join(run_lines.select("person_key").distinct(), "person_key")
    )
    pers = asof.current(asof.as_of(lake.read_bronze(spark, "persons"), "persons", t)).select(
        "person_id", "name", F.col("phone").alias("contact")
    )
    who = (
        keys.join(pers, "person_id", "left")
        .groupBy("person_key")
        .agg(
            F.first(mask_id(F.col("person_id"))).alias("id_masked"),
            F.first("name", ignorenulls=True).alias("name"),
            F.first("contact", ignorenulls=True).alias("phone"),
        )
    )
    return [r.asDict() for r in run_lines.join(who, "person_key", "left").collect()]


def reference_names(spark: SparkSession, lake: Lake, run_lines: DataFrame, t: datetime) -> workorders.Names:
    """The names (and phones) of the run's communities, hotels and labs in the reference feeds as of T; none for a
    code they lack or when they were never delivered (the work orders then show the code)."""
    codes = (
        run_lines.select(F.col("route_code").alias("code"))
        .unionByName(run_lines.select(F.col("hotel_id").alias("code")))
        .where(F.col("code").isNotNull())
        .distinct()
    )

    def named(feed: str, key: str, cols: tuple[str, ...]) -> dict[str, dict]:
        known = asof.current(asof.as_of(lake.read_bronze(spark, feed), feed, t))
        rows = known.join(codes.withColumnRenamed("code", key), key, "left_semi").select(key, *cols).collect()
        return {r[key]: {c: r[c] for c in cols} for r in rows}

    return workorders.Names(
        named("communities", "community_code", ("name", "office_phone")),
        named("facilities", "facility_id", ("kind", "name", "county_code", "contact_phone")),
    )


def publish(spark, lake, as_of, run_id, policy, log=print) -> dict:
    """Write this run's dispatch_list rows and work orders; returns counts for run_log.rows_out."""
    b = {
        f: asof.as_of(lake.read_bronze(spark, f), f, as_of)
        for f in ("persons", "verifications", "nat_samples", "nat_results")
    }
    schema = schemas.gold_schema("dispatch_list")
    path = lake.gold("dispatch_list")
    lake.add_columns(spark, path, schema)  # a lake from before the first-dispatch columns
    before = previous_run(spark, lake, as_of, run_id)
    gold = lake.read_gold(spark, "dispatch_list")
    previous = gold.where(F.col("run_id") == before) if before else gold.limit(0)
    df = lines(
        lake.read_gold(spark, "popup_reasons"),
        lake.read_gold(spark, "popup_status"),
        b,
        as_of,
        policy,
        run_id,
        previous,
    )
    lake.replace_where(spark, path, schema, df, f"run_id = '{run_id}'")
    run_lines = lake.read_gold(spark, "dispatch_list").where(F.col("run_id") == run_id).persist()
    counts = {
        f"dispatch_{r['route_type']}": r["count"]  # sorted: run_log is the same whatever the row order
        for r in run_lines.groupBy("route_type").count().orderBy("route_type").collect()
    }
    counts["dispatch_lines"] = sum(counts.values())
    folder = lake.root / "exports" / "dispatch" / run_id
    rows = export_rows(spark, lake, run_lines, as_of)
    files = workorders.write(folder, rows, reference_names(spark, lake, run_lines, as_of), run_id, as_of)
    run_lines.unpersist()
    overdue = sum(r["due_by"] <= as_of for r in rows)
    log(
        f"dispatch: {counts['dispatch_lines']} lines ("
        + ", ".join(f"{k[9:]} {v}" for k, v in sorted(counts.items()) if k != "dispatch_lines")
        + f"; {overdue} overdue); {(len(files) - 2) // 2} work orders and their index in {folder}"
    )
    return counts
