"""Ingest: new landing CSV files → bronze Delta tables, bad rows → <lake>/rejects.

Incremental by content hash (a re-run or an identical re-delivery adds nothing). Bronze keeps one row per
(key, knowledge time) so a run can cut at any as-of; the version to use per key is chosen when reading
(`jobs.asof`). Ties on (key, knowledge time): the later file (by path), then the later line wins.
"""

from __future__ import annotations

import csv
import hashlib
import io
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs import schemas
from jobs.faults import point
from jobs.ingest.validate import validate
from jobs.lake import CHANGE_FEED, Lake
from jobs.settings import settings
from jobs.spark import each, interpreted

# A delivery under this size is parsed, validated and merged without generated code: in a fresh JVM, compiling the
# code of ingest's plans cost more than it saved (an hour's delivery ingests about 10 % faster without). A day is compiled.
SMALL_DELIVERY_BYTES = 16 << 20
KNOWN_AT_FORMAT = "yyyy-MM-dd HH:mm:ss.SSSSSS"  # a knowledge time as a timestamp literal, to the microsecond


class Progress:
    """One line per feed as it finishes, so a long ingest shows where it is (feeds run a few at a time). Quiet for
    a small delivery (an hour's), which ends in seconds."""

    def __init__(self, log, feeds: int, size: int):
        self.log = log if size >= SMALL_DELIVERY_BYTES and feeds > 1 else (lambda *_: None)
        self.feeds, self.size, self.n, self.bytes = feeds, size, 0, 0
        self.lock = threading.Lock()
        self.t0 = time.monotonic()

    def run(self, ingest_feed, work: tuple) -> None:
        feed, todo, rep = work
        t = time.monotonic()
        ingest_feed(feed, todo, rep)
        seconds = time.monotonic() - t
        with self.lock:
            self.n += 1
            self.bytes += sum(p.stat().st_size for p, _ in todo)
            self.log(
                f"ingest: {feed} done, {rep.rows:,} rows ({rep.rejected:,} rejected) in {seconds:.0f} s; "
                f"{self.n} of {self.feeds} feeds, {self.bytes / max(self.size, 1):.0%} of the bytes, "
                f"{time.monotonic() - self.t0:.0f} s in"
            )


@dataclass
class FeedReport:
    files: int = 0
    skipped: int = 0
    rows: int = 0
    loaded: int = 0
    rejected: int = 0
    late: int = 0
    rejected_files: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_head(path: Path) -> tuple[list[str], bool]:
    """The header, and whether a line after it holds more than spaces: what read_raw keeps as a row. An hourly
    delivery is often half header-only files, and each one read by Spark and merged cost a few seconds for nothing."""
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
        first = f.readline()
        rows = any(chunk.strip(" \r\n") for chunk in iter(lambda: f.read(1 << 16), ""))
    header = [h.strip().lstrip("\ufeff") for h in next(csv.reader(io.StringIO(first)), [])]
    return header, rows


def discover(landing: Path) -> dict[str, list[Path]]:
    """Landing files per known feed, sorted by path (the tie-break order)."""
    return {feed: sorted((landing / feed).glob("*.csv")) for feed in schemas.FEEDS if (landing / feed).is_dir()}


