"""Data quality: Great Expectations suites on every feed delivery and gold table, and the run gates of outputs.md.

Three entry points, called by jobs.run's stages (the run's context and run_log row: jobs.runlog):

- `feed_gates(ctx)` (stage dq_feeds, after ingest): the suite `feed.<feed>` on this run's delivery of each feed
  that delivered rows (bronze rows with `_run_id` = the run id), then the feed gates: reject_share, feed_empty,
  feed_volume, feed_suite.
- `result_gates(ctx, staged, scope)` (stage dq_results, before publishing): the suite `gold.popup_reasons` on the screened
  reasons, then the result gates: assign_volume, release_volume, release_share, gold_suite.
- `validate_published(ctx)` (stage publish, after the gold tables and lists are written): the suites
  `gold.popup_status` and `gold.run_lists` (recorded, not gating: the lists are written already).

Each returns / records its checks; every expectation result goes to `<lake>/dq/results` (Delta), the Data Docs
site under `<lake>/dq/docs/` is rebuilt, and a short summary is merged into `run_log.dq_summary`. Gate thresholds:
data_quality/gates.toml; suites: data_quality/suites/*.toml.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta

from pyspark.sql import functions as F

from jobs import schemas
from jobs.dq import gates, gx
from jobs.ingest.job import ingest_counts
from jobs.runlog import run_log_row, write_run_log
from jobs.screen import before_run, plan
from jobs.settings import settings
from jobs.spark import JobCounter

RESULTS_TABLE = "dq_results"


# -- shared helpers ------------------------------------------------------------------------------------------
def suites_on() -> bool:
    """The GX suites run unless SCREENING_DQ_SUITES=0 (the gates on counts always run). The test suite turns
    them off for its many small scenario runs; tests/e2e/test_dq.py and the end-to-end run keep them on."""
    return settings().dq_suites


def _history(ctx) -> list[dict]:
    rows = [r.asDict() for r in ctx.lake.read_gold(ctx.spark, "run_log").collect()]
    return gates.recent_runs(rows, ctx.mode, ctx.run_id, gates.config())


def _summary(ctx) -> dict:
    return json.loads((run_log_row(ctx) or {}).get("dq_summary") or "{}")


def _merge_summary(ctx, **fields) -> dict:
    summary = _summary(ctx)
    summary.update(fields)
    write_run_log(ctx, dq_summary=json.dumps(summary, default=str, ensure_ascii=False))
    return summary


def _store_results(ctx, stage: str, rows: list[dict], suites: list[str]) -> None:
    """Replace this run's rows of these suites in <lake>/dq/results (a re-run of a stage keeps one set)."""
    schema = schemas.gold_schema(RESULTS_TABLE)
    path = ctx.lake.gold(RESULTS_TABLE)
    df = ctx.spark.createDataFrame([{c.name: r.get(c.name) for c in schema.fields} for r in rows], schema).coalesce(1)
    names = ", ".join("'" + s.replace("'", "''") + "'" for s in suites) or "''"
    cond = f"run_id = '{ctx.run_id}' AND stage = '{stage}' OR run_id = '{ctx.run_id}' AND suite IN ({names})"
    ctx.lake.replace_where(ctx.spark, path, schema, df, cond)


