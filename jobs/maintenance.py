"""Nightly table maintenance: compact small files (OPTIMIZE) and drop unreferenced ones (VACUUM).

Time travel must keep the audit window of the policy (`audit_window_days`): VACUUM keeps every file a version
inside the window needs, and the Delta log is kept at least as long, so `screening sql --as-of-version` and
`explain --as-of` can reproduce any run inside the window.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from jobs.lake import Lake, delta_version


def tables(lake: Lake) -> list[str]:
    """Every Delta table of the lake (bronze, gold, rejects, data-quality results), not a run's staging."""
    logs = sorted(lake.root.glob("**/_delta_log"))
    return [str(p.parent) for p in logs if "staging" not in p.relative_to(lake.root).parts]


def retention(days: int) -> dict[str, str]:
    return {"delta.logRetentionDuration": f"interval {days} days",
            "delta.deletedFileRetentionDuration": f"interval {days} days"}


def maintain(spark, path: str, days: int) -> int:
    """Retention properties (once), compaction and VACUUM of one table; returns its version afterwards."""
    from delta.tables import DeltaTable

    t = DeltaTable.forPath(spark, path)
    props = retention(days)
    current = t.detail().select("properties").first()["properties"] or {}
    if any(current.get(k) != v for k, v in props.items()):
        spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ("
                  + ", ".join(f"'{k}' = '{v}'" for k, v in props.items()) + ")")
    t.optimize().executeCompaction()
    t.vacuum(days * 24)
    return delta_version(path)


def run(spark, lake: Lake, policy, log=print, threads: int = 4) -> dict[str, int]:
    """Every table, a few at a time: each step on a small table is mostly waiting on its own little Spark jobs."""
    days = policy.audit_window_days
    paths = tables(lake)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        versions = list(pool.map(lambda p: maintain(spark, p, days), paths))
    log(f"maintenance: {len(paths)} tables compacted and vacuumed, time travel kept for {days} days")
    return dict(zip(paths, versions, strict=True))
