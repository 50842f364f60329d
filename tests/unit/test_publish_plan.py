"""What a publish writes and what the result gates judge: one plan (`jobs.screen.plan`), on tiny inline tables."""

from __future__ import annotations

from datetime import datetime

import pytest
from pyspark.testing import assertDataFrameEqual

from jobs import schemas
from jobs.policy import policy_at
from jobs.screen import before_run, lists, plan

T = datetime(2022, 5, 3, 1, 0)
RUN = "nightly-20220503T010000"
RAISED = datetime(2022, 5, 1, 9, 0)

pytestmark = pytest.mark.usefixtures("small_jobs")


@pytest.fixture(scope="module")
def policy():
    return policy_at(T)


def reasons(spark, *rows: dict):
    """popup_reasons rows: each a dict over a default reason (person `p`, reason `r1`, active, raised by R0)."""
    base = {
        "person_key": "p",
        "reason_key": "r1",
        "popup_code": "2",
        "reason_type": "companion",
        "cause": "c",
        "evidence": "{}",
        "status": "active",
        "raised_at": RAISED,
        "last_evidence_at": RAISED,
        "release_rule": None,
        "release_eligible_at": None,
        "released_at": None,
        "release_basis": None,
        "release_detail": None,
        "first_run_id": "R0",
        "release_run_id": None,
    }
    schema = schemas.gold_schema("popup_reasons")
    return spark.createDataFrame([tuple({**base, **r}[f] for f in schema.fieldNames()) for r in rows], schema)


def staged(spark, *rows: dict):
    """Screened reasons as the screen stage stages them: no run ids."""
    return reasons(spark, *rows).drop("first_run_id", "release_run_id")


def keys(df) -> list[tuple[str, str]]:
    return sorted((r["person_key"], r["reason_key"]) for r in df.select("person_key", "reason_key").collect())


def test_a_reason_new_to_gold_is_assigned_and_written_with_this_run_as_its_first(spark, policy):
    p = plan(
        reasons(spark, {"person_key": "a"}), staged(spark, {"person_key": "a"}, {"person_key": "d"}), T, RUN, policy
    )
    assert keys(p.assign) == [("d", "r1")]
    assert keys(p.release) == []
    assertDataFrameEqual(
        p.rows, reasons(spark, {"person_key": "a", "first_run_id": RUN}, {"person_key": "d", "first_run_id": RUN})
    )


def test_an_active_reason_the_rules_release_is_released_with_this_run_as_its_release(spark, policy):
    done = {"status": "released", "released_at": datetime(2022, 5, 2, 9, 0), "release_basis": "nat_negative"}
    p = plan(reasons(spark, {"person_key": "a"}), staged(spark, {"person_key": "a", **done}), T, RUN, policy)
    assert keys(p.assign) == [] and keys(p.release) == [("a", "r1")]
    assertDataFrameEqual(
        p.rows, reasons(spark, {"person_key": "a", "first_run_id": RUN, "release_run_id": RUN, **done})
    )


def test_an_active_reason_the_rules_no_longer_produce_is_released_at_the_as_of_as_evidence_withdrawn(spark, policy):
    p = plan(
        reasons(spark, {"person_key": "a"}, {"person_key": "b"}), staged(spark, {"person_key": "a"}), T, RUN, policy
    )
    assert keys(p.release) == [("b", "r1")]
    gone = {
        "person_key": "b",
        "status": "released",
        "released_at": T,
        "release_basis": "evidence_withdrawn",
        "release_detail": f"no longer produced under policy {policy.id}",
        "release_run_id": RUN,
    }
    assertDataFrameEqual(p.rows, reasons(spark, {"person_key": "a", "first_run_id": RUN}, gone))


def test_an_hourly_run_releases_as_gone_only_reasons_of_the_people_it_screened(spark, policy):
    scope = spark.createDataFrame([("a",)], "person_key string")
    p = plan(
        reasons(
            spark, {"person_key": "a", "reason_key": "r1"}, {"person_key": "a", "reason_key": "r2"}, {"person_key": "b"}
        ),
        staged(spark, {"person_key": "a"}),
        T,
        RUN,
        policy,
        scope,
    )
    assert keys(p.release) == [("a", "r2")]
    assert sorted(keys(p.rows)) == [("a", "r1"), ("a", "r2")]  # b, not screened, is not touched


def test_a_released_reason_in_gold_is_neither_assigned_nor_released_again(spark, policy):
    old = {"person_key": "c", "status": "released", "released_at": RAISED, "release_run_id": "R0"}
    p = plan(
        reasons(spark, old),
        staged(spark, {"person_key": "c", "status": "released", "released_at": RAISED}),
        T,
        RUN,
        policy,
    )
    assert keys(p.assign) == [] and keys(p.release) == []


def test_a_rerun_after_a_crash_mid_publish_plans_the_whole_change_again(spark, policy):
    before = reasons(
        spark,
        {"person_key": "a"},
        {"person_key": "b"},
        {"person_key": "c", "status": "released", "release_run_id": "R0"},
    )
    # the killed run had merged its reasons already: a released by it, d assigned by it
    half = reasons(
        spark,
        {"person_key": "a", "status": "released", "release_run_id": RUN},
        {"person_key": "b"},
        {"person_key": "c", "status": "released", "release_run_id": "R0"},
        {"person_key": "d", "first_run_id": RUN},
    )
    now = staged(spark, {"person_key": "a", "status": "released"}, {"person_key": "b"}, {"person_key": "d"})
    whole, again = plan(before, now, T, RUN, policy), plan(before_run(half, RUN), now, T, RUN, policy)
    assert (keys(whole.assign), keys(whole.release)) == ([("d", "r1")], [("a", "r1")])
    assert (keys(again.assign), keys(again.release)) == ([("d", "r1")], [("a", "r1")])
    assertDataFrameEqual(again.rows, whole.rows)
    raw = plan(half, now, T, RUN, policy)  # without before_run the gates would see no change at all
    assert (keys(raw.assign), keys(raw.release)) == ([], [])


def test_the_lists_hold_the_reasons_this_run_inserted_and_released_and_whether_the_person_is_green(spark):
    gold = reasons(
        spark,
        {"person_key": "a", "first_run_id": RUN},
        {
            "person_key": "b",
            "status": "released",
            "released_at": T,
            "release_basis": "nat_negative",
            "release_run_id": RUN,
        },
        {
            "person_key": "c",
            "reason_key": "r1",
            "status": "released",
            "released_at": T,
            "release_basis": "nat_negative",
            "release_run_id": RUN,
        },
        {"person_key": "c", "reason_key": "r2"},
        {"person_key": "e"},
    )
    assigned, released = lists(gold, T, RUN)
    assertDataFrameEqual(
        assigned,
        spark.createDataFrame(
            [(RUN, T, "a", "2", "companion", "r1", RAISED, "companion c")], schemas.gold_schema("assignment_list")
        ),
    )
    assertDataFrameEqual(
        released,
        spark.createDataFrame(
            [(RUN, T, "b", "2", "r1", T, "nat_negative", True), (RUN, T, "c", "2", "r1", T, "nat_negative", False)],
            schemas.gold_schema("release_list"),
        ),
    )
