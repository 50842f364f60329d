"""`screening bench --sf X`: time the runs that matter for sizing (docs/scaling.md). Not a test.

Scenarios, each on its own copy of a prepared lake (preparation is not timed):
- initial:   14 days landed on an empty lake, one nightly run (ingest + screen + publish);
- nightly:   day 14 landed on a lake that already screened days 1-13, one nightly run (full screen);
- hourly:    the first hour of day 15 landed on the lake after `initial`, one hourly run (the quietest hour);
- hourly-day: the same lake caught up to 14:00 of day 15 by one hourly run (not timed), then the hour 14:00-15:00
             landed, one hourly run: a daytime hour, when most phones report their dwells;
- companion: reason 3d alone (`jobs.rules.companion.rule`) on bronze as known after `initial`, materialised as
             the screen does (its dwells once, every column of its candidates), counted.
Each is run --repeat times; the table shows the median wall time and the largest peak RSS of the Spark driver
JVM (its VmHWM, reset before each run). A run's clock starts once its copy of the lake and its landing are in place:
making them is the bench's work, not the run's. With --fresh-process each run of the first four scenarios is a
`screening run` of its own: its wall time includes starting Python and the Spark JVM, and every run starts cold
(its peak: the child JVM's VmHWM, read while it runs). With --per-stage each run is the stages of `screening run`,
each a `screening stage NAME` process of its own, one after the other, as the Airflow DAGs' tasks run them (a
`spark-submit` per task); a stage's time is then its process's wall time, start-up included. Results go to
bench/results/<commit>-sf<X>-d<days>.json to compare commits.
The landing set is generated once per (sf, days, grid split, seed) under --work and reused. The prepared lakes
are rebuilt by every run unless --reuse-lakes is given: then a lake prepared earlier from the same landing set and
as-of is reused (its JSON names the commit that prepared it; compare only runs whose lakes have the same layout).
A reused lake skips the runs that warm the JVM up, so the first timed run is a cold one: use --repeat 3.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from jobs import ROOT, engine
from jobs.spark import cut, get_spark, is_connect, split_shuffles

# The CLI imports this module at start-up to add its subcommand, and `screening --help` must not load pyspark: the
# pipeline (run, lake, asof, policy, rules, schemas), the generator and psutil are imported in the functions that
# use them.

SCENARIOS = ("initial", "nightly", "hourly", "hourly-day", "companion")
START = date(2022, 5, 1)
DAYS = 14
DAY_HOUR = 14  # the daytime hour of hourly-day: [14:00, 15:00)
GRID_SPLIT = 8  # ~20 grid dwells per phone per day, the issue's SF=1 density (the generator's default is ~2.5)


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="time initial load, steady nightly, hourly and the companion rule; print a table")
    p.add_argument("--sf", type=float, default=0.01, help="scale factor of the generated landing set")
    p.add_argument("--repeat", type=int, default=3, help="runs per scenario (median reported)")
    p.add_argument("--days", type=int, default=DAYS, help="days in the lake (the initial load)")
    p.add_argument("--grid-split", type=int, default=GRID_SPLIT, help="grid dwell records per stretch in one cell")
    p.add_argument("--work", default=str(ROOT / "bench" / "cache"), help="cached landing sets and scratch lakes")
    p.add_argument("--results", default=str(ROOT / "bench" / "results"), help="where the JSON results go")
    p.add_argument("--only", action="append", choices=SCENARIOS, help="run only these scenarios (repeatable)")
    p.add_argument(
        "--reuse-lakes",
        action="store_true",
        help="reuse a lake prepared by an earlier run from the same landing set (not with the initial scenario)",
    )
    p.add_argument(
        "--fresh-process",
        action="store_true",
        help="time each run as its own `screening run` process: Spark start-up included, a cold JVM each time",
    )
    p.add_argument(
        "--per-stage",
        action="store_true",
        help="time each run as one `screening stage` process per stage, as the Airflow tasks run them "
        "(implies --fresh-process)",
    )
    p.set_defaults(func=cmd_bench)


def cmd_bench(args) -> int:
    result = bench(
        args.sf,
        args.repeat,
        args.grid_split,
        Path(args.work),
        Path(args.results),
        args.only or SCENARIOS,
        days=args.days,
        reuse=args.reuse_lakes,
        fresh=args.fresh_process or args.per_stage,
        per_stage=args.per_stage,
    )
    print(table(result))
    print(f"results: {result['path']}")
    return 0


# -- landing sets --------------------------------------------------------------------------------------------
def commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def landing_set(work: Path, sf: float, grid_split: int, days: int = DAYS) -> Path:
    """Generate days + 1 days once (the extra day feeds the hourly scenario)."""
    from jobs.devtools.generate import generate  # not at start-up: it loads Faker and pyspark (schemas)

    path = work / f"landing-sf{sf:g}-d{days + 1}-g{grid_split}"
    if not (path / "_generated" / "manifest.json").exists():
        shutil.rmtree(path, ignore_errors=True)
        generate(
            path, sf=sf, start=START, days=days + 1, seed=7, bad_share=0.0, grid_split=grid_split, log=lambda *_: None
        )
    return path


def day_of(name: str) -> date | None:
    stem = Path(name).stem.rsplit("_", 1)[-1]
    return datetime.strptime(stem, "%Y%m%d").date() if stem.isdigit() and len(stem) == 8 else None


def link_days(src: Path, dst: Path, last_day: date) -> int:
    """Hard-link (same content, no copy) every landing file of days <= last_day into dst; return its data rows."""
    rows = 0
    for f in sorted(src.glob("*/*.csv")):
        d = day_of(f.name)
        if d is None or d > last_day:
            continue
        target = dst / f.parent.name / f.name
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(f, target)
        except OSError:
            shutil.copy2(f, target)
        rows += data_rows(f)
    return rows


def data_rows(f: Path) -> int:
    with open(f, "rb") as fh:
        return max(0, sum(1 for _ in fh) - 1)


def hour_slice(src: Path, dst: Path, day: date, cut: datetime, after: datetime | None = None) -> int:
    """Rows of `day`'s files known by cut (every knowledge time of the row <= cut) and, with `after`, not already
    known by it, as new files: the delivery of the hours (after, cut]. A row lands with its latest knowledge time."""
    from jobs import schemas

    rows = 0
    for f in sorted(src.glob("*/*.csv")):
        if day_of(f.name) != day:
            continue
        spec = schemas.feed_spec(f.parent.name)
        cols = [spec["knowledge_time"]] + ([spec["end_knowledge_time"]] if "end_knowledge_time" in spec else [])
        with open(f, encoding="utf-8-sig", newline="") as fh:
            r = csv.reader(fh)
            header = next(r)
            idx = [header.index(c) for c in cols]
            keep = []
            for row in r:
                ks = [datetime.fromisoformat(row[i][:19]) for i in idx if row[i]]
                if all(k <= cut for k in ks) and (after is None or (ks and max(ks) > after)):
                    keep.append(row)
        out = dst / f.parent.name / f"{f.stem}_h{cut:%H}.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(header)
            w.writerows(keep)
        rows += len(keep)
    return rows


# -- measuring -----------------------------------------------------------------------------------------------
def driver_pid(spark) -> int:
    """The driver JVM's pid: this process's own gateway JVM, or the engine's when this is a thin client."""
    if is_connect(spark):
        st = engine.status()
        if st is None:
            raise SystemExit(
                "bench: SCREENING_SPARK_REMOTE is set but no engine of this project is running "
                "(`screening engine start`)"
            )
        return st.pid
    return int(spark._jvm.java.lang.ProcessHandle.current().pid())


