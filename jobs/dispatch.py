"""Dispatch lists (outputs.md, "Dispatch exports"): who must do what about which person, per run.

Routes: a Beijing resident → their community (12-digit code, grouped by street); a hotel guest → the district
culture and tourism bureau (文旅局) of the hotel's county, with the hotel; anyone else (outside Beijing, or not in
`persons`) → the 12345 hotline list; a NAT sample with no result on the platform 24 h after sampling → its lab.
Actions: `verify_report` (an active ③ reason with no community verification since its evidence),
`remind_test` (④ active for over 24 h), `remind_declare` (trip verification pending for over 24 h),
`chase_upload` (lab). One line per (route, person, action) per run, with every reason behind it.

`lines(...)` is the pure part; `publish(...)` writes gold `dispatch_list` (replacing this run's lines, so a
re-run never duplicates) and the per-route CSV (UTF-8 BOM) and XLSX files under
`<lake>/exports/dispatch/<run_id>/`. Only the export files carry name, masked ID and contact phone.
"""

from __future__ import annotations

import csv
import shutil
from datetime import datetime, timedelta
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs import asof, schemas
from jobs.asof import ts
from jobs.keys import mask_id, person_key
from jobs.lake import Lake
from jobs.policy import Policy
from jobs.reasons_text import ACTION_ZH, POPUP_ZH, ROUTE_ZH, district_name, street_name, time_zh, why_line

POPUP3_TYPES = ("risk_area_visit", "county_risk_area", "case_colocation", "companion", "declared_risk_county")
DUE_HOURS = {"verify_report": 24, "remind_test": 24, "remind_declare": 24, "chase_upload": 12}  # policy can override
PENDING_HOURS = 24  # ④ / trip verification active this long before a reminder; lab results due after sampling
HOTLINE = "12345"
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
EXPORT_COLUMNS = [
    ("route", "派发对象"),
    ("street", "街道"),
    ("community", "社区"),
    ("hotel", "酒店"),
    ("lab", "检测机构"),
    ("name", "姓名"),
    ("id_masked", "身份证号"),
    ("phone", "联系电话"),
    ("popup", "健康宝弹窗"),
    ("action", "处置要求"),
    ("why", "原因"),
    ("since", "弹窗时间"),
    ("due_by", "完成时限"),
]
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def due_hours(policy: Policy) -> dict[str, float]:
    return {**DUE_HOURS, **(policy.extra.get("dispatch_due_hours") or {})}


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


def person_actions(reasons: DataFrame, verifications: DataFrame, t: datetime) -> DataFrame:
    """person_key, action, reason_key, reason_type, raised_at, evidence of every active reason needing an action."""
    active = reasons.where(F.col("status") == "active")
    pending = ts(t - timedelta(hours=PENDING_HOURS))
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
    """Samples taken in the window, at least 24 h before T, with no result known at T: one line per lab and person."""
    s = asof.current(nat_samples).where(
        (F.col("sampled_at") <= ts(t - timedelta(hours=PENDING_HOURS)))
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
        F.lit(" 采样,超过24小时仍未上传核酸平台"),
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
    reasons: DataFrame, status: DataFrame, b: dict[str, DataFrame], t: datetime, policy: Policy, run_id: str
) -> DataFrame:
    """The run's dispatch_list rows (gold schema). `b`: persons, verifications, nat_samples, nat_results as of T."""
    acts = person_actions(reasons, b["verifications"], t)
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
    hours = due_hours(policy)
    due = F.coalesce(*[F.when(F.col("action") == a, ts(t + timedelta(hours=h))) for a, h in hours.items()])
    return out.join(status.select("person_key", "display_code"), "person_key", "left").select(
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
        due.alias("due_by"),
    )


# -- exports ---------------------------------------------------------------------------------------------------
def safe_cell(value) -> str:
    """Text for a spreadsheet cell: formulas are neutralised with a leading quote (CSV/XLSX injection)."""
    if value is None:
        return ""
    s = value if isinstance(value, str) else str(value)
    return "'" + s if s.startswith(FORMULA_START) else s


