"""The one place a SparkSession is made.

Local mode (`local[*]`) by default; `SCREENING_SPARK_MASTER` (or spark-submit's --master) points it at a
cluster. Delta's jars are fetched once by `make setup` (`python -m jobs.spark --fetch-jars`) into
`.cache/jars/`, after which every session starts without network access.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

from jobs import ROOT
from jobs.settings import settings

LOG4J = Path(__file__).with_name("log4j2.properties")  # the JVM's logging: errors only (see the file)

# pyspark (and concurrent.futures) are imported inside the functions that use them: the CLI at start-up and the
# Airflow tasks (for the jar paths) import this module, and must not pay for them.

SPARK_VERSION = "4.2"
DELTA_VERSION = "4.4.0"
SCALA = "2.13"
# delta-spark needs only its storage module next to it; the rest of its Maven closure duplicates Spark's own jars.
DELTA_JARS = (
    f"io.delta_delta-spark_{SPARK_VERSION}_{SCALA}-{DELTA_VERSION}.jar",
    f"io.delta_delta-storage-{DELTA_VERSION}.jar",
)


def jar_dir() -> Path:
    return settings().jar_dir


def delta_jar_paths() -> list[Path]:
    return [jar_dir() / name for name in DELTA_JARS]


def fetch_jars() -> None:
    """Resolve Delta from Maven Central with Spark's own Ivy client, keep only the jars we need."""
    folder = jar_dir()
    if all(p.exists() for p in delta_jar_paths()):
        (folder / ".fetched").touch()
        return
    from pyspark.sql import SparkSession

    ivy = ROOT / ".cache" / "ivy"
    spark = (
        SparkSession.builder.master("local[1]")
        .appName("screening-fetch-jars")
        .config("spark.jars.packages", f"io.delta:delta-spark_{SPARK_VERSION}_{SCALA}:{DELTA_VERSION}")
        .config("spark.jars.ivy", str(ivy))
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    spark.stop()
    folder.mkdir(parents=True, exist_ok=True)
    for name in DELTA_JARS:
        shutil.copy2(ivy / "jars" / name, folder / name)
    (folder / ".fetched").touch()
    print(f"Delta jars cached in {folder}")


NO_CODEGEN = {
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
}  # expressions interpreted too


# HotSpot leaves a method of more than 8,000 bytes of bytecode interpreted, and Spark's generated code for a wide
# stage (ingest's checks of a feed, a rule's projections) is often larger: validating a day of grid dwells took
# 13.3 s interpreted against 4.4 s compiled.
JIT_HUGE_METHODS = "-XX:-DontCompileHugeMethods"


def builder_config(app_name: str = "screening", *, testing: bool = False) -> dict[str, str]:
    missing = [str(p) for p in delta_jar_paths() if not p.exists()]
    if missing:
        sys.exit(f"Delta jars missing ({', '.join(missing)}): run `make setup` once (it needs Maven Central).")
    s = settings()
    conf = {
        "spark.app.name": app_name,
        "spark.jars": ",".join(str(p) for p in delta_jar_paths()),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.session.timeZone": "Asia/Shanghai",
        # 2 cores: a few shuffle partitions; AQE coalesces further. A full screen can start finer (`split_shuffles`).
        "spark.sql.shuffle.partitions": str(s.shuffle_partitions or (4 if testing else 8)),
        "spark.default.parallelism": "2" if testing else "4",
        "spark.sql.adaptive.enabled": "true",
        "spark.ui.showConsoleProgress": "false",
        "spark.databricks.delta.snapshotPartitions": "2",
        # A debugging check: in a session zone other than UTC, Delta lists every file of the table on each commit
        # to verify its checksum. Our zone is Asia/Shanghai, so every commit paid for a full listing.
        "spark.databricks.delta.allFilesInCrc.verificationMode.forceOnNonUTC.enabled": "false",
        "spark.databricks.delta.retentionDurationCheck.enabled": "false",
        "spark.sql.legacy.timeParserPolicy": "CORRECTED",
        # Parquet timestamps as 64-bit microseconds, not the legacy 96-bit: Parquet's dictionary of 96-bit values
        # hashes them so poorly that looking them up was half the time of writing bronze. Readers take both.
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        # the JVM logs errors only (LOG4J): no start-up banner on a command's stderr
        "spark.driver.extraJavaOptions": f"-Duser.timezone=Asia/Shanghai {JIT_HUGE_METHODS} "
        f"-Dlog4j2.configurationFile={LOG4J}",
        "spark.executor.extraJavaOptions": f"-Duser.timezone=Asia/Shanghai {JIT_HUGE_METHODS}",
        # With the UI off nobody reads the status store: keep little of it (defaults: 1000 stages, 100k tasks).
        "spark.ui.retainedJobs": "100",
        "spark.ui.retainedStages": "100",
        "spark.ui.retainedTasks": "2000",
        "spark.sql.ui.retainedExecutions": "20",
        # On 2 cores Spark picks 64 MB on-heap pages: every sort and aggregate of even a tiny run took one and a
        # 4 GB driver spent minutes in full GCs. Small pages grow in number, not in cost.
        "spark.buffer.pageSize": s.page_size,
        "spark.sql.maxPlanStringLength": "200000",
        # VACUUM lists a table's files in this many tasks (default 10000): minutes of empty tasks per small table.
        "spark.sql.sources.parallelPartitionDiscovery.parallelism": str(s.listing_parallelism),
    }
    # Generated code pays off on big data. On a lake of a few thousand rows, compiling it took a third of a
    # stage (more than it saved), so the tests and small lakes turn it off.
    if (s.codegen or ("off" if testing else "on")) == "off":
        conf.update(NO_CODEGEN)
    if testing or not s.spark_ui:
        conf["spark.ui.enabled"] = "false"
    if s.spark_log_level != "ERROR":  # ERROR is log4j2.properties' own; Spark prints a line when this is set
        conf["spark.log.level"] = s.spark_log_level
    if testing:
        conf["spark.sql.adaptive.coalescePartitions.initialPartitionNum"] = "2"
        conf["spark.rdd.compress"] = "false"
    return conf


# Session settings a thin client sets on its own session (the engine was started with the rest: jars, extensions,
# memory, UI). Static settings cannot change once the engine runs.
SESSION_CONF_PREFIXES = ("spark.sql.", "spark.databricks.delta.")
STATIC_CONF = {"spark.sql.extensions", "spark.sql.catalog.spark_catalog", "spark.sql.ui.retainedExecutions"}

_remote = None  # this process's session on the engine


def remote() -> str | None:
    """The engine's address when commands are thin clients (SCREENING_SPARK_REMOTE), else None."""
    return settings().spark_remote


def master(testing: bool = False) -> str:
    """The Spark master of a classic session and of the engine (SCREENING_SPARK_MASTER)."""
    return settings().spark_master or ("local[2]" if testing else "local[*]")


def fail_fast(spark) -> None:
    """A thin client gives up on an engine that does not answer after about 10 s (Spark's default keeps trying
    for 10 minutes: a stage would hang, not fail)."""
    from pyspark.sql.connect.client.retries import DefaultPolicy

    spark.client.set_retry_policies([DefaultPolicy(max_retries=5, max_backoff=5000)])
    warnings.filterwarnings("ignore", message=r".*RETRIES_EXCEEDED", category=UserWarning)  # we say it in one line


def engine_gone(e: BaseException) -> bool:
    """Whether `e` is a thin client's lost connection to the engine (not an error of the query)."""
    from pyspark.errors.exceptions.connect import SparkConnectGrpcException

    text = str(e)
    return isinstance(e, SparkConnectGrpcException) and any(
        s in text for s in ("UNAVAILABLE", "Connection refused", "failed to connect", "Socket closed")
    )


def is_connect(spark) -> bool:
    return type(spark).__module__.startswith("pyspark.sql.connect")


def get_spark(app_name: str = "screening", *, testing: bool = False):
    """Return the session: a thin client of the engine when SCREENING_SPARK_REMOTE is set, else a classic local
    session (reuses an active one, e.g. under spark-submit)."""
    global _remote
    # Python-side datetimes must mean local time too (PySpark converts naive datetimes with the process zone).
    os.environ["TZ"] = "Asia/Shanghai"
    time.tzset()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    url = remote()
    if url:
        if _remote is not None and not _remote.is_stopped:
            return _remote
        try:
            spark = SparkSession.builder.remote(url).create()
            fail_fast(spark)
            spark.range(0).collect()  # fail here, in one line, when nobody answers
        except Exception as e:  # noqa: BLE001
            sys.exit(
                f"engine at {url} does not answer ({type(e).__name__}): start it with `screening engine start`, "
                "or unset SCREENING_SPARK_REMOTE to run in a local session of this process"
            )
        conf = {
            k: v
            for k, v in builder_config(app_name, testing=testing).items()
            if k.startswith(SESSION_CONF_PREFIXES) and k not in STATIC_CONF
        }
        for key, value in conf.items():
            spark.conf.set(key, value)
        _remote = spark
        return spark
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    builder = SparkSession.builder
    if "PYSPARK_GATEWAY_PORT" not in os.environ:  # under spark-submit the master comes from its command line
        builder = builder.master(master(testing))
        builder = builder.config("spark.driver.memory", settings().driver_memory)
    for key, value in builder_config(app_name, testing=testing).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(settings().spark_log_level)
    return spark


def end_session() -> None:
    """End this process's session on the engine: the server drops its temp views, cached frames and checkpoints
    (a command calls it when done; a classic session ends with its process)."""
    global _remote
    if _remote is not None and not _remote.is_stopped:
        _remote.stop()
    _remote = None


def cut(df):
    """Materialise `df` and start a fresh plan from it. A frame that several rules build on is otherwise copied
    into the plan of each (a run's plans reached hundreds of thousands of nodes and filled the driver heap).
    Local checkpoint: on a cluster a lost executor fails the stage, and the Airflow task's retry reruns it."""
    return df.localCheckpoint(eager=True)


@contextmanager
def interpreted(spark, on: bool = True):
    """Queries run inside the block without generated code, unless `on` is false or SCREENING_CODEGEN fixes the
    choice for the whole process. The settings are the session's: every thread's queries meanwhile are affected."""
    if not on or settings().codegen is not None:
        yield
        return
    with session_conf(spark, NO_CODEGEN):
        yield


@contextmanager
def session_conf(spark, values: dict[str, str]):
    """`values` set on the session inside the block; afterwards each key is as it was (unset if it was unset)."""
    before = {k: spark.conf.get(k, None) for k in values}
    for k, v in values.items():
        spark.conf.set(k, v)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                spark.conf.unset(k)
            else:
                spark.conf.set(k, v)


INITIAL_PARTITIONS = "spark.sql.adaptive.coalescePartitions.initialPartitionNum"


@contextmanager
def split_shuffles(spark, on: bool = True):
    """With SCREENING_SHUFFLE_SPLIT set, shuffles inside the block start at that many partitions (never fewer than
    the shuffle partitions), and AQE coalesces them back to ~64 MB each. A big lake's full screen on a small driver
    needs it: with 8, one sort of the companion rule held ~8 M rows at SF 0.1 with 28 days, and the JVM found no
    room for its 128 MB pointer array in a 4 GB heap (UNABLE_TO_ACQUIRE_MEMORY). Unset by default: on the demo lake
    128 doubled the screen stage (39 s to 75 s). An hourly run that narrows to the affected people never splits.
    The pandas steps' buckets follow (`shuffle_width`). Session-wide, like `interpreted`."""
    split = settings().shuffle_split
    if not on or split is None:
        yield
        return
    with session_conf(
        spark, {INITIAL_PARTITIONS: str(max(split, int(spark.conf.get("spark.sql.shuffle.partitions"))))}
    ):
        yield


def shuffle_width(spark) -> int:
    """The partitions a shuffle starts with: the shuffle partitions, or more inside `split_shuffles`. The pandas
    steps (the companion's stretch walk, the episodes) cut their input into buckets by it: each bucket's rows are
    sorted in one task and held at once by one Python worker, so a split screen needs its buckets as fine as its
    shuffles (at SF 1 with 14 days, 64 buckets of the walk failed a 6 GB heap in that sort)."""
    parts = int(spark.conf.get("spark.sql.shuffle.partitions"))
    if spark.conf.get("spark.sql.adaptive.enabled", "true").lower() != "true":
        return parts  # without AQE the initial number is not used
    return max(parts, int(spark.conf.get(INITIAL_PARTITIONS, None) or 0))


# A lookup side up to this many rows is broadcast: tens of MB of keys, against the whole of a big feed shuffled and
# sorted for a sort-merge join (tuning only: results do not depend on it).
BROADCAST_ROWS = 500_000


def lookup(df):
    """`df`, materialised, as the side of a join that looks its rows up in a big table: broadcast when it is small.
    The planner cannot tell how few rows a filtered union of keys holds, so without this it shuffles and sorts the
    whole big table (an hourly run's every-version lookup of a thousand dwell keys in all of bronze: 21 s)."""
    from pyspark.sql import functions as F

    df = cut(df)
    return F.broadcast(df) if df.count() <= BROADCAST_ROWS else df


# Independent small jobs (each feed's new keys, each feed's narrowing) are submitted this many at a time: each is
# mostly driver work (planning, a Delta snapshot) and a task or two, so two cores keep several busy (tuning only).
CONCURRENT_JOBS = 4


def each(fn, items, threads: int = CONCURRENT_JOBS) -> list:
    """[fn(x) for x in items], up to `threads` at a time (Spark runs jobs submitted from several threads)."""
    from concurrent.futures import ThreadPoolExecutor

    items = list(items)
    if threads <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(fn, items))