def _run_suites(ctx, stage: str, batches: list[tuple[str, str, object, list[dict]]]) -> tuple[list[dict], dict]:
    """Validate (suite, asset, df, specs) batches; store the rows, rebuild the Data Docs. Returns (rows, per-suite
    summary)."""
    t0 = time.monotonic()
    rows: list[dict] = []
    per_suite: dict[str, dict] = {}
    if not suites_on():
        ctx.log(f"data quality ({stage}): suites off (SCREENING_DQ_SUITES=0); gates on counts only")
        return rows, per_suite
    if batches:
        context = gx.context(ctx.lake.root)
        for suite, asset, df, specs in batches:
            t1 = time.monotonic()
            jobs = JobCounter(ctx.spark)
            try:
                res = gx.validate(
                    context, ctx.run_id, suite, asset, df, specs, ctx.as_of, meta={"run_id": ctx.run_id, "stage": stage}
                )
            finally:
                df.unpersist()  # GX persisted the batch
            r = gx.result_rows(res, ctx.run_id, ctx.mode, ctx.as_of, stage, suite, asset)
            rows += r
            failed = [x for x in r if not x["success"]]
            per_suite[suite] = {
                "success": not failed,
                "expectations": len(r),
                "failed": len(failed),
                "failed_gating": sum(1 for x in failed if x["gate"]),
                "spark_jobs": jobs.count(),
                "seconds": round(time.monotonic() - t1, 1),
            }
        gx.build_docs(context, ctx.run_id, [b[0] for b in batches])
    _store_results(ctx, stage, rows, [b[0] for b in batches])
    per_suite_ok = sum(1 for s in per_suite.values() if s["success"])
    ctx.log(
        f"data quality ({stage}): {len(per_suite)} suite(s), {per_suite_ok} passed, "
        f"{sum(s['failed'] for s in per_suite.values())} expectation(s) failed "
        f"({time.monotonic() - t0:.1f} s)"
    )
    for suite, s in sorted(per_suite.items()):
        if not s["success"]:
            bad = [x for x in rows if x["suite"] == suite and not x["success"]]
            for x in bad:
                ctx.log(f"  {'GATE ' if x['gate'] else 'warn '}{suite}: {x['label']} — observed {x['observed_value']}")
    return rows, per_suite


def _log_checks(ctx, checks: list[dict]) -> None:
    tripped = [c for c in checks if c["status"] == "tripped"]
    for c in tripped:
        over = " (overridden)" if c["gate"] in ctx.overrides else ""
        ctx.log(f"  gate {c['gate']} TRIPPED{over}: {c['message']}")
    if tripped and suites_on():
        ctx.log(f"data docs: {gx.docs_index(ctx.lake.root)}")


def _gate_summary(checks: list[dict]) -> dict:
    out: dict[str, dict] = {}
    for c in checks:
        g = out.setdefault(c["gate"], {"checked": 0, "tripped": [], "no_history": 0})
        if c["status"] == "no_history":
            g["no_history"] += 1
        else:
            g["checked"] += 1
        if c["status"] == "tripped":
            g["tripped"].append(c["message"])
    return out


def _failed_gating(rows: list[dict]) -> list[dict]:
    return [
        {"suite": r["suite"], "label": r["label"], "observed": r["observed_value"]}
        for r in rows
        if r["gate"] and not r["success"]
    ]


# -- stage dq_feeds ------------------------------------------------------------------------------------------
def feed_gates(ctx) -> list[tuple[str, str, dict]]:
    """(gate, one-line message, numbers) for every feed gate that trips on this run's deliveries."""
    t0 = time.monotonic()
    cfg = gates.config()
    loaded, rejected = ingest_counts(ctx.spark, ctx.lake, ctx.run_id)
    files = ctx.lake.read_gold(ctx.spark, "ingested_files").where(
        (F.col("run_id") == ctx.run_id) & (F.col("status") == "rejected_file")
    )
    rejected_files = {r["feed"]: r["n"] for r in files.groupBy("feed").agg(F.count("*").alias("n")).collect()}
    history = _history(ctx)

    batches = []
    for feed in schemas.FEEDS:
        if loaded.get(feed, 0) > 0:
            df = ctx.lake.read_bronze(ctx.spark, feed).where(F.col("_run_id") == ctx.run_id)
            batches.append((f"feed.{feed}", f"bronze.{feed}", df, gx.feed_expectation_specs(feed)))
    rows, per_suite = _run_suites(ctx, "dq_feeds", batches)

    checks = gates.feed_checks(loaded, rejected, rejected_files, history, cfg)
    checks += gates.suite_checks("feed_suite", _failed_gating(rows))
    _log_checks(ctx, checks)
    _merge_summary(
        ctx,
        feeds={
            "suites": per_suite,
            "gates": _gate_summary(checks),
            "history_runs": len(history),
            "rows_loaded": sum(loaded.values()),
            "rows_rejected": sum(rejected.values()),
            "seconds": round(time.monotonic() - t0, 1),
        },
        docs=str(gx.docs_index(ctx.lake.root)) if suites_on() else None,
    )
    return gates.trips(checks)


