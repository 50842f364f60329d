"""The run gates as functions of numbers (jobs/dq/gates.py): each gate trips on a crafted bad delivery and not on
a normal one, and none trips without enough history (first runs, tiny landings, quiet hourly runs)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from jobs.dq import gates

CFG = gates.config()
FEEDS = ("telecom_stays", "risk_announcements", "case_reports", "venues")
# a city's night: risk announcements by the tens (over feed_empty's min_recent_rows, so their silence halts),
# case reports a handful (under it)
NORMAL = {"telecom_stays": 4000, "risk_announcements": 30, "case_reports": 8, "venues": 0}


def hist(n: int, rows_in: dict | None = None, assigned: int = 40, released: int = 30) -> list[dict]:
    """n earlier completed nightly runs, newest first, each delivering rows_in and (un)popping people."""
    rows_in = rows_in or NORMAL
    return [
        {
            "run_id": f"nightly-{i}",
            "as_of": datetime(2022, 5, 10) - timedelta(days=i),
            "rows_in": dict(rows_in),
            "rows_rejected": {},
            "rows_out": {},
            "dq_summary": {"people_assigned": assigned, "people_released": released},
        }
        for i in range(1, n + 1)
    ]


def feeds(loaded: dict, rejected: dict | None = None, history: list | None = None, rejected_files: dict | None = None):
    full = {f: loaded.get(f, 0) for f in FEEDS}
    return gates.feed_checks(full, rejected or {}, rejected_files or {}, history or [], CFG)


def tripped(checks) -> list[tuple[str, str]]:
    return [(c["gate"], c["subject"]) for c in checks if c["status"] == "tripped"]


def test_normal_delivery_trips_nothing():
    assert tripped(feeds(dict(NORMAL), {"telecom_stays": 9}, hist(7))) == []
    assert tripped(gates.result_checks(45, 28, {"3": 10}, {"3": 200, "1": 80}, hist(7), CFG)) == []


def test_reject_share_over_threshold_trips_with_the_numbers():
    checks = feeds(dict(NORMAL, telecom_stays=3000), {"telecom_stays": 1000})
    assert tripped(checks) == [("reject_share", "telecom_stays")]
    (t,) = gates.trips(checks)
    assert t[0] == "reject_share" and "1000 of 4000 rows rejected (25.0%, threshold 5.0%)" in t[1]
    assert t[2]["rejected"] == 1000 and t[2]["rows"] == 4000


def test_reject_share_needs_a_minimum_of_rows():
    # 3 of 8 case reports rejected: a tiny delivery, not a broken feed
    assert tripped(feeds({"case_reports": 5}, {"case_reports": 3})) == []


def test_a_file_rejected_whole_trips_reject_share():
    assert tripped(feeds(dict(NORMAL), rejected_files={"risk_announcements": 1})) == [
        ("reject_share", "risk_announcements")
    ]


def test_expected_feed_arriving_empty_trips():
    checks = feeds(dict(NORMAL, risk_announcements=0), history=hist(3))
    assert tripped(checks) == [("feed_empty", "risk_announcements")]
    assert "risk_announcements: 0 rows loaded" in gates.trips(checks)[0][1]


def test_feed_not_expected_without_three_deliveries_in_a_row():
    # first runs and runs after a gap: nothing is expected yet
    assert tripped(feeds(dict(NORMAL, risk_announcements=0), history=hist(2))) == []
    h = hist(3)
    h[1]["rows_in"]["risk_announcements"] = 0
    assert tripped(feeds(dict(NORMAL, risk_announcements=0), history=h)) == []
    # reference feeds are never expected
    h = hist(5, dict(NORMAL, venues=10))
    assert tripped(feeds(dict(NORMAL, venues=0), history=h)) == []


def recent(feed: str, *rows: int) -> list[dict]:
    """Earlier runs, newest first, in which `feed` delivered `rows` (the other feeds as NORMAL)."""
    return [dict(h, rows_in=dict(h["rows_in"], **{feed: n})) for h, n in zip(hist(len(rows)), rows, strict=True)]


def feed_empty_checks(checks) -> list[tuple[str, str]]:
    return [(c["subject"], c["status"]) for c in checks if c["gate"] == "feed_empty"]


def test_feed_that_delivered_one_row_a_run_going_silent_does_not_halt():
    checks = feeds(dict(NORMAL, risk_announcements=0), history=recent("risk_announcements", 1, 1, 1))
    assert tripped(checks) == []
    assert feed_empty_checks(checks) == [("telecom_stays", "ok")]  # a small feed's silence is not even a check


def test_feed_that_delivered_substantial_rows_going_silent_halts():
    assert CFG["feed_empty"]["min_recent_rows"] == 20
    checks = feeds(dict(NORMAL, risk_announcements=0), history=recent("risk_announcements", 20, 20, 20))
    assert tripped(checks) == [("feed_empty", "risk_announcements")]
    ((gate, msg, details),) = gates.trips(checks)
    assert gate == "feed_empty"
    assert msg == (
        "risk_announcements: 0 rows loaded in this run (0 rejected); it delivered 20, 20, 20 rows in the last 3 runs"
    )
    assert details == {"subject": "risk_announcements", "rows": 0, "rejected": 0, "recent": [20, 20, 20]}
    # delivering is fine: the same feed with rows is checked and passes
    checks = feeds(dict(NORMAL, risk_announcements=3), history=recent("risk_announcements", 20, 20, 20))
    assert ("risk_announcements", "ok") in feed_empty_checks(checks) and tripped(checks) == []


def test_feed_is_expected_only_when_each_of_the_recent_runs_reached_the_floor():
    # the minimum, not the median: a feed that brought 19 rows last night may well bring none tonight
    for rows in ((500, 500, 19), (19, 500, 500), (1, 1, 1000)):
        checks = feeds(dict(NORMAL, risk_announcements=0), history=recent("risk_announcements", *rows))
        assert tripped(checks) == [], rows
        assert "risk_announcements" not in dict(feed_empty_checks(checks)), rows
    # only the last expected_after runs count: an older small delivery does not matter
    checks = feeds(dict(NORMAL, risk_announcements=0), history=recent("risk_announcements", 20, 25, 20, 1))
    assert tripped(checks) == [("feed_empty", "risk_announcements")]


def test_per_feed_floor_keeps_a_small_feed_expected():
    cfg = dict(CFG, feed_empty=dict(CFG["feed_empty"], feeds={"risk_announcements": 1}))
    h = recent("risk_announcements", 1, 1, 1)
    full = {f: 0 if f == "risk_announcements" else NORMAL[f] for f in FEEDS}
    assert tripped(gates.feed_checks(full, {}, {}, h, cfg)) == [("feed_empty", "risk_announcements")]
    # a floor of 0 still means "delivered something": 0, 0, 0 is not a feed that should have arrived
    cfg = dict(CFG, feed_empty=dict(CFG["feed_empty"], feeds={"risk_announcements": 0}))
    h = recent("risk_announcements", 0, 0, 0)
    assert tripped(gates.feed_checks(full, {}, {}, h, cfg)) == []


def test_all_rows_rejected_is_empty_too():
    checks = feeds(dict(NORMAL, risk_announcements=0), {"risk_announcements": 2}, hist(3))
    assert tripped(checks) == [("feed_empty", "risk_announcements")]


def test_duplicated_feed_trips_feed_volume():
    checks = feeds(dict(NORMAL, telecom_stays=8000 * 2), history=hist(5))
    assert tripped(checks) == [("feed_volume", "telecom_stays")]
    msg = gates.trips(checks)[0][1]
    assert "16000 rows loaded, 4.00× the median 4000" in msg


def test_feed_volume_collapse_trips_and_small_feeds_are_left_alone():
    assert tripped(feeds(dict(NORMAL, telecom_stays=500), history=hist(5))) == [("feed_volume", "telecom_stays")]
    # case_reports vary a lot day to day: 8 → 40 is below min_median
    assert tripped(feeds(dict(NORMAL, case_reports=40), history=hist(5))) == []


def test_feed_volume_needs_history():
    checks = feeds(dict(NORMAL, telecom_stays=100_000), history=hist(2))
    assert tripped(checks) == []
    assert [c["status"] for c in checks if c["gate"] == "feed_volume" and c["subject"] == "telecom_stays"] == [
        "no_history"
    ]


def test_mass_popup_trips_assign_volume():
    checks = gates.result_checks(2500, 30, {}, {"1": 100}, hist(5, assigned=40), CFG)
    assert tripped(checks) == [("assign_volume", "run")]
    assert "would assign 2500 people, the median of the last 5 runs is 40" in gates.trips(checks)[0][1]


def test_mass_release_trips_release_volume_and_release_share():
    checks = gates.result_checks(40, 900, {"3": 900}, {"3": 1000, "1": 50}, hist(5, released=30), CFG)
    assert tripped(checks) == [("release_volume", "run"), ("release_share", "3")]
    assert "would release 900 of the 1000 people with an active popup 3 (90%" in gates.trips(checks)[1][1]


def test_release_share_needs_no_history_but_a_minimum_of_active_people():
    # a first run of a quiet lake: 1 of 1 released (a popup kind switched off) is not abnormal
    assert tripped(gates.result_checks(0, 1, {"1": 1}, {"1": 1}, [], CFG)) == []
    assert tripped(gates.result_checks(0, 80, {"3": 80}, {"3": 100}, [], CFG)) == [("release_share", "3")]


def test_assign_and_release_volume_need_history_and_a_minimum_of_people():
    assert tripped(gates.result_checks(5000, 5000, {}, {}, hist(2), CFG)) == []
    # a quiet lake: 2 a day, then 11 — more than 5× but under min_people
    assert tripped(gates.result_checks(11, 11, {}, {}, hist(5, assigned=2, released=2), CFG)) == []


def test_suite_checks_name_the_failed_expectations():
    checks = gates.suite_checks(
        "feed_suite",
        [
            {
                "suite": "feed.telecom_stays",
                "label": "compound_columns_to_be_unique(phone,county_code)",
                "observed": json.dumps({"unexpected_percent": 50.0}),
            }
        ],
    )
    ((gate, msg, details),) = gates.trips(checks)
    assert gate == "feed_suite" and msg.startswith("feed.telecom_stays: 1 gating expectation(s) failed")
    assert details["failed"] == ["compound_columns_to_be_unique(phone,county_code)"]


def test_recent_runs_are_completed_runs_of_the_same_mode_newest_first():
    def row(run_id, mode, status, day):
        return {
            "run_id": run_id,
            "mode": mode,
            "status": status,
            "as_of": datetime(2022, 5, day),
            "finished_at": datetime(2022, 5, day, 2),
            "started_at": datetime(2022, 5, day, 1),
            "rows_in": json.dumps({"telecom_stays": day}),
            "rows_rejected": None,
            "rows_out": None,
            "dq_summary": None,
        }

    rows = [
        row("n1", "nightly", "completed", 1),
        row("h2", "hourly", "completed", 2),
        row("n3", "nightly", "halted", 3),
        row("n4", "nightly", "completed", 4),
        row("n5", "nightly", "completed", 5),
    ]
    got = gates.recent_runs(rows, "nightly", "n5", CFG)
    assert [r["run_id"] for r in got] == ["n4", "n1"]
    assert got[0]["rows_in"] == {"telecom_stays": 4} and got[0]["dq_summary"] == {}


def test_an_optional_reference_feed_absent_or_far_off_its_volume_never_halts():
    """communities and facilities only name things (feeds.md): silence or a jump is no broken delivery."""
    full = {"communities": 7000, "facilities": 900}
    h = [dict(x, rows_in=dict(full)) for x in hist(5)]
    for loaded in ({"communities": 0, "facilities": 0}, {"communities": 3, "facilities": 9000}):
        checks = gates.feed_checks(loaded, {}, {}, h, CFG)
        assert tripped(checks) == [], loaded
        assert [c for c in checks if c["gate"] in ("feed_empty", "feed_volume")] == [], loaded
    # their rejected share is judged like any feed's
    checks = gates.feed_checks({"communities": 300}, {"communities": 100}, {}, h, CFG)
    assert tripped(checks) == [("reject_share", "communities")]