def route_label(route_type: str, route_code: str) -> str:
    if route_type == "hotel":
        return f"{district_name(route_code)}文旅局"
    if route_type == "outside_beijing":
        return "12345市民服务热线"
    if route_type == "lab":
        return f"检测机构 {route_code}"
    return f"{street_name(route_code)} 社区 {route_code}"


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
            F.first("contact", ignorenulls=True).alias("contact"),
        )
    )
    rows = run_lines.join(who, "person_key", "left").collect()
    out = []
    for r in rows:
        rt = r["route_type"]
        community = r["route_code"] if rt == "community" else ""
        out.append(
            {
                "route_type": rt,
                "route_code": r["route_code"],
                "street_code": r["street_code"] or "",
                "route": route_label(rt, r["route_code"]),
                "street": f"{street_name(r['street_code'])}({r['street_code']})" if r["street_code"] else "",
                "community": community,
                "hotel": r["hotel_id"] or "",
                "lab": r["route_code"] if rt == "lab" else "",
                "name": r["name"] or "",
                "id_masked": r["id_masked"] or "",
                "phone": r["contact"] or "",
                "popup": POPUP_ZH.get(r["display_code"], "绿码") if r["display_code"] else "绿码",
                "action": ACTION_ZH[r["action"]],
                "why": r["why"],
                "since": time_zh(r["since"]) if r["since"] else "",
                "due_by": f"{r['due_by']:%Y-%m-%d %H:%M}",
            }
        )
    out.sort(
        key=lambda x: (
            x["street_code"],
            x["community"],
            x["route_code"],
            x["hotel"],
            x["action"],
            x["id_masked"],
            x["why"],
        )
    )
    return out


def write_files(folder: Path, rows: list[dict]) -> list[Path]:
    """One CSV (UTF-8 with BOM) and one XLSX per route type, Chinese headers, rows already sorted."""
    from openpyxl import Workbook  # here, not at the top: about a second to import, and only this writes XLSX
    from openpyxl.styles import Font

    if folder.exists():
        shutil.rmtree(folder)  # a re-run of the run id rewrites its files
    folder.mkdir(parents=True)
    written = []
    headers = [h for _, h in EXPORT_COLUMNS]
    for route_type in ROUTE_ZH:
        part = [r for r in rows if r["route_type"] == route_type]
        if not part:
            continue
        cells = [[safe_cell(r[k]) for k, _ in EXPORT_COLUMNS] for r in part]
        csv_path = folder / f"{route_type}.csv"
        with open(csv_path, "w", encoding="utf-8-sig", newline="") as f:
            w = csv.writer(f)
            w.writerow(headers)
            w.writerows(cells)
        wb = Workbook()
        ws = wb.active
        ws.title = ROUTE_ZH[route_type]
        ws.append(headers)
        for c in ws[1]:
            c.font = Font(bold=True)
        for row in cells:
            ws.append(row)
        for row in ws.iter_rows(min_row=2):  # once at the end: ws[ws.max_row] scans the whole sheet on every call
            for c in row:
                c.data_type = "s"  # IDs and phones stay text
        for col, width in zip("ABCDEFGHIJKLM", (26, 22, 16, 10, 10, 8, 20, 13, 10, 16, 70, 14, 17), strict=True):
            ws.column_dimensions[col].width = width
        ws.freeze_panes = "A2"
        xlsx_path = folder / f"{route_type}.xlsx"
        wb.save(xlsx_path)
        written += [csv_path, xlsx_path]
    return written


def publish(spark, lake, as_of, run_id, policy, log=print) -> dict:
    """Write this run's dispatch_list rows and export files; returns counts for run_log.rows_out."""
    b = {
        f: asof.as_of(lake.read_bronze(spark, f), f, as_of)
        for f in ("persons", "verifications", "nat_samples", "nat_results")
    }
    df = lines(lake.read_gold(spark, "popup_reasons"), lake.read_gold(spark, "popup_status"), b, as_of, policy, run_id)
    schema = schemas.gold_schema("dispatch_list")
    path = lake.gold("dispatch_list")
    lake.replace_where(spark, path, schema, df, f"run_id = '{run_id}'")
    run_lines = lake.read_gold(spark, "dispatch_list").where(F.col("run_id") == run_id).persist()
    counts = {
        f"dispatch_{r['route_type']}": r["count"]  # sorted: run_log is the same whatever the row order
        for r in run_lines.groupBy("route_type").count().orderBy("route_type").collect()
    }
    counts["dispatch_lines"] = sum(counts.values())
    folder = lake.root / "exports" / "dispatch" / run_id
    files = write_files(folder, export_rows(spark, lake, run_lines, as_of))
    run_lines.unpersist()
    log(
        f"dispatch: {counts['dispatch_lines']} lines ("
        + ", ".join(f"{k[9:]} {v}" for k, v in sorted(counts.items()) if k != "dispatch_lines")
        + f"); {len(files)} files in {folder}"
    )
    return counts