class DriverMemory:
    """Peak RSS of the driver JVM: reset its high-water mark (clear_refs 5), read VmHWM after."""

    def __init__(self, spark=None, pid: int | None = None):
        self.pid = pid if pid is not None else driver_pid(spark)

    def reset(self) -> None:
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        except OSError:
            pass  # not Linux: the peak then covers the whole process lifetime

    def peak_mb(self) -> float:
        peak = engine.memory_mb(self.pid, "VmHWM")
        if peak is not None:
            return peak
        import psutil

        return psutil.Process(self.pid).memory_info().rss / 2**20


def commands(landing: Path, lake: Path, t: datetime, mode: str, per_stage: bool = False) -> list[tuple[str, list[str]]]:
    """(stage, argv) of the processes one timed run starts: `screening run`, or with per_stage one `screening stage`
    per stage of it, in order (RUN_STAGES: the Airflow tasks but maintenance, which `screening run` leaves out)."""
    from jobs.run import RUN_STAGES

    args = ["--landing", str(landing), "--lake", str(lake), "--as-of", t.isoformat(), "--mode", mode]
    if not per_stage:
        return [("run", [sys.executable, "-m", "jobs.cli", "run", *args])]
    return [(s, [sys.executable, "-m", "jobs.cli", "stage", s.replace("_", "-"), *args]) for s in RUN_STAGES]