# -- stage dq_results ----------------------------------------------------------------------------------------
def _people(df, by: str | None = None) -> dict[str, int]:
    """Distinct people overall ("*") and per value of `by`, in one Spark job."""
    if by is None:
        return {"*": df.select(F.countDistinct("person_key")).first()[0]}
    out = {}
    for r in df.rollup(by).agg(F.countDistinct("person_key").alias("n")).collect():
        out["*" if r[by] is None else r[by]] = r["n"]
    return out


def result_gates(ctx, staged, scope=None) -> list[tuple[str, str, dict]]:
    """(gate, one-line message, numbers) for every result gate that trips on the screened reasons. `scope`: the
    person_key of the people an incremental hourly run screened (None = everyone)."""
    t0 = time.monotonic()
    cfg = gates.config()
    rows, per_suite = _run_suites(
        ctx,
        "dq_results",
        [
            (
                "gold.popup_reasons",
                "staged.popup_reasons",
                staged,
                gx.suite_specs()["gold"]["gold.popup_reasons"]["expect"],
            )
        ],
    )

    gold_all = before_run(ctx.lake.read_gold(ctx.spark, "popup_reasons"), ctx.run_id)
    p = plan(gold_all, staged, ctx.as_of, ctx.run_id, ctx.policy, scope)  # what the publish will write
    assigned = _people(p.assign)
    released = _people(p.release, "popup_code")
    active = _people(gold_all.where(F.col("status") == "active"), "popup_code")
    n_assign, n_release = assigned.get("*", 0), released.pop("*", 0)
    active.pop("*", None)
    history = _history(ctx)
    checks = gates.result_checks(n_assign, n_release, released, active, history, cfg)
    checks += gates.suite_checks("gold_suite", _failed_gating(rows))
    _log_checks(ctx, checks)
    _merge_summary(
        ctx,
        people_assigned=n_assign,
        people_released=n_release,
        results={
            "suites": per_suite,
            "gates": _gate_summary(checks),
            "history_runs": len(history),
            "released_by_code": released,
            "active_by_code_before": active,
            "seconds": round(time.monotonic() - t0, 1),
        },
    )
    return gates.trips(checks)


# -- stage publish -------------------------------------------------------------------------------------------
def run_lists(ctx):
    """This run's assignment and release lists against the reasons it assigned / released (gold.run_lists)."""
    spark, lake, run_id = ctx.spark, ctx.lake, ctx.run_id
    reasons = lake.read_gold(spark, "popup_reasons")
    active = reasons.where("status = 'active'").select("person_key").distinct().withColumn("_active", F.lit(True))
    parts = []
    for name, table, col in (
        ("assignment", "assignment_list", "first_run_id"),
        ("release", "release_list", "release_run_id"),
    ):
        lst = lake.read_gold(spark, table).where(F.col("run_id") == run_id)
        lst = lst.select(
            "reason_key",
            "person_key",
            F.col("popup_code").alias("list_popup_code"),
            (F.col("release_basis") if name == "release" else F.lit(None).cast("string")).alias("release_basis"),
            (F.col("person_green") if name == "release" else F.lit(None).cast("boolean")).alias("person_green"),
            F.lit(True).alias("in_list"),
        )
        mine = reasons.where(F.col(col) == run_id).select(
            "reason_key",
            F.col("person_key").alias("r_person_key"),
            F.col("popup_code").alias("reason_popup_code"),
            F.lit(True).alias("in_reasons"),
        )
        j = lst.join(mine, "reason_key", "full_outer").join(active, "person_key", "left")
        green_ok = F.col("person_green") == F.col("_active").isNull()
        parts.append(
            j.select(
                F.lit(name).alias("list"),
                "reason_key",
                F.coalesce("in_list", F.lit(False)).alias("in_list"),
                F.coalesce("in_reasons", F.lit(False)).alias("in_reasons"),
                "list_popup_code",
                "reason_popup_code",
                "release_basis",
                F.when(
                    (F.lit(name) == "release") & F.col("in_list") & ~F.coalesce(green_ok, F.lit(False)),
                    F.lit("mismatch"),
                ).alias("person_green_mismatch"),
            )
        )
    return parts[0].unionByName(parts[1])