def each_of(fn, keys, threads: int = CONCURRENT_JOBS) -> dict:
    """{k: fn(k) for k in keys}, as `each` runs them."""
    keys = list(keys)
    return dict(zip(keys, each(fn, keys, threads), strict=True))


class JobCounter:
    """Spark jobs started from now on in this session's engine. A classic session reads the scheduler's job id
    counter; a thin client cannot see the engine's scheduler, and counts None."""

    def __init__(self, spark):
        self._scheduler = None if is_connect(spark) else spark.sparkContext._jsc.sc().dagScheduler()
        self._start = self._next()

    def _next(self) -> int | None:
        if self._scheduler is None:
            return None
        value = self._scheduler.nextJobId()
        return int(value if isinstance(value, int) else value.get())

    def count(self) -> int | None:
        return None if self._scheduler is None else self._next() - self._start


def release(spark) -> None:
    """Drop what a finished run left in the JVM (cached frames, Delta table snapshots), so one process can run
    many runs (tests, the hourly backfill) without its heap filling up. On the engine the cache is shared by every
    session (dropping another's cached frames only costs it a recomputation); ending the session (`end_session`)
    drops this command's views and checkpoints. A thin client cannot reach Delta's table cache."""
    if is_connect(spark):
        try:
            spark.catalog.clearCache()
        except Exception as e:
            if not engine_gone(e):  # a dead engine holds nothing any more
                raise
        return
    spark.catalog.clearCache()
    spark._jvm.org.apache.spark.sql.delta.DeltaLog.clearCache()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fetch-jars", action="store_true", help="fetch the Delta jars into .cache/jars once")
    args = parser.parse_args(argv)
    if args.fetch_jars:
        fetch_jars()


if __name__ == "__main__":
    main()