# A run's "stage NAME: N s, J Spark jobs, C Delta commits" line (jobs.run.execute; J is ? on the engine).
STAGE_LINE = re.compile(r"stage (\w+): (\d+) s(?:, (\d+|\?) Spark jobs, (\d+) Delta commits)?")


def run_fresh(landing: Path, lake: Path, t: datetime, mode: str, log, per_stage: bool = False) -> tuple[int, float]:
    """`screening run` in a process of its own (with per_stage, each stage in one of its own, stopping at the
    first that fails), its output lines to `log`: (exit code, peak RSS in MB of the JVMs it started, polled while
    it runs: VmHWM only grows, so the last reading is the peak but for its last quarter second). With per_stage a
    stage's "stage NAME: N s" line is its process's wall time, start-up included, not the time inside it."""
    import psutil

    peaks: dict[int, float] = {}
    for stage, cmd in commands(landing, lake, t, mode, per_stage):
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

        def watch(proc=proc) -> None:
            while proc.poll() is None:
                try:
                    for child in psutil.Process(proc.pid).children(recursive=True):
                        peaks[child.pid] = DriverMemory(pid=child.pid).peak_mb()
                except (psutil.Error, OSError):
                    pass
                time.sleep(0.25)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        counts = ""
        for line in proc.stdout:
            line = line.rstrip("\n")
            m = STAGE_LINE.fullmatch(line)
            if per_stage and m:
                counts = line[m.end(2) + 2 :]  # its jobs and commits stay; its time is replaced by the wall time
            else:
                log(line)
        code = proc.wait()
        watcher.join()
        if per_stage:
            log(f"stage {stage}: {time.perf_counter() - t0:.0f} s{counts}")
        if code:
            return code, max(peaks.values(), default=0.0)
    return 0, max(peaks.values(), default=0.0)


def gold_rows(spark, lake_dir: Path) -> int:
    from jobs.lake import Lake

    return Lake(lake_dir).read_gold(spark, "popup_reasons").count()


PREPARED = ("initial", "nightly")  # the lakes prepare() makes under scratch/; everything else there is a copy
STAMP = "prepared.json"  # written last, once a prepared lake is complete: what it was made from, and by which commit


def stamp(base: Path, src: Path, last_day: date, as_of: datetime) -> dict:
    made = {"landing": str(src), "last_day": last_day.isoformat(), "as_of": as_of.isoformat(), "commit": commit()}
    (base / STAMP).write_text(json.dumps(made), encoding="utf-8")
    return made