def _derive(df, derive: dict):
    for name, expr in derive.items():
        df = df.withColumn(name, F.expr(expr))
    return df


def validate_published(ctx, **run_log_fields) -> None:
    """Suites on the published gold tables (recorded, not gating: the run's lists are already written).
    `run_log_fields`: the publish stage's own fields, recorded in the same run_log write."""
    t0 = time.monotonic()
    specs = gx.suite_specs()["gold"]
    status = _derive(ctx.lake.read_gold(ctx.spark, "popup_status"), specs["gold.popup_status"].get("derive", {}))
    rows, per_suite = _run_suites(
        ctx,
        "publish",
        [
            ("gold.popup_status", "gold.popup_status", status, specs["gold.popup_status"]["expect"]),
            ("gold.run_lists", "gold.run_lists", run_lists(ctx), specs["gold.run_lists"]["expect"]),
        ],
    )
    summary = _summary(ctx)
    summary["published"] = {"suites": per_suite, "seconds": round(time.monotonic() - t0, 1)}
    all_suites = {
        **summary.get("feeds", {}).get("suites", {}),
        **summary.get("results", {}).get("suites", {}),
        **per_suite,
    }
    summary["suites_run"] = len(all_suites)
    summary["suites_failed"] = sorted(s for s, v in all_suites.items() if not v["success"])
    summary["validated_at"] = datetime.now().isoformat(timespec="seconds")
    write_run_log(ctx, dq_summary=json.dumps(summary, default=str, ensure_ascii=False), **run_log_fields)
    print_summary(ctx, summary)


def prune(ctx, days: int) -> dict[str, int]:
    """Keep data quality to the audit window, as Delta time travel is: the expectation results of runs with an
    as-of more than `days` before this run's, and their validation results and Data Docs pages."""
    before = ctx.as_of - timedelta(days=days)
    path = ctx.lake.gold(RESULTS_TABLE)
    rows = 0
    if ctx.lake.exists(path):
        out = ctx.spark.sql(f"DELETE FROM delta.`{path}` WHERE as_of < TIMESTAMP'{before:%Y-%m-%d %H:%M:%S}'")
        rows = int(out.first()[0] or 0)
    runs = gx.prune(ctx.lake.root, before)
    ctx.log(
        f"data quality: kept to the audit window ({days} days): {rows} expectation result rows and the Data Docs "
        f"of {runs} suite runs from before {before:%Y-%m-%d %H:%M} removed"
    )
    return {"result_rows": rows, "suite_runs": runs}


def print_summary(ctx, summary: dict) -> None:
    tripped = [
        m
        for part in ("feeds", "results")
        for g in summary.get(part, {}).get("gates", {}).values()
        for m in g["tripped"]
    ]
    checked = sum(
        g["checked"] for part in ("feeds", "results") for g in summary.get(part, {}).get("gates", {}).values()
    )
    ctx.log(
        f"data quality: {summary['suites_run']} suites, "
        f"{summary['suites_run'] - len(summary['suites_failed'])} passed"
        + (f", failed: {', '.join(summary['suites_failed'])}" if summary["suites_failed"] else "")
        + f"; {checked} gate checks, {len(tripped)} tripped"
        + (f" (overridden: {', '.join(sorted(ctx.overrides))})" if ctx.overrides else "")
        + f"; {summary.get('people_assigned', 0)} people with a reason new to gold, "
        + f"{summary.get('people_released', 0)} people with an active reason released"
        + f" ({sum(summary.get(p, {}).get('seconds', 0) for p in ('feeds', 'results', 'published')):.0f} s)"
    )
    ctx.log(f"data quality results: {ctx.lake.gold(RESULTS_TABLE)}")
    if summary.get("docs"):
        ctx.log(f"data docs: {summary['docs']}")