def read_raw(spark: SparkSession, files: list[Path], header: list[str], landing: Path) -> DataFrame:
    """Lines of files sharing one header, parsed as strings, with file and 1-based line number."""
    fields = [h if h else f"_extra{i}" for i, h in enumerate(header)]
    seen: set[str] = set()
    uniq = []
    for i, h in enumerate(fields):  # duplicated column names: keep the first, rename the rest
        uniq.append(h if h not in seen else f"_dup{i}_{h}")
        seen.add(h)
    ddl = ", ".join(f"`{h}` string" for h in uniq) + ", `_corrupt` string"
    text = spark.read.text([str(p) for p in files]).select(
        F.col("value"),
        F.input_file_name().alias("_uri"),
        F.spark_partition_id().alias("_pid"),
        F.monotonically_increasing_id().alias("_mid"),
    )
    # Line numbers without a full sort: each (file, partition) slice is contiguous and in file order.
    slices = text.groupBy("_uri", "_pid").agg(F.min("_mid").alias("_min"), F.count("*").alias("_n"))
    w = Window.partitionBy("_uri").orderBy("_pid").rowsBetween(Window.unboundedPreceding, -1)
    slices = slices.withColumn("_offset", F.coalesce(F.sum("_n").over(w), F.lit(0)))
    # the file's path relative to the landing, once per slice instead of once per line
    prefix = str(landing.resolve()) + "/"
    path = F.url_decode(F.regexp_replace(F.col("_uri"), "^file:(//)?", ""))
    slices = slices.withColumn(
        "_file", F.when(path.startswith(prefix), F.substring(path, len(prefix) + 1, 100000)).otherwise(path)
    )
    lines = text.join(F.broadcast(slices.select("_uri", "_pid", "_min", "_offset", "_file")), ["_uri", "_pid"])
    lines = lines.withColumn("_line", (F.col("_offset") + F.col("_mid") - F.col("_min") + 1).cast("int"))
    lines = lines.where((F.col("_line") > 1) & (F.trim(F.col("value")) != ""))
    # RFC 4180 quoting (a quote inside a quoted field is doubled, as Excel and Python's csv write it).
    parsed = lines.withColumn(
        "_p", F.from_csv("value", ddl, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": "_corrupt", "escape": '"'})
    )
    # Spark marks a row with too few or too many fields `_corrupt` itself. A line with quotes is checked by hand
    # too: the fields outside quoted sections are counted, and a quote left outside them is broken quoting.
    # Most lines hold no quote and skip the regex. (unrolled, possessive: a 200k-character field must not
    # overflow Java's regex stack)
    quoted = F.col("value").contains('"')
    unquoted = F.regexp_replace("value", r'"[^"]*+(?:""[^"]*+)*+"', "")
    broken = F.when(quoted, (F.size(F.split(unquoted, ",")) != len(fields)) | unquoted.contains('"'))
    parsed = parsed.withColumn(
        "_p", F.col("_p").withField("_corrupt", F.coalesce(F.col("_p._corrupt"), F.when(broken, F.col("value"))))
    )
    return parsed.select("_p.*", "_file", "_line", F.col("value").alias("_raw"))


class Ingestor:
    def __init__(
        self, spark: SparkSession, lake: Lake, landing: str | Path, run_id: str, floor: datetime | None, log=print
    ):
        self.spark, self.lake, self.landing = (
            spark,
            lake,
            Path(landing).resolve(),
        )  # the engine may run elsewhere: no relative paths
        self.run_id, self.floor, self.log = run_id, floor, log

    def known_hashes(self) -> dict[str, str]:
        df = self.lake.read_gold(self.spark, "ingested_files").select("sha256", "file")
        return {r["sha256"]: r["file"] for r in df.collect()}

    def run(self) -> dict[str, FeedReport]:
        if not self.landing.is_dir():
            raise SystemExit(f"landing directory {self.landing} does not exist")
        reports: dict[str, FeedReport] = {}
        self.rejects: list[DataFrame] = []
        self.file_rows: list[tuple] = []
        known = self.known_hashes()
        unknown = sorted(
            p.name
            for p in self.landing.iterdir()
            if p.is_dir() and not p.name.startswith("_") and p.name not in schemas.FEEDS
        )
        if unknown:
            self.log(f"ignored landing folders that are not feeds: {', '.join(unknown)}")
        work = []
        for feed, files in discover(self.landing).items():
            rep = reports.setdefault(feed, FeedReport())
            todo: list[tuple[Path, str]] = []
            for p in files:
                digest = sha256(p)
                if digest in known:
                    rep.skipped += 1
                    continue
                known[digest] = str(p)
                todo.append((p, digest))
            if todo:
                work.append((feed, todo, rep))
        size = sum(p.stat().st_size for _, todo, _ in work for p, _ in todo)
        with interpreted(self.spark, size < SMALL_DELIVERY_BYTES):
            # Feeds are independent tables: a few at a time, since a small feed is mostly Delta commit latency.
            progress = Progress(self.log, len(work), size)
            each(lambda w: progress.run(self.ingest_feed, w), work, settings().ingest_threads)
            point("ingest:bronze")
            # One commit each for all feeds' rejects and file records (files last: a crash before re-takes them).
            if self.rejects:
                allrej = self.rejects[0]
                for df in self.rejects[1:]:
                    allrej = allrej.unionByName(df)
                self.lake.merge(
                    self.spark,
                    self.lake.gold("rejects"),
                    schemas.gold_schema("rejects"),
                    allrej,
                    ["feed", "file", "line", "reason"],
                    update_when="never",
                )
            if self.file_rows:
                self.lake.merge(
                    self.spark,
                    self.lake.gold("ingested_files"),
                    schemas.gold_schema("ingested_files"),
                    self.spark.createDataFrame(self.file_rows, schemas.gold_schema("ingested_files")),
                    ["sha256"],
                    update_when="never",
                )
        return reports

    def ingest_feed(self, feed: str, todo: list[tuple[Path, str]], rep: FeedReport) -> None:
        spec = schemas.feed_spec(feed)
        required = [c["name"] for c in spec["columns"]]
        by_header: dict[tuple[str, ...], list[Path]] = {}
        file_rows = []
        rejects = self.rejects
        for p, digest in todo:
            rel = str(p.resolve().relative_to(self.landing.resolve()))
            header, rows = read_head(p)
            missing = [c for c in required if c not in header]
            extra = [h for h in header if h not in required]
            rep.files += 1
            if missing:
                msg = f"{rel}: rejected whole file, missing required column(s) {', '.join(missing)} (feeds.md, feed {feed})"
                self.log(msg)
                rep.messages.append(msg)
                rep.rejected_files.append(rel)
                rejects.append(
                    self.spark.createDataFrame(
                        [
                            (
                                feed,
                                rel,
                                0,
                                ",".join(header),
                                "missing_column",
                                f"missing required column(s): {', '.join(missing)}",
                                self.run_id,
                            )
                        ],
                        schemas.gold_schema("rejects"),
                    )
                )
                file_rows.append((feed, rel, digest, 0, 0, "rejected_file", self.run_id, self.floor))
                continue
            if extra:
                msg = f"{rel}: extra column(s) ignored: {', '.join(extra)}"
                self.log(msg)
                rep.messages.append(msg)
            file_rows.append((feed, rel, digest, None, None, "loaded", self.run_id, self.floor))
            if rows:  # a header-only file is registered with 0 rows, without a Spark job or a commit
                by_header.setdefault(tuple(header), []).append(p)

        validated = None
        for header, files in by_header.items():
            v = validate(read_raw(self.spark, files, list(header), self.landing), feed)
            validated = v if validated is None else validated.unionByName(v)
        counts: dict[str, tuple[int, int]] = {}
        if validated is not None:
            # Parsed and checked once, kept on local disk for the passes below (a cache in memory cost three
            # times the parsing and did not fit a day at scale). Only a rejected row keeps its raw line.
            validated = validated.withColumn(
                "_raw", F.when(F.col("_reject_reason").isNotNull(), F.col("_raw"))
            ).localCheckpoint(eager=True, storageLevel=StorageLevel.DISK_ONLY)
            good = validated.where(F.col("_reject_reason").isNull())
            bad = validated.where(F.col("_reject_reason").isNotNull()).select(
                F.lit(feed).alias("feed"),
                F.col("_file").alias("file"),
                F.col("_line").alias("line"),
                F.make_valid_utf8("_raw").alias("raw_row"),
                F.col("_reject_reason").alias("reason"),
                F.col("_reject_detail").alias("detail"),
                F.lit(self.run_id).alias("run_id"),
            )
            rejects.append(bad)
            stats, repeats = batch_stats(validated, feed)
            counts = {r["_file"]: (r["n"], r["r"]) for r in stats}
            # the earliest knowledge time of the good rows (fixed-width text: its min is the earliest instant)
            self.merge_bronze(feed, good, rep, min((r["lo"] for r in stats if r["lo"]), default=None), repeats)
        rows = self.file_rows
        for feed_, rel, digest, n, r, status, run_id, floor in file_rows:
            n, r = counts.get(rel, (n or 0, r or 0))
            rep.rows += n
            rep.rejected += r
            rows.append((feed_, rel, digest, n, r, status, run_id, floor))
        rep.loaded = rep.rows - rep.rejected

    def merge_bronze(self, feed: str, good: DataFrame, rep: FeedReport, earliest: str | None, repeats: bool) -> None:
        spec = schemas.feed_spec(feed)
        floor = F.lit(self.floor).cast("timestamp") if self.floor else None
        kt = F.col(spec["knowledge_time"])

        def effective(c):  # a late row counts from the previous run's as-of (rules.md, precise semantics)
            return F.greatest(c, floor) if floor is not None else c

        path = self.lake.bronze(feed)
        schema = schemas.bronze_schema(feed)
        part = schemas.bronze_partition(feed)
        # A bronze table made before the knowledge-date partition keeps its layout (and lacks the column).
        dated = bool(part) and (not self.lake.exists(path) or part in self.lake.partition_columns(self.spark, path))
        if part and not dated:
            schema = T.StructType([f for f in schema.fields if f.name != part])
        df = good.withColumn("_source_known_at", kt).withColumn("_known_at", effective(kt))
        if dated:
            df = df.withColumn(part, F.to_date(kt))
        two_event = schemas.is_two_event(feed)
        if two_event:
            end = F.col(spec["end_knowledge_time"])
            df = df.withColumn("_end_known_at", F.when(end.isNotNull(), effective(end)))
            keys = list(spec["key"])
        else:
            keys = list(spec["key"]) + ["_source_known_at"]
        df = df.withColumn("_line", F.col("_line").cast("int")).withColumn("_run_id", F.lit(self.run_id))
        # Within this batch: one row per merge key, the later file then the later line. A key twice in one
        # delivery is rare (`batch_stats` finds out), so the whole batch is sorted by key only when it happens.
        if repeats:
            w = Window.partitionBy(*keys).orderBy(F.col("_file").desc(), F.col("_line").desc())
            df = df.withColumn("_rn", F.row_number().over(w)).where("_rn = 1").drop("_rn")
        # A row is late if known before the floor; when even the earliest is not, the count (a Spark job) is 0.
        if self.floor and earliest and datetime.fromisoformat(earliest) < self.floor:
            rep.late += df.where(F.col("_known_at") > F.col("_source_known_at")).count()
        later = "(s._file > t._file OR (s._file = t._file AND s._line > t._line))"
        update = {c.name: f"s.`{c.name}`" for c in schema.fields}
        update["_known_at"] = "least(t._known_at, s._known_at)"  # a re-delivery is not late news
        if two_event:  # an end, once known, stays known
            end_col = spec["end_knowledge_time"]
            update[end_col] = f"coalesce(s.`{end_col}`, t.`{end_col}`)"
            update["_end_known_at"] = (
                "coalesce(least(t._end_known_at, s._end_known_at), t._end_known_at, s._end_known_at)"
            )
        prune = None
        if not two_event and earliest:  # a version matches only its own knowledge time: older days need not be read
            prune = f"t._source_known_at >= TIMESTAMP'{earliest}'"
            if dated:
                prune = f"t.{part} >= DATE'{earliest[:10]}' AND {prune}"
        self.lake.merge(
            self.spark,
            path,
            schema,
            df,
            keys,
            update_when=later,
            update_set=update,
            prune=prune,
            properties=CHANGE_FEED | {"delta.dataSkippingStatsColumns": ",".join(schemas.bronze_stats_columns(feed))},
            partition_by=part if dated else None,
        )


def batch_stats(validated: DataFrame, feed: str) -> tuple[list, bool]:
    """Per file: rows (`n`), rejected rows (`r`) and the earliest knowledge time of its good rows (`lo`, as text);
    and whether two good rows may share a bronze merge key (their 64-bit hashes collide: a false alarm only costs
    a sort of the batch)."""
    spec = schemas.feed_spec(feed)
    good = F.col("_reject_reason").isNull()
    # min of a timestamp, not of its text: a text aggregate cannot be hashed, so Spark sorted the whole batch
    stats = (
        validated.groupBy("_file")
        .agg(
            F.count("*").alias("n"),
            F.count("_reject_reason").alias("r"),
            F.min(F.when(good, F.col(spec["knowledge_time"]))).alias("lo"),
        )
        .select("_file", "n", "r", F.date_format("lo", KNOWN_AT_FORMAT).alias("lo"))
        .collect()
    )
    keys = list(spec["key"]) + ([] if schemas.is_two_event(feed) else [spec["knowledge_time"]])
    per_key = validated.where(good).groupBy(F.xxhash64(*keys).alias("_h")).count()
    most = per_key.agg(F.max("count")).collect()[0][0]
    return stats, bool(most and most > 1)


def ingest_counts(spark: SparkSession, lake: Lake, run_id: str) -> tuple[dict[str, int], dict[str, int]]:
    """Rows loaded and rejected per feed by this run id, from the `_ingested_files` register (a re-run of the
    stage counts the same files)."""
    files = lake.read_gold(spark, "ingested_files").where(F.col("run_id") == run_id)
    got = {
        r["feed"]: (r["rows"] or 0, r["rejected"] or 0)
        for r in files.groupBy("feed").agg(F.sum("rows").alias("rows"), F.sum("rejected").alias("rejected")).collect()
    }
    return (
        {f: got.get(f, (0, 0))[0] - got.get(f, (0, 0))[1] for f in schemas.FEEDS},
        {f: got.get(f, (0, 0))[1] for f in schemas.FEEDS},
    )
