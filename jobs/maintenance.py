"""Nightly table maintenance: compact small files (OPTIMIZE) and drop unreferenced ones (VACUUM).

Time travel must keep the audit window of the policy (`audit_window_days`): VACUUM keeps every file a version
inside the window needs, and the Delta log is kept at least as long, so `screening sql --as-of-version` and
`explain --as-of` can reproduce any run inside the window.
"""

from __future__ import annotations

from jobs import schemas
from jobs.lake import Lake


def tables(lake: Lake) -> list[str]:
    paths = [lake.bronze(f) for f in schemas.FEEDS] + [lake.gold(t) for t in schemas.GOLD]
    return [p for p in paths if lake.exists(p)]


def run(spark, lake: Lake, policy, log=print) -> dict[str, int]:
    from delta.tables import DeltaTable

    days = policy.audit_window_days
    done = {}
    for path in tables(lake):
        spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ("
                  f"'delta.logRetentionDuration' = 'interval {days} days', "
                  f"'delta.deletedFileRetentionDuration' = 'interval {days} days')")
        t = DeltaTable.forPath(spark, path)
        t.optimize().executeCompaction()
        t.vacuum(days * 24)
        done[path] = t.history(1).collect()[0]["version"]
    log(f"maintenance: {len(done)} tables compacted and vacuumed, time travel kept for {days} days")
    return done
