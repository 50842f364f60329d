"""A run's context and its record: `RunContext` (what every stage needs), the `run_log` row (kept in a file beside
the staged reasons while the run goes on, committed to the Delta table once when it ends), the policy versions a
run applies, gate overrides, what each stage cost, and the lake lock (one writer per lake).

`jobs.run` (the stages) and `jobs.dq` (the data-quality hooks of those stages) both read and write a run through
this module; neither imports the other for it.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pyspark.sql import functions as F
from pyspark.sql.types import TimestampType

from jobs import schemas
from jobs.lake import Lake
from jobs.policy import applied_from, spans
from jobs.settings import settings
from jobs.spark import JobCounter


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
        return {
            "seconds": round(time.monotonic() - self.t0, 1),
            "spark_jobs": self.jobs.count(),
            "delta_commits": self.lake.commit_count() - self.commits0 + extra_commits,
        }


# -- earlier runs --------------------------------------------------------------------------------------------
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
    runs = ctx.lake.read_gold(ctx.spark, "run_log").where(
        (F.col("status") == "completed") & (F.col("run_id") != ctx.run_id)
    )
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
    return json.dumps(
        [
            {
                "id": v["id"],
                "effective_from": v["effective_from"].isoformat(),
                "applied_from": v["applied_from"].isoformat(),
                **({"note": v["note"]} if v["note"] else {}),
            }
            for v in ctx.applied
        ],
        ensure_ascii=False,
    )


# -- this run's row ------------------------------------------------------------------------------------------
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
    row = run_log_row(ctx) or {
        "run_id": ctx.run_id,
        "mode": ctx.mode,
        "as_of": ctx.as_of,
        "policy_version": ctx.policy.id,
        "started_at": datetime.now(),
        "status": "running",
    }
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
    ctx.lake.merge(
        ctx.spark,
        ctx.lake.gold("run_log"),
        schema,
        ctx.spark.createDataFrame([row], schema),
        ["run_id"],
        prune=f"t.run_id = '{ctx.run_id}'",
    )


def record_override(ctx: RunContext, gate: str, message: str) -> None:
    """Who let which tripped gate through and why (SCREENING_OPERATOR, else the OS user)."""
    prev = json.loads((run_log_row(ctx) or {}).get("overrides") or "[]")
    who = settings().operator or getpass.getuser()
    prev.append(
        {
            "gate": gate,
            "tripped": message,
            "reason": ctx.overrides[gate],
            "by": who,
            "at": datetime.now().isoformat(timespec="seconds"),
        }
    )
    write_run_log(ctx, overrides=json.dumps(prev, ensure_ascii=False))


# -- the lake lock -------------------------------------------------------------------------------------------
@contextmanager
def lake_lock(lake: Lake, run_id: str):
    """One writer per lake: a second run refuses at once with who holds it (Airflow retries later)."""
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
