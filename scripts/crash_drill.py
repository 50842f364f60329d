"""Crash drill: kill the driver (SIGKILL) at every point of a run, rerun the same as-of, compare with a run that
was never interrupted. Usage:

    .venv/bin/python scripts/crash_drill.py [--work /tmp/crash-drill] [--points all|p1,p2|""] [--mid-write [T1,T2]]
                                            [--reuse-baseline]

The lake first gets one completed nightly run (T0); each trial copies it, starts the nightly run at T1 with
SCREENING_CRASH_AT=<point> (jobs/faults.py), checks it died, reruns it plainly and compares every table with
the baseline (the T1 run uninterrupted), row for row, ignoring only wall-clock columns of run_log (started_at,
finished_at, the stopwatch fields of dq_summary); its input_versions are compared by the bronze data they name
(a killed run's commits add versions).
`--mid-write` adds trials that kill while Delta is writing data files of popup_reasons / assignment_list /
release_list (a new data file exists, its commit does not yet): the middle of the MERGE and of publishing.
Prints one line per trial (and, for a table that differs, rows only in one side), keeps a differing trial's
lake, and exits 1 if any table differs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jobs.devtools.generate import generate  # noqa: E402
from jobs.faults import POINTS  # noqa: E402
from jobs.spark import get_spark  # noqa: E402

T0, T1 = "2022-05-02T01:00:00", "2022-05-03T01:00:00"
# Wall-clock columns, and the bronze Delta versions a run read: those count commits, and a killed run's commits are
# real ones. What the versions point at must be the same data: compared separately (`inputs_read`).
SKIP = {"run_log": {"started_at", "finished_at", "input_versions", "stage_costs"}}


def screening(args: list[str], env_extra: dict | None = None, on_start=None) -> int:
    env = {**os.environ, "SCREENING_SHUFFLE_PARTITIONS": "2", **(env_extra or {})}
    env.setdefault("SCREENING_PII_KEY", "crash-drill-key")
    p = subprocess.Popen(
        [str(Path(sys.executable).with_name("screening")), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    if on_start:
        on_start(p)
    rc = p.wait()
    try:  # a killed driver may leave its JVM behind
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return rc


def run_args(landing: Path, lake: Path, as_of: str) -> list[str]:
    return ["run", "--landing", str(landing), "--lake", str(lake), "--as-of", as_of, "--mode", "nightly"]


def snapshot(spark, lake: Path) -> dict[str, list]:
    """Every Delta table of the lake (bronze, gold, rejects, register) as sorted rows."""
    out = {}
    for log in sorted(lake.glob("**/_delta_log")):
        table = log.parent
        if "staging" in table.parts:
            continue
        name = str(table.relative_to(lake))
        skip = SKIP.get(table.name, set())
        rows = [
            tuple(
                (k, str(untimed(v) if k == "dq_summary" else v)) for k, v in sorted(r.asDict().items()) if k not in skip
            )
            for r in spark.read.format("delta").load(str(table)).collect()
        ]
        out[name] = sorted(rows)
    out["run_log.input_versions (the bronze data they name)"] = inputs_read(spark, lake)
    return out


def untimed(summary: str | None):
    """run_log.dq_summary without its stopwatch fields (seconds per step, validated_at)."""

    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k not in ("seconds", "validated_at")}
        return [strip(v) for v in x] if isinstance(x, list) else x

    return json.dumps(strip(json.loads(summary)), sort_keys=True) if summary else summary


def inputs_read(spark, lake: Path) -> list:
    """Per run and feed: a digest of the bronze table at the version the run's input_versions records."""
    out = []
    for r in spark.read.format("delta").load(str(lake / "gold" / "run_log")).collect():
        for feed, v in sorted(json.loads(r["input_versions"] or "{}").items()):
            digest = None
            if v is not None:
                rows = spark.read.format("delta").option("versionAsOf", v).load(str(lake / "bronze" / feed)).collect()
                digest = hashlib.sha256("\n".join(sorted(str(tuple(x)) for x in rows)).encode()).hexdigest()
            out.append((r["run_id"], feed, digest))
    return sorted(out)


