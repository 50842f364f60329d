"""A broken delivery halting a run, and an operator's recorded override (the demo of docs/operations.md, "Data quality").

    .venv/bin/python data_quality/demo_broken_feed.py /tmp/dq-demo

Builds a tiny landing set day by day and runs a nightly screening after each day (2022-05-02 .. 05-04, 01:00):
three normal deliveries of telecom stays, case reports and risk announcements (24 a night). The fourth delivery
is broken: the risk-announcement feed does not arrive and the telecom feed is sent twice under new record ids. The
run at 2022-05-05 01:00 halts (exit 3) with nothing published; the same run with `--override-gate` for the
tripped gates and a reason publishes, and run_log keeps who overrode what and why. Uses data_quality/gates.toml
as is. The runs are `screening run` in this process (one Spark session), printing the data-quality lines.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.landing import resident_id, write_feed  # noqa: E402

PHONES = [f"1391111{i:04d}" for i in range(12)]
PEOPLE = [resident_id(f"11010519800101{i:03d}") for i in range(12)]
ANNOUNCEMENTS = 24  # risk announcements a night


def stay(rid: str, phone: str, county: str, day: str) -> dict:
    return {
        "record_id": rid,
        "phone": phone,
        "county_code": county,
        "first_seen": f"{day}T08:00:00",
        "last_seen": f"{day}T20:00:00",
        "reported_at": f"{day}T21:00:00",
    }


def deliver(land: Path, day: int, broken: bool = False) -> None:
    d = f"2022-05-{day:02d}"
    stays = [stay(f"s{day}-{i}", p, "110105" if i else "140105", d) for i, p in enumerate(PHONES)]
    if broken:  # the telecom extract ran twice: every stay again under a new record id
        stays += [dict(s, record_id=s["record_id"] + "-b") for s in stays]
    write_feed(land, "telecom_stays", stays, name=f"{d}.csv")
    write_feed(
        land,
        "case_reports",
        [
            {
                "case_id": f"c{day}",
                "person_id": resident_id(f"14010519700101{day:03d}"),
                "county_code": "140105",
                "case_type": "local",
                "case_date": d,
                "reported_at": f"{d}T08:00:00",
            }
        ],
        name=f"{d}.csv",
    )
    if not broken:  # the risk-announcement feed does not arrive on the broken day
        # the night's list: the district and its communities, all low risk (nobody pops up). 24 announcements a
        # night is over feed_empty's min_recent_rows (20): a feed of one or two a night going silent would not halt
        areas = ["110105"] + [f"110105{day:03d}{i:03d}" for i in range(1, ANNOUNCEMENTS)]
        write_feed(
            land,
            "risk_announcements",
            [
                {
                    "announcement_id": f"a{day}-{i}",
                    "area_code": area,
                    "building_id": None,
                    "risk_level": "low",
                    "effective_from": f"{d}T00:00:00",
                    "announced_at": f"{d}T09:00:00",
                }
                for i, area in enumerate(areas)
            ],
            name=f"{d}.csv",
        )


def screening(land: Path, lake: Path, as_of: str, overrides: dict[str, str] | None = None) -> int:
    """`screening run` in this process (one Spark session for the whole demo); prints the lines that matter."""
    from jobs.cli import parse_as_of
    from jobs.run import run

    extra = "".join(f" --override-gate {g}" for g in overrides or {})
    extra += f' --reason "{next(iter(overrides.values()))}"' if overrides else ""
    print(f"$ screening run --landing {land} --lake {lake} --as-of {as_of}{extra}", flush=True)
    keep = ("data quality", "  gate", "  GATE", "  warn", "data docs", "screened at", "gate ")

    def log(line: str) -> None:
        if line.startswith(keep) or " halted by gate " in line:
            print("  " + line, flush=True)

    rc = run(str(land), str(lake), parse_as_of(as_of), mode="nightly", log=log, overrides=overrides)
    print(f"  (exit {rc})\n", flush=True)
    return rc


def main(work: str) -> None:
    os.environ.setdefault("SCREENING_OPERATOR", "ops-alice")
    work_dir = Path(work)
    shutil.rmtree(work_dir, ignore_errors=True)
    land, lake = work_dir / "landing", work_dir / "lake"
    write_feed(
        land,
        "kit_bindings",
        [
            {"person_id": p, "phone": ph, "bound_at": "2021-01-01T00:00:00"}
            for p, ph in zip(PEOPLE, PHONES, strict=True)
        ],
        name="2022-05-01.csv",
    )
    for day in (1, 2, 3):
        deliver(land, day)
        screening(land, lake, f"2022-05-{day + 1:02d}T01:00:00")
    deliver(land, 4, broken=True)
    screening(land, lake, "2022-05-05T01:00:00")
    why = "announcements moved to weekly; telecom resend confirmed (ticket 4711)"
    screening(land, lake, "2022-05-05T01:00:00", {"feed_empty": why, "feed_suite": why})

    from jobs.lake import Lake
    from jobs.spark import get_spark

    spark = get_spark("dq-demo")
    row = Lake(lake).read_gold(spark, "run_log").where("run_id = 'nightly-20220505T010000'").first()
    print("run_log of nightly-20220505T010000: status", row["status"])
    for o in json.loads(row["overrides"] or "[]"):
        print(f"  override {o['gate']} by {o['by']} at {o['at']}: {o['reason']}")
    print(f"Data Docs: {lake / 'dq' / 'docs' / 'index.html'}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/dq-demo")
