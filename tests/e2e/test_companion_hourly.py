"""Reason 3d in hourly runs: who is screened when a phone is newly linked to an earlier case (jobs/incremental.py).
A nightly run, then one hour lands; the hourly run is a whole run, so these tests live with the end-to-end ones."""

from __future__ import annotations

from datetime import datetime

import pytest

from jobs import asof, incremental
from jobs.keys import person_key_py
from jobs.lake import Lake
from jobs.policy import policy_at
from jobs.run import run
from tests.landing import dwell, resident_id, write_feed

pytestmark = pytest.mark.slow  # two whole runs: deselect with -m "not slow"


# -- who is screened (jobs.incremental.affected) --------------------------------------------------
H = {n: resident_id(f"11010519860101{i:03d}") for i, n in enumerate(("case_e", "x_old", "z_new", "y_elsewhere"), 1)}
HPH = {"x_old": "13700001001", "z_new": "13700001002", "y_elsewhere": "13700001003"}
CE = "13800000005"
F_RUN, T_RUN = datetime(2022, 5, 12, 0, 0), datetime(2022, 5, 12, 1, 0)


@pytest.fixture(scope="module")
def hourly(spark, tmp_path_factory):
    """A nightly run at F, then one hour lands: the case's phone CE (its registration, landed late), a dwell of z
    in the cell CE dwelt in, a dwell of y in a cell no case touched. Then the hourly run at T."""
    root = tmp_path_factory.mktemp("companion_hourly")
    landing, lake = root / "landing", root / "lake"
    write_feed(
        landing, "kit_bindings", [{"person_id": H[n], "phone": HPH[n], "bound_at": "2021-01-01T00:00:00"} for n in HPH]
    )
    write_feed(
        landing,
        "case_reports",
        [
            {
                "case_id": "c-E",
                "person_id": H["case_e"],
                "county_code": "110105",
                "case_type": "local",
                "case_date": "2022-05-09",
                "reported_at": "2022-05-09T10:00:00",
            }
        ],
    )
    write_feed(
        landing,
        "grid_dwells",
        [  # CE 34 h in G60; x overlaps it for an hour
            dwell(CE, "G60", "2022-05-10T12:00:00", "2022-05-11T22:00:00", "2022-05-11T22:30:00"),
            dwell(HPH["x_old"], "G60", "2022-05-10T13:00:00", "2022-05-10T14:00:00", "2022-05-10T14:30:00"),
        ],
    )
    said: list[str] = []
    assert run(str(landing), str(lake), F_RUN, log=said.append) == 0
    write_feed(
        landing,
        "phone_registrations",
        [{"phone": CE, "person_id": H["case_e"], "registered_at": "2020-01-01T00:00:00"}],
        name="part-002.csv",
    )
    write_feed(
        landing,
        "grid_dwells",
        [
            dwell(HPH["z_new"], "G60", "2022-05-11T20:00:00", "2022-05-11T21:00:00", "2022-05-12T00:20:00"),
            dwell(HPH["y_elsewhere"], "G77", "2022-05-11T20:00:00", "2022-05-11T21:00:00", "2022-05-12T00:20:00"),
        ],
        name="part-002.csv",
    )
    said.clear()
    assert run(str(landing), str(lake), T_RUN, mode="hourly", log=said.append) == 0
    names = {person_key_py(p): n for n, p in H.items()}
    rows = Lake(lake).read_gold(spark, "popup_reasons").collect()
    out: dict[str, list[tuple]] = {n: [] for n in H}
    for r in rows:
        out[names[r["person_key"]]].append((r["cause"], r["status"], r["raised_at"], r["first_run_id"]))
    return said, out, Lake(lake)


def test_hourly_run_screens_who_shared_a_cell_with_a_phone_newly_linked_to_an_earlier_case(hourly):
    _, reasons, _ = hourly
    # the registration landed late: it counts from the previous run's as-of, and so does x's companion
    assert reasons["x_old"] == [("case=c-E", "active", F_RUN, "hourly-20220512T010000")]
    assert reasons["z_new"] == [("case=c-E", "active", datetime(2022, 5, 12, 0, 20), "hourly-20220512T010000")]
    assert reasons["case_e"] == []


def test_hourly_run_does_not_screen_the_owner_of_a_new_dwell_in_a_cell_no_case_touched(hourly):
    said, reasons, _ = hourly
    # case_e (its new registration), x (a cell of the newly linked case phone), z (a new dwell in that cell); not y
    assert [x for x in said if x.startswith("hourly: ")] == [
        "hourly: 3 people to screen (changes since 2022-05-12 00:00:00)"
    ]
    assert reasons["y_elsewhere"] == []


def test_affected_people_are_exactly_the_new_link_the_case_cell_and_the_new_dwell_in_it(spark, hourly):
    lake = hourly[2]
    seen = {f: asof.known_by(lake.read_bronze(spark, f), T_RUN) for f in incremental.NARROWED}
    seen |= asof.load(spark, lake, T_RUN, skip=incremental.NARROWED)
    nobody = spark.createDataFrame([], "person_key string")
    keys = incremental.affected(seen, nobody, F_RUN, T_RUN, policy_at(T_RUN).home_prefix).collect()
    names = {person_key_py(p): n for n, p in H.items()}
    assert sorted(names.get(r["person_key"], r["person_key"]) for r in keys) == ["case_e", "x_old", "z_new"]
