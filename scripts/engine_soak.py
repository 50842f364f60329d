"""Does the warm engine keep its memory flat over many runs? N hourly runs in a row, each a `screening run` process
that is a thin client of the engine (as the Airflow tasks are), on a copy of a lake screened at --as-of. After each
run: the engine's resident memory and its heap in use after a full GC (jcmd). Prints a table and the change from
the first run to the last.

    screening engine start
    SCREENING_SPARK_REMOTE=sc://127.0.0.1:15002 .venv/bin/python scripts/engine_soak.py \\
        --landing demo/landing --lake demo/lake --as-of 2022-05-15T01:00:00 --runs 24
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jobs import engine  # noqa: E402


def heap_used_mb(pid: int) -> float | None:
    """Heap in use right after a full GC (what the runs left behind, not garbage not yet collected)."""
    jcmd = shutil.which("jcmd") or str(Path(os.path.realpath(shutil.which("java") or "java")).parent / "jcmd")
    subprocess.run([jcmd, str(pid), "GC.run"], capture_output=True, timeout=120)
    out = subprocess.run([jcmd, str(pid), "GC.heap_info"], capture_output=True, text=True, timeout=120).stdout
    m = re.search(r"total \d+K, used (\d+)K", out)
    return int(m[1]) / 1024 if m else None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--landing", required=True)
    p.add_argument("--lake", required=True, help="a lake screened at --as-of (copied, never written)")
    p.add_argument("--as-of", required=True, help="the lake's last run; the hourly runs follow it, one an hour")
    p.add_argument("--runs", type=int, default=24)
    args = p.parse_args()
    st = engine.status()
    if st is None or not os.environ.get("SCREENING_SPARK_REMOTE"):
        sys.exit("start the engine (`screening engine start`) and set SCREENING_SPARK_REMOTE first")
    work = Path(tempfile.mkdtemp(prefix="engine-soak-"))
    lake = work / "lake"
    shutil.copytree(args.lake, lake)
    t = datetime.fromisoformat(args.as_of)
    exe = Path(sys.executable).with_name("screening")
    print(f"{'run':>4} {'as of':<20}{'wall s':>8}{'engine RSS MB':>15}{'heap after GC MB':>18}")
    rows = []
    try:
        for i in range(1, args.runs + 1):
            at = t + timedelta(hours=i)
            t0 = time.perf_counter()
            res = subprocess.run(
                [
                    str(exe),
                    "run",
                    "--landing",
                    args.landing,
                    "--lake",
                    str(lake),
                    "--as-of",
                    at.isoformat(),
                    "--mode",
                    "hourly",
                ],
                capture_output=True,
                text=True,
            )
            wall = time.perf_counter() - t0
            if res.returncode:
                sys.exit(f"run {i} exited {res.returncode}: {res.stderr[-2000:]}")
            rows.append((i, wall, engine.memory_mb(st.pid), heap_used_mb(st.pid)))
            print(f"{i:>4} {at.isoformat():<20}{wall:>8.1f}{rows[-1][2]:>15,.0f}{rows[-1][3] or 0:>18,.0f}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    first, last = rows[0], rows[-1]
    print(
        f"after run {last[0]} vs after run 1: RSS {100 * (last[2] / first[2] - 1):+.1f} %, "
        f"heap after GC {100 * (last[3] / first[3] - 1):+.1f} %"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