def mid_write_killer(table: Path):
    """Kill the run once a new data file appears in `table` whose commit has not been written yet."""

    def start(p):
        before = set(table.glob("*.parquet")) if table.exists() else set()
        commits = set((table / "_delta_log").glob("*.json")) if table.exists() else set()

        def watch():
            while p.poll() is None:
                if table.exists():
                    new = set(table.glob("*.parquet")) - before
                    if new and set((table / "_delta_log").glob("*.json")) == commits:
                        os.killpg(p.pid, signal.SIGKILL)
                        return
                time.sleep(0.02)

        threading.Thread(target=watch, daemon=True).start()

    return start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/crash-drill")
    ap.add_argument("--points", default="all")
    ap.add_argument(
        "--mid-write",
        nargs="?",
        const="popup_reasons,assignment_list,release_list",
        default="",
        metavar="TABLES",
        help="also kill while writing these gold tables (all three by default)",
    )
    ap.add_argument("--reuse-baseline", action="store_true", help="keep the uninterrupted T1 lake of an earlier drill")
    args = ap.parse_args()

    work = Path(args.work)
    landing, lake0, base = work / "landing", work / "lake0", work / "baseline"
    if not landing.exists():
        generate(landing, sf=0.0005, start=date(2022, 5, 1), days=3, seed=7, log=lambda *_: None)
    if not (lake0 / "gold" / "run_log").exists():
        shutil.rmtree(lake0, ignore_errors=True)
        assert screening(run_args(landing, lake0, T0)) == 0, "the T0 run failed"
    if not (args.reuse_baseline and (base / "gold" / "run_log").exists()):
        shutil.rmtree(base, ignore_errors=True)
        shutil.copytree(lake0, base)
        assert screening(run_args(landing, base, T1)) == 0, "the baseline T1 run failed"
    os.environ.setdefault("SCREENING_PII_KEY", "crash-drill-key")
    spark = get_spark("crash-drill")
    expected = snapshot(spark, base)

    trials: list[tuple[str, dict, object]] = []
    for t in [t for t in args.mid_write.split(",") if t]:
        trials.append((f"mid-write:{t}", {}, t))
    for p in POINTS if args.points == "all" else [p for p in args.points.split(",") if p]:
        trials.append((p, {"SCREENING_CRASH_AT": p}, None))
    failed = 0
    print(f"{'kill point':<28}{'killed':>8}{'rerun':>7}  result")
    for name, env, table in trials:
        lake = work / f"trial-{name.replace(':', '-')}"
        shutil.rmtree(lake, ignore_errors=True)
        shutil.copytree(lake0, lake)
        on_start = mid_write_killer(lake / "gold" / table) if table else None
        rc1 = screening(run_args(landing, lake, T1), env, on_start)
        rc2 = screening(run_args(landing, lake, T1))
        got = snapshot(spark, lake)
        diff = sorted(k for k in set(got) | set(expected) if got.get(k) != expected.get(k))
        ok = rc1 == -signal.SIGKILL and rc2 == 0 and not diff
        failed += not ok
        print(
            f"{name:<28}{'yes' if rc1 == -signal.SIGKILL else f'no ({rc1})':>8}{rc2:>7}  "
            f"{'identical to the uninterrupted run' if not diff else 'DIFFERS: ' + ', '.join(diff)}",
            flush=True,
        )
        for k in diff:
            a, b = set(got.get(k, [])), set(expected.get(k, []))
            print(f"    {k}: only after the crash+rerun {sorted(a - b)[:2]}; only uninterrupted {sorted(b - a)[:2]}")
        if not diff:
            shutil.rmtree(lake, ignore_errors=True)
    spark.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
