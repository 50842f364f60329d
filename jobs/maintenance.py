"""Nightly table maintenance: compact small files (OPTIMIZE) and drop unreferenced ones (VACUUM).

Time travel must keep the audit window of the policy (`audit_window_days`): VACUUM keeps every file a version
inside the window needs, and the Delta log is kept at least as long, so `screening sql --as-of-version` and
`explain --as-of` can reproduce any run inside the window.

Each step runs only where it can change something; on a small table each costs seconds of Spark jobs:
- the retention properties are set when the table's latest checksum file (`_delta_log/N.crc`) lacks them;
- OPTIMIZE when the table has more than one file;
- VACUUM when some file under the table is older than the window. VACUUM never deletes a file modified inside
  the window, so on a table whose files are all younger it would list them and delete nothing (but empty
  directories, which then wait for the first VACUUM that runs).
"""

from __future__ import annotations

import os
import time

from jobs.lake import Lake, checksum, delta_version, set_properties
from jobs.spark import each_of


def tables(lake: Lake) -> list[str]:
    """Every Delta table of the lake (bronze, gold, rejects, data-quality results), not a run's staging."""
    logs = sorted(lake.root.glob("**/_delta_log"))
    return [str(p.parent) for p in logs if "staging" not in p.relative_to(lake.root).parts]


def retention(days: int) -> dict[str, str]:
    return {
        "delta.logRetentionDuration": f"interval {days} days",
        "delta.deletedFileRetentionDuration": f"interval {days} days",
    }


def has_file_older_than(path: str, cutoff: float) -> bool:
    """Whether any file of the table outside its log was last modified before `cutoff` (epoch seconds)."""
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if d != "_delta_log"]
        for name in files:
            try:
                if os.stat(os.path.join(root, name)).st_mtime < cutoff:
                    return True
            except FileNotFoundError:  # removed meanwhile
                continue
    return False


def maintain(spark, path: str, days: int) -> tuple[int, bool, bool]:
    """Retention properties, compaction and VACUUM of one table where needed: (version afterwards, compacted,
    vacuumed)."""
    files = (checksum(path) or {}).get("numFiles")
    set_properties(spark, path, retention(days))
    compact = files is None or files > 1
    if compact:
        spark.sql(f"OPTIMIZE delta.`{path}`").collect()
    # Maintenance works on files, so the wall clock is the right clock here (VACUUM's own cut-off uses it too).
    vacuum = has_file_older_than(path, time.time() - days * 86400)
    if vacuum:
        spark.sql(f"VACUUM delta.`{path}` RETAIN {days * 24} HOURS").collect()
    return delta_version(path), compact, vacuum


def run(spark, lake: Lake, policy, log=print, threads: int = 4) -> dict[str, int]:
    """Every table, a few at a time: each step on a small table is mostly waiting on its own little Spark jobs."""
    days = policy.audit_window_days
    paths = tables(lake)
    done = each_of(lambda p: maintain(spark, p, days), paths, threads)
    log(
        f"maintenance: {len(paths)} tables, {sum(d[1] for d in done.values())} compacted, "
        f"{sum(d[2] for d in done.values())} vacuumed (the others had no file older than {days} days); time travel "
        f"kept for {days} days"
    )
    return {p: d[0] for p, d in done.items()}
