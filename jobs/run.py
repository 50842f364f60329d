"""A screening run as stages: ingest → dq_feeds → screen → dq_results → publish (→ maintain, nightly).

`screening run` runs them all in one process; the Airflow DAGs run each as its own spark-submit
(`screening stage NAME ...`). Stages hand over through the lake only: the ingest counts are in the
`_ingested_files` register (by run id), the screened reasons in `<lake>/staging/<run_id>/popup_reasons`.
Nothing under gold/ changes before `publish`, so a gate that halts leaves the published tables as they were.
`run_log.status` is written last: a run whose status is not `completed` never happened for consumers.
The run's context, its run_log row and the lake lock are jobs/runlog.py's.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import datetime

from pyspark.sql import DataFrame
from pyspark.sql.types import BooleanType, StructField, StructType

from jobs import asof, dispatch, dq, incremental, maintenance, report, schemas
from jobs import screen as screen_mod
from jobs.dq import feed_gates, result_gates, validate_published
from jobs.faults import point
from jobs.ingest.job import Ingestor, ingest_counts
from jobs.keys import pii_key
from jobs.lake import Lake
from jobs.policy import in_force
from jobs.runlog import (
    LakeBusy,
    RunContext,
    StageMeter,
    lake_lock,
    last_completed,
    last_completed_as_of,
    policy_applied_json,
    record_override,
    run_log_row,
    write_run_log,
)
from jobs.settings import settings
from jobs.spark import cut, each_of, engine_gone, get_spark, release, remote, split_shuffles

STAGES = ("ingest", "dq_feeds", "screen", "dq_results", "publish", "maintain")
GATE_STAGES = ("dq_feeds", "dq_results")  # the stages whose gates can halt a run (and take --override-gate)
EXIT_HALTED = 3  # a data-quality gate stopped the run
EXIT_LOCKED = 75  # another run holds the lake (EX_TEMPFAIL: try again later)


class GateHalted(Exception):
    """A data-quality gate stopped the run before publishing; str() is the one line an operator reads."""

    def __init__(self, gate: str, message: str, details: dict | None = None):
        super().__init__(f"halted by gate {gate}: {message}")
        self.gate, self.message, self.details = gate, message, details or {}


# -- stages --------------------------------------------------------------------------------------------------
INGEST_COLUMNS = ("files", "skipped", "rows", "loaded", "rejected", "late")
INGEST_WIDTHS = (6, 8, 9, 9, 9, 6)  # at least; wider when a number needs it


def print_ingest(reports, log=print) -> None:
    """Rows per feed and in total; a column is as wide as its widest number (a city's day has 9-digit feeds)."""
    rows = [(feed, [getattr(r, k) for k in INGEST_COLUMNS]) for feed, r in sorted(reports.items())]
    rows.append(("total", [sum(vals[i] for _, vals in rows) for i in range(len(INGEST_COLUMNS))]))
    widths = [max(w, *(len(str(vals[i])) + 1 for _, vals in rows)) for i, w in enumerate(INGEST_WIDTHS)]
    log(f"{'feed':<22}" + "".join(f"{k:>{w}}" for k, w in zip(INGEST_COLUMNS, widths, strict=True)))
    for feed, vals in rows:
        log(f"{feed:<22}" + "".join(f"{v:>{w}}" for v, w in zip(vals, widths, strict=True)))


def stage_ingest(ctx: RunContext) -> None:
    floor = last_completed_as_of(ctx.spark, ctx.lake)
    write_run_log(
        ctx,
        status="running",
        finished_at=None,
        policy_version=ctx.policy.id,  # a re-run's may be new
        policy_applied=policy_applied_json(ctx),
    )
    for v in ctx.applied:
        if v["note"]:
            ctx.log(f"policy {v['id']}: {v['note']}")
    ctx.log(f"run {ctx.run_id}: ingesting {ctx.landing}")
    reports = Ingestor(ctx.spark, ctx.lake, ctx.landing, ctx.run_id, floor, log=ctx.log).run()
    ctx.lake.restrict_personal()
    print_ingest(reports, ctx.log)
    loaded, rejected = ingest_counts(ctx.spark, ctx.lake, ctx.run_id)
    late = sum(r.late for r in reports.values())
    write_run_log(
        ctx,
        rows_in=json.dumps(loaded),
        rows_rejected=json.dumps(rejected),
        input_versions=json.dumps({f: ctx.lake.version(ctx.spark, ctx.lake.bronze(f)) for f in schemas.FEEDS}),
        dq_summary=json.dumps({"late_rows": late}),
    )


def halt(ctx: RunContext, trips: list) -> None:
    """Stop on the first gate that tripped and was not overridden (recorded in run_log)."""
    for gate, message, details in trips:
        if gate in ctx.overrides:
            ctx.log(f"gate {gate} tripped ({message}) and was overridden: {ctx.overrides[gate]}")
            record_override(ctx, gate, message)
            continue
        summary = json.loads((run_log_row(ctx) or {}).get("dq_summary") or "{}")
        summary["halted_by"] = {"gate": gate, "message": message, **details}
        write_run_log(ctx, status="halted", finished_at=datetime.now(), dq_summary=json.dumps(summary, default=str))
        raise GateHalted(gate, message, details)


def stage_dq_feeds(ctx: RunContext) -> None:
    halt(ctx, feed_gates(ctx))


def stage_screen(ctx: RunContext) -> None:
    b, inputs, affected = screen_inputs(ctx)
    with split_shuffles(ctx.spark, on=affected is None):  # everyone: the rules' big shuffles
        if affected is not None and affected.isEmpty():  # a quiet hour: no rule has anyone to look at
            reasons = ctx.spark.createDataFrame([], staged_schema())
        else:
            reasons = screen_mod.screen(ctx.spark, inputs, ctx.as_of, ctx.policy, affected, spans=ctx.policy_spans)
        if affected is not None:
            affected.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(ctx.scope_path)
        else:
            shutil.rmtree(ctx.scope_path, ignore_errors=True)  # a full recompute after an incremental try of this run
        reasons.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(ctx.staging)
    for df in b.values():
        df.unpersist()


def screen_inputs(ctx: RunContext) -> tuple[dict, dict, DataFrame | None]:
    """(the cached frames to drop after the screen, the bronze frames as of T to screen, the person_key of the
    people to screen or None for everyone). Hourly: only the people whose reasons may have changed since the
    previous run (jobs/incremental.py). A full recompute instead when there is no earlier run to build on, the
    as-of goes back in time, the policy version changed, bronze did not record its changes since the previous
    run, or SCREENING_HOURLY_FULL=1."""
    prev = last_completed(ctx.spark, ctx.lake)
    floor = prev["as_of"] if prev else None
    written = None
    if (
        ctx.mode == "hourly"
        and floor is not None
        and floor <= ctx.as_of
        and not settings().hourly_full
        and in_force(ctx.policy_spans, floor).id == ctx.policy.id
    ):
        written = incremental.bronze_writes(ctx.spark, ctx.lake, json.loads(prev["input_versions"] or "{}"))
        if written is None:
            ctx.log(
                "hourly: bronze changes since the previous run were not all recorded (a lake from before change "
                "data feed); screening everyone"
            )
    if written is None:
        with split_shuffles(ctx.spark):
            b = screen_mod.inputs(ctx.spark, ctx.lake, ctx.as_of)
        return b, b, None
    # Most of bronze: finding the affected people needs no versions told apart (every version known at T is a
    # safe superset), and only the affected people's rows and phones are then taken as of T.
    raw = each_of(lambda f: ctx.lake.read_bronze(ctx.spark, f), incremental.NARROWED)
    b = asof.load(ctx.spark, ctx.lake, ctx.as_of, skip=incremental.NARROWED)
    seen = {**b, **{f: asof.known_by(df, ctx.as_of) for f, df in raw.items()}}
    due = incremental.due_releases(ctx.lake.read_gold(ctx.spark, "popup_reasons"), ctx.as_of, ctx.run_id)
    affected = cut(incremental.affected(seen, due, floor, ctx.as_of, ctx.policy.home_prefix, written))
    ctx.log(f"hourly: {affected.count()} people to screen (changes since {floor:%Y-%m-%d %H:%M:%S})")
    return b, incremental.restrict(b, affected, raw, ctx.as_of), affected


def staged_schema():
    """The screened reasons as staged: popup_reasons without the run ids that publishing adds, with the episodes'
    registered_only (what dispatch reads of the evidence path)."""
    return StructType(
        [f for f in schemas.gold_schema("popup_reasons").fields if f.name not in ("first_run_id", "release_run_id")]
        + [StructField("registered_only", BooleanType())]
    )


def staged(ctx: RunContext):
    if not ctx.lake.exists(ctx.staging):
        raise SystemExit(
            f"run {ctx.run_id}: nothing screened yet ({ctx.staging} is missing); run the screen stage first"
        )
    return ctx.spark.read.format("delta").load(ctx.staging)


def screened_scope(ctx: RunContext):
    """person_key of the people this run screened, or None when it screened everyone."""
    return ctx.spark.read.format("delta").load(ctx.scope_path) if ctx.lake.exists(ctx.scope_path) else None


def stage_dq_results(ctx: RunContext) -> None:
    halt(ctx, result_gates(ctx, staged(ctx), screened_scope(ctx)))


def stage_publish(ctx: RunContext) -> None:
    policy = ctx.policy
    counts = screen_mod.publish(
        ctx.spark, ctx.lake, staged(ctx), ctx.as_of, ctx.run_id, policy, log=ctx.log, scope=screened_scope(ctx)
    )
    counts.update(dispatch.publish(ctx.spark, ctx.lake, ctx.as_of, ctx.run_id, policy, log=ctx.log))
    validate_published(ctx, rows_out=json.dumps(counts), policy_version=policy.id)
    if ctx.mode == "nightly":
        report.write(ctx.spark, ctx.lake, ctx.run_id, log=ctx.log, run_row=run_log_row(ctx))
    point("publish:before_status")
    write_run_log(ctx, status="completed", finished_at=datetime.now())  # last: the run now exists for consumers
    shutil.rmtree(ctx.lake.root / "staging" / ctx.run_id, ignore_errors=True)


def stage_maintain(ctx: RunContext) -> None:
    maintenance.run(ctx.spark, ctx.lake, ctx.policy, log=ctx.log)
    dq.prune(ctx, ctx.policy.audit_window_days)


STAGE_FUNCS = {
    "ingest": stage_ingest,
    "dq_feeds": stage_dq_feeds,
    "screen": stage_screen,
    "dq_results": stage_dq_results,
    "publish": stage_publish,
    "maintain": stage_maintain,
}
# Delta writes this conf's value into every commit's commitInfo.userMetadata: each version names its run and stage.
COMMIT_STAMP = "spark.databricks.delta.commitInfo.userMetadata"
RUN_STAGES = ("ingest", "dq_feeds", "screen", "dq_results", "publish")  # `screening run`; maintain is the DAG's


def execute(ctx: RunContext, stages) -> int:
    try:
        with lake_lock(ctx.lake, ctx.run_id):
            for name in stages:
                ctx.meter = StageMeter(ctx, name)
                ctx.spark.conf.set(COMMIT_STAMP, f"{ctx.run_id} {name}")  # `screening sql history` shows it
                STAGE_FUNCS[name](ctx)
                cost = ctx.meter.cost()
                ctx.meter = None
                if name in RUN_STAGES and name != "publish":  # publish counted itself into the row it committed
                    costs = json.loads((run_log_row(ctx) or {}).get("stage_costs") or "{}")
                    write_run_log(ctx, stage_costs=json.dumps({**costs, name: cost}))
                ctx.log(
                    f"stage {name}: {cost['seconds']:.0f} s, {cost['spark_jobs'] if cost['spark_jobs'] is not None else '?'}"
                    f" Spark jobs, {cost['delta_commits']} Delta commits"
                )
                point(f"{name}:done")
    except LakeBusy as e:
        ctx.log(f"run {ctx.run_id} not started: {e}")
        return EXIT_LOCKED
    except GateHalted as e:
        ctx.log(
            f"run {ctx.run_id} {e}. Nothing was published. To publish anyway, rerun with "
            f"--override-gate {e.gate} --reason TEXT"
        )
        return EXIT_HALTED
    finally:
        ctx.meter = None
        unstamp(ctx.spark)
        release(ctx.spark)
    return 0


def unstamp(spark) -> None:
    """A shared session's later commits are not this run's."""
    try:
        spark.conf.unset(COMMIT_STAMP)
    except Exception as e:
        if not engine_gone(e):  # a dead engine commits nothing more
            raise


def context(landing: str, lake_dir: str, as_of: datetime, mode: str, overrides=None, log=print, app=None) -> RunContext:
    pii_key()  # the production profile refuses to start without a real key, before any work
    spark = get_spark(app or f"screening-{mode}")
    if remote():
        log(f"spark: a thin client of the engine at {remote()}")
    return RunContext(spark, Lake(lake_dir), landing, as_of, mode, dict(overrides or {}), log)


def run(
    landing: str,
    lake_dir: str,
    as_of: datetime,
    mode: str = "nightly",
    log=print,
    overrides: dict[str, str] | None = None,
) -> int:
    """`screening run`: every stage but maintenance, in this process. Returns the exit code."""
    return execute(context(landing, lake_dir, as_of, mode, overrides, log), RUN_STAGES)


def run_stage(
    name: str,
    landing: str,
    lake_dir: str,
    as_of: datetime,
    mode: str = "nightly",
    log=print,
    overrides: dict[str, str] | None = None,
) -> int:
    """`screening stage NAME`: one stage (what each Airflow task runs)."""
    return execute(context(landing, lake_dir, as_of, mode, overrides, log, app=f"screening-{mode}-{name}"), [name])


def ingest_only(landing: str, lake_dir: str, log=print) -> dict:
    spark = get_spark("screening-ingest")
    lake = Lake(lake_dir)
    floor = last_completed_as_of(spark, lake)
    run_id = "ingest-" + time.strftime("%Y%m%dT%H%M%S")  # operational id only; results never depend on it
    spark.conf.set(COMMIT_STAMP, run_id)
    try:
        reports = Ingestor(spark, lake, landing, run_id, floor, log=log).run()
    finally:
        unstamp(spark)
    lake.restrict_personal()
    print_ingest(reports, log)
    log(f"rejects: {lake.gold('rejects')}  bronze: {lake.root / 'bronze'}")
    return reports
