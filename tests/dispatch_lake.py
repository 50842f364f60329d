"""One small lake for the issue-6 tests (dispatch, explain, sql, report), built once per test session.

The rule stories of tests/scenarios.py (all residents of community 110105001001) plus people for the other
dispatch routes: a hotel guest in 东城区 (with a formula-like name, and a NAT sample lab2 never uploads), one in
朝阳区 (no contact phone, a clinic visit between the runs), someone outside Beijing, someone not in `persons`, a
resident of another community and street (110105002001). The reference feeds name community 110105001001
(renamed between the runs), hotel HTL-7 and lab1; the other community, hotel and lab go by their codes.
Two nightly runs: RUN1 at 2022-05-10 01:00 and RUN2 at 2022-05-12 01:00.
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path

from jobs.lake import Lake
from tests import scenarios
from tests.landing import resident_id, write_feed

AS_OF1, AS_OF2 = datetime(2022, 5, 10, 1), datetime(2022, 5, 12, 1)
RUN1, RUN2 = "nightly-20220510T010000", "nightly-20220512T010000"
EXTRA = {
    "hotel_guest": resident_id("11010119850101001"),
    "outside": resident_id("13010219850101002"),
    "unlisted": resident_id("13010219850101003"),
    "undeclared": resident_id("11010519850101004"),
    "hotel_guest2": resident_id("11010519850101005"),
}
NAMES = {  # the reference feeds' rows (communities, facilities)
    "communities": [
        {
            "community_code": "110105001001",
            "name": "光华里社区",
            "street_code": "110105001",
            "office_phone": "15100000001",
            "updated_at": "2022-04-01T00:00:00",
        },
        {
            "community_code": "110105001001",
            "name": "光华里北社区",
            "street_code": "110105001",
            "office_phone": "15100000001",
            "updated_at": "2022-05-11T09:00:00",
        },
    ],
    "facilities": [
        {
            "facility_id": "HTL-7",
            "kind": "hotel",
            "name": "长青大酒店(交道口店)",
            "county_code": "110101",
            "contact_phone": "15100000002",
            "updated_at": "2022-04-01T00:00:00",
        },
        {
            "facility_id": "lab1",
            "kind": "lab",
            "name": "北京市朝阳区疾病预防控制中心实验室",
            "county_code": "110105",
            "contact_phone": "15100000003",
            "updated_at": "2022-04-01T00:00:00",
        },
    ],
}
EVIL_NAME = '=HYPERLINK("http://x","点我")'
_built: dict[str, Lake] = {}


def build_landing(landing: Path) -> None:
    scenarios.build(landing)
    write_feed(
        landing,
        "persons",
        [
            {
                "person_id": EXTRA["hotel_guest"],
                "name": EVIL_NAME,
                "birth_date": "1985-01-01",
                "phone": "13800001234",
                "hotel_id": "HTL-7",
                "hotel_county_code": "110101",
                "updated_at": "2022-04-01T00:00:00",
            },
            {
                "person_id": EXTRA["hotel_guest2"],
                "name": "酒店乙",
                "birth_date": "1985-01-01",
                "hotel_id": "HTL-9",
                "hotel_county_code": "110105",
                "updated_at": "2022-04-01T00:00:00",
            },
            {
                "person_id": EXTRA["outside"],
                "name": "京外甲",
                "birth_date": "1985-01-01",
                "phone": "13800005678",
                "updated_at": "2022-04-01T00:00:00",
            },
        ],
        name="part-900.csv",
    )
    write_feed(
        landing,
        "persons",
        [
            {
                "person_id": EXTRA["undeclared"],
                "name": "未申报",
                "birth_date": "1985-01-01",
                "phone": "13800004444",
                "community_code": "110105002001",
                "updated_at": "2022-04-01T00:00:00",
            }
        ],
        name="part-901.csv",
    )
    # 6 h in starred city 1301 (area a-1301) and no trip declaration: trip verification pending
    write_feed(
        landing,
        "kit_bindings",
        [{"person_id": EXTRA["undeclared"], "phone": "13800004444", "bound_at": "2021-01-01T00:00:00"}],
        name="part-900.csv",
    )
    write_feed(
        landing,
        "telecom_stays",
        [
            {
                "record_id": "s-undecl",
                "phone": "13800004444",
                "county_code": "130104",
                "first_seen": "2022-05-07T08:00:00",
                "last_seen": "2022-05-07T14:00:00",
                "reported_at": "2022-05-07T15:00:00",
            }
        ],
        name="part-900.csv",
    )
    write_feed(
        landing,
        "drug_purchases",
        [
            {
                "purchase_id": "d-out",
                "person_id": EXTRA["outside"],
                "pharmacy_id": "ph9",
                "drug_category": "antiviral",
                "purchased_at": "2022-05-08T20:00:00",
            },
            {
                "purchase_id": "d-unl",
                "person_id": EXTRA["unlisted"],
                "pharmacy_id": "ph9",
                "drug_category": "antitussive",
                "purchased_at": "2022-05-08T21:00:00",
            },
        ],
        name="part-900.csv",
    )
    write_feed(
        landing,
        "clinic_visits",
        [
            {
                "visit_id": "cv-h",
                "person_id": EXTRA["hotel_guest"],
                "clinic_id": "cl9",
                "visited_at": "2022-05-08T09:00:00",
                "symptoms": "dry_cough",
            },
            {
                "visit_id": "cv-h2",
                "person_id": EXTRA["hotel_guest2"],
                "clinic_id": "cl9",
                "visited_at": "2022-05-10T20:00:00",
                "symptoms": "fever",
            },
        ],
        name="part-900.csv",
    )
    write_feed(
        landing,
        "nat_samples",
        [
            {
                "sample_id": "n-lab2",
                "person_id": EXTRA["hotel_guest"],
                "site_id": "SITE1",
                "lab_id": "lab2",
                "sampled_at": "2022-05-08T09:00:00",
            }
        ],
        name="part-900.csv",
    )
    for feed, rows in NAMES.items():
        write_feed(landing, feed, rows, name="part-900.csv")


def nightly(spark, lake: Lake, landing: Path, t: datetime, skip_ingest: bool = False) -> None:
    """A nightly run's stages as jobs/run.py runs them, minus the data-quality suites (their own issue and tests;
    minutes each on this machine): ingest → screen → publish gold → dispatch → report → completed."""
    import json

    from jobs import dispatch, report
    from jobs.run import stage_ingest, stage_screen, staged
    from jobs.runlog import RunContext, run_log_row, write_run_log
    from jobs.screen import publish

    quiet = lambda *_: None  # noqa: E731
    ctx = RunContext(spark, lake, str(landing), t, "nightly", log=quiet)
    if not skip_ingest:
        stage_ingest(ctx)
    stage_screen(ctx)
    counts = publish(spark, lake, staged(ctx), t, ctx.run_id, ctx.policy, log=quiet)
    counts.update(dispatch.publish(spark, lake, t, ctx.run_id, ctx.policy, log=quiet))
    write_run_log(ctx, rows_out=json.dumps(counts), policy_version=ctx.policy.id)
    report.write(spark, lake, ctx.run_id, log=quiet, run_row=run_log_row(ctx))
    write_run_log(ctx, status="completed", finished_at=datetime.now())


def scenario_lake(spark) -> Lake:
    """The lake after both runs (built once per test session, on the shared Spark session)."""
    if "lake" not in _built:
        root = Path(tempfile.mkdtemp(prefix="issue6-"))
        build_landing(root / "landing")
        lake = Lake(root / "lake")
        for t in (AS_OF1, AS_OF2):
            nightly(spark, lake, root / "landing", t)
        _built["lake"] = lake
    return _built["lake"]