def reusable(base: Path, src: Path, last_day: date, as_of: datetime) -> dict | None:
    """The stamp of a lake prepared from this landing set up to last_day and run at as_of, if there is one."""
    try:
        made = json.loads((base / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    same = made.get("landing") == str(src) and made.get("last_day") == last_day.isoformat()
    return made if same and made.get("as_of") == as_of.isoformat() and (base / "lake").is_dir() else None


def prepare(
    work: Path, src: Path, name: str, last_day: date, as_of: datetime | None, reuse: bool = False
) -> tuple[Path, Path, dict | None]:
    """A landing of days <= last_day and, when as_of is given, a lake that has run nightly on it (with reuse, the
    one an earlier run prepared from the same landing set, if any). The third item is the lake's stamp."""
    from jobs.run import run

    base = work / "scratch" / name
    landing, lake = base / "landing", base / "lake"
    if reuse and as_of is not None and (made := reusable(base, src, last_day, as_of)):
        print(f"bench: reusing the {name} lake prepared by commit {made['commit']}", file=sys.stderr, flush=True)
        return landing, lake, made
    shutil.rmtree(base, ignore_errors=True)
    link_days(src, landing, last_day)
    if as_of is None:
        return landing, lake, None
    code = run(str(landing), str(lake), as_of, mode="nightly", log=lambda *_: None)
    if code:
        raise SystemExit(f"bench: preparing {name} failed with exit code {code}")
    return landing, lake, stamp(base, src, last_day, as_of)


def restore(base: Path, tag: str) -> tuple[Path, Path]:
    """A fresh copy of a prepared (landing, lake) pair for one timed run."""
    dst = base.parent / f"{base.name}-{tag}"
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(base / "landing", dst / "landing", copy_function=os.link)  # landing files are immutable
    if (base / "lake").exists():
        shutil.copytree(base / "lake", dst / "lake", copy_function=copy_or_link)
    return dst / "landing", dst / "lake"


def copy_or_link(src: str, dst: str) -> None:
    """Parquet files hard-linked, the rest copied. Spark and Delta never rewrite a Parquet file in place (they write
    new files and unlink old ones), but a run rewrites other files of its lake (the lock, manifests, work orders).
    An SF 1 lake is about 10 GB: a real copy per timed run would not fit the disk."""
    if src.endswith(".parquet"):
        os.link(src, dst)
    else:
        shutil.copy2(src, dst)


def bench(
    sf: float,
    repeat: int,
    grid_split: int,
    work: Path,
    results: Path,
    scenarios=SCENARIOS,
    days: int = DAYS,
    reuse: bool = False,
    fresh: bool = False,
    per_stage: bool = False,
) -> dict:
    from jobs import asof
    from jobs.lake import Lake
    from jobs.policy import policy_at
    from jobs.rules import companion
    from jobs.rules.links import linked_phones
    from jobs.run import run

    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    src = landing_set(work, sf, grid_split, days)
    gen_s = time.time() - t0
    spark = get_spark("screening-bench")
    mem = DriverMemory(spark)
    last = START + timedelta(days=days - 1)
    t_initial = datetime.combine(last + timedelta(days=1), datetime.min.time())  # midnight after the last day
    t_prev = t_initial - timedelta(days=1)
    t_hour = t_initial + timedelta(hours=1)  # the next day's first hour
    rows: list[dict] = []

    stage_s: dict[str, list[float]] = {}  # the run's own "stage NAME: N s" lines, for the breakdown
    stage_counts: dict[str, tuple[str, int]] = {}  # stage -> (Spark jobs or "?", Delta commits) of the last run
    screened: list[int] = []  # an hourly run's "hourly: N people to screen": its work grows with them, not rows in

    def collect(line: str) -> None:
        if m := re.match(r"hourly: (\d+) people to screen", str(line)):
            screened.append(int(m[1]))
        m = STAGE_LINE.fullmatch(str(line))
        if m:
            stage_s.setdefault(m[1], []).append(float(m[2]))
            if m[4] is not None:
                stage_counts[m[1]] = (m[3], int(m[4]))
            print(f"bench: {line}", file=sys.stderr, flush=True)  # progress: a run at SF 0.1 takes most of an hour

    child_peak: list[float] = []  # a fresh-process run's peak (run_on)

    def timed(name: str, rows_in: int, fn, rows_out, setup=lambda i: i) -> None:
        """fn(setup(i)) timed, `repeat` times; setup (copying the lake, landing the files) is not."""
        walls, peaks, outs = [], [], []
        stage_s.clear()
        stage_counts.clear()
        screened.clear()
        for i in range(repeat):
            print(f"bench: {name}, run {i + 1} of {repeat}", file=sys.stderr, flush=True)
            arg = setup(i)
            child_peak.clear()
            mem.reset()
            t = time.perf_counter()
            out_ctx = fn(arg)
            walls.append(time.perf_counter() - t)
            peaks.append(child_peak[-1] if child_peak else mem.peak_mb())
            outs.append(rows_out(out_ctx))
        wall = statistics.median(walls)
        rows.append(
            {
                "stage": name,
                "at": datetime.now().isoformat(timespec="seconds"),
                "rows_in": rows_in,
                "rows_out": outs[-1],
                "wall_s": round(wall, 2),
                "rows_per_s": round(rows_in / wall, 1) if wall else None,
                "peak_driver_mb": round(max(peaks)),
                "runs_s": [round(w, 2) for w in walls],
                "stages_s": {k: statistics.median(v) for k, v in stage_s.items()},
                "stages_jobs": {k: None if j == "?" else int(j) for k, (j, _) in stage_counts.items()},
                "stages_commits": {k: c for k, (_, c) in stage_counts.items()},
            }
            | ({"people_screened": screened[-1]} if screened else {})
            | ({"fresh_process": True} if child_peak else {})
            | ({"per_stage": True} if child_peak and per_stage else {})
        )

    def of_runs(name: str) -> str:  # a row timed stage by stage keeps its own name: the JSON keeps both rows
        return f"{name} per stage" if per_stage else name

    def run_on(landing: Path, lake: Path, t: datetime, mode: str) -> Path:
        if fresh:
            code, peak = run_fresh(landing, lake, t, mode, collect, per_stage)
            child_peak.append(mem.peak_mb() if is_connect(spark) else peak)  # thin clients: the engine's peak
        else:
            code = run(str(landing), str(lake), t, mode=mode, log=collect)
        if code:
            raise SystemExit(f"bench: {mode} run at {t} failed with exit code {code}")
        return lake

    initial_base = work / "scratch" / "initial"
    prepared: dict[str, str] = {}  # prepared lake -> the commit that prepared it
    if "initial" in scenarios:
        landing14, _, _ = prepare(work, src, "initial", last, None)  # a landing only: the timed runs load it
        rows_14 = sum(data_rows(f) for f in landing14.glob("*/*.csv"))
        timed(
            of_runs(f"initial ({days} days, nightly)"),
            rows_14,
            lambda copy: run_on(*copy, t_initial, "nightly"),
            lambda lk: gold_rows(spark, lk),
            setup=lambda i: restore(initial_base, f"r{i}"),
        )
        if {"hourly", "hourly-day", "companion"} & set(scenarios):
            shutil.copytree(
                initial_base.parent / f"initial-r{repeat - 1}" / "lake", initial_base / "lake"
            )  # that state
            prepared["initial"] = stamp(initial_base, src, last, t_initial)["commit"]
    elif {"hourly", "hourly-day", "companion"} & set(scenarios):
        prepared["initial"] = prepare(work, src, "initial", last, t_initial, reuse)[2]["commit"]
    if "nightly" in scenarios:
        base = work / "scratch" / "nightly"
        prepared["nightly"] = prepare(work, src, "nightly", last - timedelta(days=1), t_prev, reuse)[2]["commit"]
        day14 = sum(data_rows(f) for f in src.glob(f"*/*_{last:%Y%m%d}.csv"))

        def day_landed(i: int) -> tuple[Path, Path]:
            landing, lake = restore(base, f"r{i}")
            link_days(src, landing, last)
            return landing, lake

        timed(
            of_runs("steady nightly (+1 day)"),
            day14,
            lambda copy: run_on(*copy, t_initial, "nightly"),
            lambda lk: gold_rows(spark, lk),
            setup=day_landed,
        )

    def timed_hour(name: str, base: Path, t_to: datetime, after: datetime | None = None) -> None:
        """One hourly run at t_to on a copy of `base`, the rows of the next day known in (after, t_to] landed."""

        def hour_landed(i: int) -> tuple[Path, Path]:
            landing, lake = restore(base, f"h{i}")
            hour_slice(src, landing, last + timedelta(days=1), t_to, after)
            return landing, lake

        probe = work / "scratch" / f"hour-probe-{base.name}"
        shutil.rmtree(probe, ignore_errors=True)
        timed(
            of_runs(name),
            hour_slice(src, probe, last + timedelta(days=1), t_to, after),
            lambda copy: run_on(*copy, t_to, "hourly"),
            lambda lk: gold_rows(spark, lk),
            setup=hour_landed,
        )

    if "hourly" in scenarios:
        timed_hour("hourly (+1 hour)", initial_base, t_hour)
    if "hourly-day" in scenarios:
        t_from = t_initial + timedelta(hours=DAY_HOUR)
        landing, lake = restore(initial_base, "day")
        hour_slice(src, landing, last + timedelta(days=1), t_from)
        run_on(landing, lake, t_from, "hourly")  # the morning in one catch-up run
        timed_hour(f"hourly (+1 hour at {DAY_HOUR}:00)", landing.parent, t_from + timedelta(hours=1), t_from)
    if "companion" in scenarios:
        lake = Lake(initial_base / "lake")
        b = asof.load(spark, lake, t_initial, skip=("grid_dwells",))
        raw = lake.read_bronze(spark, "grid_dwells")
        dwells = asof.known_by(raw, t_initial).count()
        links = linked_phones(b["kit_bindings"], b["phone_registrations"])

        def comp(_i: int) -> int:  # as the screen does: the dwells in case cells materialised once (jobs.screen.inputs:
            # the rule reads them twice), and every column of the candidates, evidence included (screen.screen)
            with split_shuffles(spark):
                mine = cut(companion.dwells_in_case_cells(raw, links, b["case_reports"], t_initial))
                return cut(companion.rule(spark, mine, links, b["case_reports"], policy_at(t_initial))).count()

        timed("companion rule (3d) alone", dwells, comp, lambda n: n)
        for df in b.values():
            df.unpersist()
    for d in (work / "scratch").iterdir():  # the per-run copies and probes; the prepared lakes stay for --reuse-lakes
        if d.name not in PREPARED:
            shutil.rmtree(d, ignore_errors=True)
    result = {
        "commit": commit(),
        "sf": sf,
        "days": days,
        "grid_split": grid_split,
        "repeat": repeat,
        "landing": str(src),
        "prepared_by": prepared,
        "generate_s": round(gen_s, 1),
        "at": datetime.now().isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_1m": os.getloadavg()[0],
            "spark_master": spark.conf.get("spark.master", "?"),
            "engine": "connect" if is_connect(spark) else "classic",
            "shuffle_partitions": spark.conf.get("spark.sql.shuffle.partitions"),
            "driver_memory": spark.conf.get("spark.driver.memory", "default"),
        },
        "rows": rows,
    }
    result["path"] = str(write_result(result, results))
    return result


def write_result(result: dict, results: Path) -> Path:
    """<commit>-sf<X>-d<days>.json. A file of the same name (another --only run of the same commit) keeps its
    other scenarios' rows; the scenarios run again are replaced."""
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{result['commit']}-sf{result['sf']:g}-d{result['days']}.json"
    if path.exists():
        mine = {r["stage"] for r in result["rows"]}
        kept = [r for r in json.loads(path.read_text(encoding="utf-8")).get("rows", []) if r["stage"] not in mine]
        result = {**result, "rows": kept + result["rows"]}
    path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return path


def stage_cost(row: dict, stage: str) -> str:
    """ " (J jobs, C commits)" of a stage in a bench row, when the run said them (J is ? on the engine)."""
    jobs, commits = row.get("stages_jobs") or {}, row.get("stages_commits") or {}
    if stage not in commits:
        return ""
    return f" ({'?' if jobs.get(stage) is None else jobs[stage]} jobs, {commits[stage]} commits)"


def table(result: dict) -> str:
    head = f"{'stage':<28}{'rows in':>12}{'rows out':>10}{'wall s':>9}{'rows/s':>11}{'peak MB':>9}"
    lines = [
        f"bench sf={result['sf']:g} commit={result['commit']} repeat={result['repeat']} "
        f"(median wall; peak = driver JVM max RSS; load avg {result['machine']['load_avg_1m']:.1f})",
        head,
    ]
    for r in result["rows"]:
        lines.append(
            f"{r['stage']:<28}{r['rows_in']:>12}{r['rows_out']:>10}{r['wall_s']:>9.2f}"
            f"{(r['rows_per_s'] or 0):>11.0f}{r['peak_driver_mb']:>9}"
        )
        if r.get("stages_s"):
            lines.append(
                "    of which "
                + ", ".join(f"{k} {v:.0f} s{stage_cost(r, k)}" for k, v in r["stages_s"].items())
                + (f"; {r['people_screened']} people screened" if "people_screened" in r else "")
                + (
                    "; each stage a process of its own"
                    if r.get("per_stage")
                    else "; each run a fresh process"
                    if r.get("fresh_process")
                    else ""
                )
                + ("; thin clients of the engine" if result["machine"].get("engine") == "connect" else "")
            )
    return "\n".join(lines)
