"""A screening run as stages: ingest → dq_feeds → screen → dq_results → publish (→ maintain, nightly).

`screening run` runs them all in one process; the Airflow DAGs run each as its own spark-submit
(`screening stage NAME ...`). Stages hand over through the lake only: the ingest counts are in the
`_ingested_files` register (by run id), the screened reasons in `<lake>/staging/<run_id>/popup_reasons`.
Nothing under gold/ changes before `publish`, so a gate that halts leaves the published tables as they were.
`run_log.status` is written last: a run whose status is not `completed` never happened for consumers.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pyspark.sql import functions as F
from pyspark.sql.types import TimestampType

from jobs import schemas
from jobs.ingest.job import Ingestor
from jobs.lake import Lake
from jobs.spark import JobCounter, cut, each_of, get_spark, release, remote

STAGES = ("ingest", "dq_feeds", "screen", "dq_results", "publish", "maintain")
EXIT_HALTED = 3   # a data-quality gate stopped the run
EXIT_LOCKED = 75  # another run holds the lake (EX_TEMPFAIL: try again later)


class GateHalted(Exception):
    """A data-quality gate stopped the run before publishing; str() is the one line an operator reads."""

    def __init__(self, gate: str, message: str, details: dict | None = None):
        super().__init__(f"halted by gate {gate}: {message}")
        self.gate, self.message, self.details = gate, message, details or {}


class LakeBusy(Exception):
    pass


@dataclass
class RunContext:
    """What every stage needs; built the same way by `screening run` and by each `screening stage`."""

    spark: object
    lake: Lake
    landing: str
    as_of: datetime
    mode: str
    overrides: dict[str, str] = field(default_factory=dict)  # gate name → operator's reason
    log: object = print
    affected: object = None  # hourly: person keys screened (None = everyone)
    run_log: dict | None = field(default=None, repr=False)  # this run's row as this process last read or wrote it
    applied: list | None = field(default=None, repr=False)  # policy versions and when each takes effect (see policy)
    meter: StageMeter | None = field(default=None, repr=False)  # the stage running now

    @property
    def run_id(self) -> str:
        return f"{self.mode}-{self.as_of:%Y%m%dT%H%M%S}"

    @property
    def staging(self) -> str:
        return str(self.lake.root / "staging" / self.run_id / "popup_reasons")

    @property
    def scope_path(self) -> str:
        """An incremental hourly run's screened people (person_key), beside its staged reasons: the stages after
        the screen (often other processes) must only release, or count as released, reasons of these people."""
        return str(self.lake.root / "staging" / self.run_id / "screened_people")

    @property
    def policy(self):
        """The version in force at the as-of."""
        return self.policy_spans[-1].policy

    @property
    def policy_spans(self):
        """The versions governing the stretch this run evaluates, each from when it takes effect (jobs.policy)."""
        from jobs.policy import applied_from, spans

        if self.applied is None:
            recorded, last = policy_history(self)
            self.applied = applied_from(self.as_of, recorded, last)
        return spans(self.applied, self.as_of)


class StageMeter:
    """What a stage cost: wall seconds, Spark jobs and Delta commits (every table of the lake, staging included)."""

    def __init__(self, ctx: RunContext, stage: str):
        self.stage, self.lake = stage, ctx.lake
        self.t0 = time.monotonic()
        self.jobs = JobCounter(ctx.spark)
        self.commits0 = self.lake.commit_count()

    def cost(self, extra_commits: int = 0) -> dict:
        return {"seconds": round(time.monotonic() - self.t0, 1), "spark_jobs": self.jobs.count(),
                "delta_commits": self.lake.commit_count() - self.commits0 + extra_commits}


# -- run_log -------------------------------------------------------------------------------------------------
def last_completed(spark, lake: Lake):
    """The run_log row (as_of, input_versions) of the last completed run, or None."""
    runs = lake.read_gold(spark, "run_log").where(F.col("status") == "completed")
    return runs.orderBy(F.col("finished_at").desc()).select("as_of", "input_versions").first()


def last_completed_as_of(spark, lake: Lake) -> datetime | None:
    row = last_completed(spark, lake)
    return row["as_of"] if row else None


def policy_history(ctx: RunContext) -> tuple[dict[str, datetime], datetime | None]:
    """(when each policy version took effect as the completed runs applied it, the last completed run's as-of),
    this run aside."""
    runs = ctx.lake.read_gold(ctx.spark, "run_log").where((F.col("status") == "completed") & (F.col("run_id") != ctx.run_id))
    if "policy_applied" not in runs.columns:  # a lake from before the column
        runs = runs.withColumn("policy_applied", F.lit(None).cast("string"))
    rows = runs.select("as_of", "finished_at", "policy_applied").collect()
    recorded: dict[str, datetime] = {}
    for r in rows:
        for v in json.loads(r["policy_applied"] or "[]"):
            at = datetime.fromisoformat(v["applied_from"])
            recorded[v["id"]] = min(at, recorded.get(v["id"], at))
    last = max(rows, key=lambda r: r["finished_at"] or datetime.min)["as_of"] if rows else None
    return recorded, last


def policy_applied_json(ctx: RunContext) -> str:
    """run_log.policy_applied: every version in force by the as-of, when it took effect, and why when that is not
    its effective_from."""
    ctx.policy_spans  # noqa: B018 (fills ctx.applied)
    return json.dumps([{"id": v["id"], "effective_from": v["effective_from"].isoformat(),
                        "applied_from": v["applied_from"].isoformat(), **({"note": v["note"]} if v["note"] else {})}
                       for v in ctx.applied], ensure_ascii=False)


def _pending_path(ctx: RunContext) -> Path:
    return ctx.lake.root / "staging" / ctx.run_id / "run_log.json"


def _decode(row: dict) -> dict:
    schema = schemas.gold_schema("run_log")
    for f in schema.fields:
        if isinstance(f.dataType, TimestampType) and isinstance(row.get(f.name), str):
            row[f.name] = datetime.fromisoformat(row[f.name])
    return row


def run_log_row(ctx: RunContext) -> dict | None:
    """This run's run_log row: what an earlier stage left pending beside the staged reasons, else the table's row
    (a halted run's, when it is rerun). Read once per process: the lake lock makes this process its only writer."""
    if ctx.run_log is None:
        pending = _pending_path(ctx)
        if pending.exists():
            ctx.run_log = _decode(json.loads(pending.read_text()))
        else:
            row = ctx.lake.read_gold(ctx.spark, "run_log").where(F.col("run_id") == ctx.run_id).first()
            ctx.run_log = row.asDict() if row else {}
    return dict(ctx.run_log) or None


# A run's row is committed to the Delta table once, when it ends (completed, halted): the stages before keep it in a
# file beside the staged reasons, which costs no Delta commit (a run made six before).
FINAL_STATUSES = ("completed", "halted")


def write_run_log(ctx: RunContext, **fields) -> None:
    """Update this run's run_log row, keeping what earlier stages wrote; commit it when the run ends."""
    row = run_log_row(ctx) or {"run_id": ctx.run_id, "mode": ctx.mode, "as_of": ctx.as_of, "policy_version": ctx.policy.id,
                               "started_at": datetime.now(), "status": "running"}
    row.update(fields)
    schema = schemas.gold_schema("run_log")
    row = {c.name: row.get(c.name) for c in schema.fields}
    ctx.run_log = row
    if row["status"] not in FINAL_STATUSES:
        pending = _pending_path(ctx)
        pending.parent.mkdir(parents=True, exist_ok=True)
        tmp = pending.with_suffix(".tmp")
        tmp.write_text(json.dumps(row, default=lambda v: v.isoformat(), ensure_ascii=False))
        tmp.replace(pending)  # whole or not at all, as a crash may strike here
        return
    if ctx.meter is not None:  # the stage that ends the run, up to and with this commit
        costs = json.loads(row.get("stage_costs") or "{}")
        costs[ctx.meter.stage] = ctx.meter.cost(extra_commits=1)
        row["stage_costs"] = json.dumps(costs)
    # The literal run id lets Delta skip every other run's file instead of joining the whole log (one per run).
    ctx.lake.merge(ctx.spark, ctx.lake.gold("run_log"), schema, ctx.spark.createDataFrame([row], schema), ["run_id"],
                   prune=f"t.run_id = '{ctx.run_id}'")


def record_override(ctx: RunContext, gate: str, message: str) -> None:
    """Who let which tripped gate through and why (SCREENING_OPERATOR, else the OS user)."""
    prev = json.loads((run_log_row(ctx) or {}).get("overrides") or "[]")
    who = os.environ.get("SCREENING_OPERATOR") or getpass.getuser()
    prev.append({"gate": gate, "tripped": message, "reason": ctx.overrides[gate], "by": who,
                 "at": datetime.now().isoformat(timespec="seconds")})
    write_run_log(ctx, overrides=json.dumps(prev, ensure_ascii=False))


# -- the lake lock -------------------------------------------------------------------------------------------
@contextmanager
def lake_lock(lake: Lake, run_id: str):
    """One writer per lake: a second run refuses at once with who holds it (Airflow retries later)."""
    import fcntl

    lake.root.mkdir(parents=True, exist_ok=True)
    path = lake.root / "_lock"
    f = open(path, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "another run"
        f.close()
        raise LakeBusy(f"lake {lake.root} is busy: {holder} is writing it; try again when it has finished") from None
    f.seek(0)
    f.truncate()
    f.write(f"{run_id} (pid {os.getpid()})\n")
    f.flush()
    try:
        yield
    finally:
        f.seek(0)
        f.truncate()
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()


# -- stages --------------------------------------------------------------------------------------------------
def print_ingest(reports, log=print) -> None:
    log(f"{'feed':<22}{'files':>6}{'skipped':>8}{'rows':>9}{'loaded':>9}{'rejected':>9}{'late':>6}")
    for feed, r in sorted(reports.items()):
        log(f"{feed:<22}{r.files:>6}{r.skipped:>8}{r.rows:>9}{r.loaded:>9}{r.rejected:>9}{r.late:>6}")
    tot = [sum(getattr(r, k) for r in reports.values()) for k in ("files", "skipped", "rows", "loaded", "rejected", "late")]
    log(f"{'total':<22}" + "".join(f"{v:>{w}}" for v, w in zip(tot, (6, 8, 9, 9, 9, 6), strict=True)))


def ingest_counts(ctx: RunContext) -> tuple[dict[str, int], dict[str, int]]:
    """Rows loaded and rejected per feed by this run id (a re-run of the stage counts the same files)."""
    files = ctx.lake.read_gold(ctx.spark, "ingested_files").where(F.col("run_id") == ctx.run_id)
    got = {r["feed"]: (r["rows"] or 0, r["rejected"] or 0)
           for r in files.groupBy("feed").agg(F.sum("rows").alias("rows"), F.sum("rejected").alias("rejected")).collect()}
    return ({f: got.get(f, (0, 0))[0] - got.get(f, (0, 0))[1] for f in schemas.FEEDS},
            {f: got.get(f, (0, 0))[1] for f in schemas.FEEDS})


def stage_ingest(ctx: RunContext) -> None:
    floor = last_completed_as_of(ctx.spark, ctx.lake)
    write_run_log(ctx, status="running", finished_at=None, policy_version=ctx.policy.id,  # a re-run's may be new
                  policy_applied=policy_applied_json(ctx))
    for v in ctx.applied:
        if v["note"]:
            ctx.log(f"policy {v['id']}: {v['note']}")
    ctx.log(f"run {ctx.run_id}: ingesting {ctx.landing}")
    reports = Ingestor(ctx.spark, ctx.lake, ctx.landing, ctx.run_id, floor, log=ctx.log).run()
    ctx.lake.restrict_personal()
    print_ingest(reports, ctx.log)
    loaded, rejected = ingest_counts(ctx)
    late = sum(r.late for r in reports.values())
    write_run_log(ctx, rows_in=json.dumps(loaded), rows_rejected=json.dumps(rejected),
                  input_versions=json.dumps({f: ctx.lake.version(ctx.spark, ctx.lake.bronze(f)) for f in schemas.FEEDS}),
                  dq_summary=json.dumps({"late_rows": late}))


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
    from jobs.dq import feed_gates

    halt(ctx, feed_gates(ctx))


def stage_screen(ctx: RunContext) -> None:
    from jobs.screen import screen

    b, inputs = screen_inputs(ctx)
    if ctx.affected is not None and ctx.affected.isEmpty():  # a quiet hour: no rule has anyone to look at
        reasons = ctx.spark.createDataFrame([], staged_schema())
    else:
        reasons = screen(ctx.spark, inputs, ctx.as_of, ctx.policy, ctx.affected, spans=ctx.policy_spans)
    if ctx.affected is not None:
        ctx.affected.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(ctx.scope_path)
    else:
        shutil.rmtree(ctx.scope_path, ignore_errors=True)  # a full recompute after an incremental try of this run
    reasons.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(ctx.staging)
    for df in b.values():
        df.unpersist()


def screen_inputs(ctx: RunContext) -> tuple[dict, dict]:
    """(the cached frames to drop after the screen, the bronze frames as of T to screen). Hourly: only the people
    whose reasons may have changed since the previous run (jobs/incremental.py). A full recompute instead when
    there is no earlier run to build on, the as-of goes back in time, the policy version changed, bronze did not
    record its changes since the previous run, or SCREENING_HOURLY_FULL=1."""
    from jobs import asof, incremental
    from jobs import screen as screen_mod
    from jobs.policy import in_force

    ctx.affected = None
    prev = last_completed(ctx.spark, ctx.lake)
    floor = prev["as_of"] if prev else None
    written = None
    if (ctx.mode == "hourly" and floor is not None and floor <= ctx.as_of and os.environ.get("SCREENING_HOURLY_FULL") != "1"
            and in_force(ctx.policy_spans, floor).id == ctx.policy.id):
        written = incremental.bronze_writes(ctx.spark, ctx.lake, json.loads(prev["input_versions"] or "{}"))
        if written is None:
            ctx.log("hourly: bronze changes since the previous run were not all recorded (a lake from before change "
                    "data feed); screening everyone")
    if written is None:
        b = screen_mod.inputs(ctx.spark, ctx.lake, ctx.as_of)
        return b, b
    # Most of bronze: finding the affected people needs no versions told apart (every version known at T is a
    # safe superset), and only the affected people's rows and phones are then taken as of T.
    raw = each_of(lambda f: ctx.lake.read_bronze(ctx.spark, f), incremental.NARROWED)
    b = asof.load(ctx.spark, ctx.lake, ctx.as_of, skip=incremental.NARROWED)
    seen = {**b, **{f: asof.known_by(df, ctx.as_of) for f, df in raw.items()}}
    due = incremental.due_releases(ctx.lake.read_gold(ctx.spark, "popup_reasons"), ctx.as_of, ctx.run_id)
    ctx.affected = cut(incremental.affected(seen, due, floor, ctx.as_of, ctx.policy.home_prefix, written))
    ctx.log(f"hourly: {ctx.affected.count()} people to screen (changes since {floor:%Y-%m-%d %H:%M:%S})")
    return b, incremental.restrict(b, ctx.affected, raw, ctx.as_of)


def staged_schema():
    """The screened reasons as staged: popup_reasons without the run ids that publishing adds, with the episodes'
    registered_only (what dispatch reads of the evidence path)."""
    from pyspark.sql.types import BooleanType, StructField, StructType

    return StructType([f for f in schemas.gold_schema("popup_reasons").fields
                       if f.name not in ("first_run_id", "release_run_id")] + [StructField("registered_only", BooleanType())])


def staged(ctx: RunContext):
    if not ctx.lake.exists(ctx.staging):
        raise SystemExit(f"run {ctx.run_id}: nothing screened yet ({ctx.staging} is missing); run the screen stage first")
    return ctx.spark.read.format("delta").load(ctx.staging)


def screened_scope(ctx: RunContext):
    """person_key of the people this run screened, or None when it screened everyone."""
    return ctx.spark.read.format("delta").load(ctx.scope_path) if ctx.lake.exists(ctx.scope_path) else None


def stage_dq_results(ctx: RunContext) -> None:
    from jobs.dq import result_gates

    halt(ctx, result_gates(ctx, staged(ctx), screened_scope(ctx)))


def stage_publish(ctx: RunContext) -> None:
    from jobs.faults import point
    from jobs.screen import publish

    policy = ctx.policy
    counts = publish(ctx.spark, ctx.lake, staged(ctx), ctx.as_of, ctx.run_id, policy, log=ctx.log,
                     scope=screened_scope(ctx))
    from jobs import dispatch

    counts.update(dispatch.publish(ctx.spark, ctx.lake, ctx.as_of, ctx.run_id, policy, log=ctx.log))
    from jobs.dq import validate_published

    validate_published(ctx, rows_out=json.dumps(counts), policy_version=policy.id)
    if ctx.mode == "nightly":
        from jobs import report

        report.write(ctx.spark, ctx.lake, ctx.run_id, log=ctx.log, run_row=run_log_row(ctx))
    point("publish:before_status")
    write_run_log(ctx, status="completed", finished_at=datetime.now())  # last: the run now exists for consumers
    shutil.rmtree(ctx.lake.root / "staging" / ctx.run_id, ignore_errors=True)


def stage_maintain(ctx: RunContext) -> None:
    from jobs import maintenance

    maintenance.run(ctx.spark, ctx.lake, ctx.policy, log=ctx.log)


STAGE_FUNCS = {"ingest": stage_ingest, "dq_feeds": stage_dq_feeds, "screen": stage_screen,
               "dq_results": stage_dq_results, "publish": stage_publish, "maintain": stage_maintain}
RUN_STAGES = ("ingest", "dq_feeds", "screen", "dq_results", "publish")  # `screening run`; maintain is the DAG's


def execute(ctx: RunContext, stages) -> int:
    from jobs.faults import point

    try:
        with lake_lock(ctx.lake, ctx.run_id):
            for name in stages:
                ctx.meter = StageMeter(ctx, name)
                STAGE_FUNCS[name](ctx)
                cost = ctx.meter.cost()
                ctx.meter = None
                if name in RUN_STAGES and name != "publish":  # publish counted itself into the row it committed
                    costs = json.loads((run_log_row(ctx) or {}).get("stage_costs") or "{}")
                    write_run_log(ctx, stage_costs=json.dumps({**costs, name: cost}))
                ctx.log(f"stage {name}: {cost['seconds']:.0f} s, {cost['spark_jobs'] if cost['spark_jobs'] is not None else '?'}"
                        f" Spark jobs, {cost['delta_commits']} Delta commits")
                point(f"{name}:done")
    except LakeBusy as e:
        ctx.log(f"run {ctx.run_id} not started: {e}")
        return EXIT_LOCKED
    except GateHalted as e:
        ctx.log(f"run {ctx.run_id} {e}. Nothing was published. To publish anyway, rerun with "
                f"--override-gate {e.gate} --reason TEXT")
        return EXIT_HALTED
    finally:
        ctx.meter = None
        release(ctx.spark)
    return 0


def context(landing: str, lake_dir: str, as_of: datetime, mode: str, overrides=None, log=print, app=None) -> RunContext:
    from jobs.keys import pii_key

    pii_key()  # the production profile refuses to start without a real key, before any work
    spark = get_spark(app or f"screening-{mode}")
    if remote():
        log(f"spark: a thin client of the engine at {remote()}")
    return RunContext(spark, Lake(lake_dir), landing, as_of, mode, dict(overrides or {}), log)


def run(landing: str, lake_dir: str, as_of: datetime, mode: str = "nightly", log=print,
        overrides: dict[str, str] | None = None) -> int:
    """`screening run`: every stage but maintenance, in this process. Returns the exit code."""
    return execute(context(landing, lake_dir, as_of, mode, overrides, log), RUN_STAGES)


def run_stage(name: str, landing: str, lake_dir: str, as_of: datetime, mode: str = "nightly", log=print,
              overrides: dict[str, str] | None = None) -> int:
    """`screening stage NAME`: one stage (what each Airflow task runs)."""
    return execute(context(landing, lake_dir, as_of, mode, overrides, log, app=f"screening-{mode}-{name}"), [name])


def ingest_only(landing: str, lake_dir: str, log=print) -> dict:
    spark = get_spark("screening-ingest")
    lake = Lake(lake_dir)
    floor = last_completed_as_of(spark, lake)
    run_id = "ingest-" + time.strftime("%Y%m%dT%H%M%S")  # operational id only; results never depend on it
    reports = Ingestor(spark, lake, landing, run_id, floor, log=log).run()
    lake.restrict_personal()
    print_ingest(reports, log)
    log(f"rejects: {lake.gold('rejects')}  bronze: {lake.root / 'bronze'}")
    return reports
