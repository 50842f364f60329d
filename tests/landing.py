"""Helpers to write small hand-made landing files for tests."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

from jobs.schemas import feed_spec

W = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def resident_id(first17: str) -> str:
    """A valid 18-character ID from its first 17 digits (GB 11643 check digit)."""
    return first17 + "10X98765432"[sum(int(a) * b for a, b in zip(first17, W, strict=True)) % 11]


def write_feed(
    landing: Path, feed: str, rows: list[dict], name: str = "part-001.csv", columns: list[str] | None = None
) -> Path:
    cols = columns or [c["name"] for c in feed_spec(feed)["columns"]]
    path = Path(landing) / feed / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(cols)
        for r in rows:
            w.writerow(["" if r.get(c) is None else r.get(c) for c in cols])
    return path


_dwell_ids = itertools.count(1)


def dwell(phone: str, grid: str, start: str, end: str, reported: str, rid: str | None = None) -> dict:
    """A grid_dwells row; record IDs gd-001, gd-002, ... unless given."""
    rid = rid or f"gd-{next(_dwell_ids):03d}"
    return {
        "record_id": rid,
        "phone": phone,
        "grid_id": grid,
        "start_at": start,
        "end_at": end,
        "reported_at": reported,
    }


def screened_stories(spark, root: Path, build, people: dict[str, str]):
    """Write a landing with `build(landing)`, ingest it into a lake under `root`, and return reasons(t): each of
    `people` (name -> ID) with their reasons screened at as-of t as a run reads bronze, ordered, cached per t."""
    from datetime import datetime
    from functools import cache

    from jobs.ingest.job import Ingestor
    from jobs.keys import person_key_py
    from jobs.lake import Lake
    from jobs.policy import policy_at
    from jobs.screen import inputs, screen

    build(root / "landing")
    lake = Lake(root / "lake")
    Ingestor(spark, lake, root / "landing", "test", None, log=lambda *_: None).run()
    keys = {person_key_py(p): name for name, p in people.items()}

    @cache
    def reasons(t: str) -> dict[str, list[dict]]:
        ts = datetime.fromisoformat(t)
        out: dict[str, list[dict]] = {name: [] for name in people}
        for r in screen(spark, inputs(spark, lake, ts), ts, policy_at(ts)).collect():
            out[keys[r["person_key"]]].append(r.asDict())
        for v in out.values():
            v.sort(key=lambda r: (r["popup_code"], r["reason_type"], r["cause"], r["raised_at"]))
        return out

    return reasons


BRIEF = ("popup_code", "reason_type", "cause", "status", "raised_at", "released_at", "release_basis")


def brief(rows: list[dict]) -> list[tuple]:
    """Each reason as the tuple the scenario tests compare: its kind, state and release, in the rows' order."""
    return [tuple(r[c] for c in BRIEF) for r in rows]


def briefs_at(reasons):
    """`reasons` of screened_stories as at(t): each person's briefs at as-of t, sorted."""
    return lambda t: {name: sorted(brief(rows)) for name, rows in reasons(t).items()}
