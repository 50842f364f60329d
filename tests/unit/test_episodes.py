"""Release logic of reasons (jobs.rules.episodes), on tiny pandas inputs: fast and exact."""

from __future__ import annotations

import json
from datetime import datetime

import pandas as pd

from jobs.policy import load_versions
from jobs.rules.common import CANDIDATE_COLUMNS
from jobs.rules.episodes import EPISODE_SCHEMA, build_episodes

POLICY = load_versions()[0]
D = datetime


def cand(**kw) -> dict:
    base = {
        "person_id": "p",
        "popup_code": "3",
        "reason_type": "risk_area_visit",
        "cause": "area=1",
        "start": D(2022, 5, 2),
        "stop": None,
        "stop_basis": None,
        "release_mode": "verify",
        "nat_from": None,
        "exposure_end": D(2022, 5, 1),
        "registered_only": False,
        "evidence_known_at": D(2022, 5, 2),
        "evidence": json.dumps({"feed": "venue_scans", "record_id": "s1"}),
    }
    base.update(kw)
    return base


def verif(vid, at, outcome, signed=False, known=None) -> dict:
    return {
        "person_id": "p",
        "kind": "verification",
        "event_id": vid,
        "event_at": at,
        "known_at": known or at,
        "outcome": outcome,
        "commitment_signed": signed,
    }


def nat(sid, sampled, known) -> dict:
    return {
        "person_id": "p",
        "kind": "nat",
        "event_id": sid,
        "event_at": sampled,
        "known_at": known,
        "outcome": None,
        "commitment_signed": None,
    }


def episode_rows(df) -> list[list]:
    """Every column of episodes, by person, with NaN/NaT as None and times as Timestamps (Spark and pandas agree)."""
    return [
        [None if pd.isna(v) else (pd.Timestamp(v) if isinstance(v, datetime) else v) for v in r]
        for r in df.sort_values("person_id")[EPISODE_SCHEMA.fieldNames()].values.tolist()
    ]


def run(cands, events, as_of):
    out = build_episodes(
        pd.DataFrame(cands, columns=CANDIDATE_COLUMNS),
        pd.DataFrame(
            events, columns=["person_id", "kind", "event_id", "event_at", "known_at", "outcome", "commitment_signed"]
        ),
        as_of,
        POLICY,
    )

    def py(x):
        return None if x is None or pd.isna(x) else pd.Timestamp(x).to_pydatetime()

    return [(r.status, py(r.raised_at), py(r.released_at), r.release_basis) for r in out.itertuples()]


def test_later_keep_cancels_a_pending_cleared():
    events = [verif("v1", D(2022, 5, 3), "cleared"), verif("v2", D(2022, 5, 4), "keep")]
    assert run([cand()], events, D(2022, 5, 20)) == [("active", D(2022, 5, 2), None, None)]


def test_cleared_releases_at_last_exposure_plus_14_days():
    assert run([cand()], [verif("v1", D(2022, 5, 3), "cleared")], D(2022, 5, 20)) == [
        ("released", D(2022, 5, 2), D(2022, 5, 15), "verified_cleared")
    ]


def test_new_evidence_joining_before_a_pending_cleared_release_leaves_the_reason_to_a_new_verification():
    # scan May 1 raises it May 2; cleared on May 3 would release it May 15; a new scan in the area on May 10 joins
    # the reason first, so the verification (made before that scan was known) no longer releases it
    later = cand(
        start=D(2022, 5, 10),
        exposure_end=D(2022, 5, 10),
        evidence_known_at=D(2022, 5, 10),
        evidence=json.dumps({"feed": "venue_scans", "record_id": "s2"}),
    )
    events = [verif("v1", D(2022, 5, 3), "cleared")]
    assert run([cand(), later], events, D(2022, 6, 30)) == [("active", D(2022, 5, 2), None, None)]
    # a cleared verification after the new scan releases 14 days after it
    events.append(verif("v2", D(2022, 5, 11), "cleared"))
    assert run([cand(), later], events, D(2022, 6, 30)) == [
        ("released", D(2022, 5, 2), D(2022, 5, 24), "verified_cleared")
    ]
    # evidence known only after the release is a new reason, as before
    after = cand(
        start=D(2022, 5, 16),
        exposure_end=D(2022, 5, 16),
        evidence_known_at=D(2022, 5, 16),
        evidence=json.dumps({"feed": "venue_scans", "record_id": "s3"}),
    )
    assert run([cand(), after], events[:1], D(2022, 6, 30)) == [
        ("released", D(2022, 5, 2), D(2022, 5, 15), "verified_cleared"),
        ("active", D(2022, 5, 16), None, None),
    ]


def test_a_record_known_before_the_cleared_verification_but_exposed_later_moves_the_release():
    # a ticket bought May 2 (known then) departs the county May 8: its exposure ends May 8, the verification of
    # May 3 was made after it was known, so it still releases, 14 days after May 8
    ticket = cand(
        start=D(2022, 5, 8),
        exposure_end=D(2022, 5, 8),
        evidence_known_at=D(2022, 5, 2),
        evidence=json.dumps({"feed": "tickets", "record_id": "t1"}),
    )
    assert run([cand(), ticket], [verif("v1", D(2022, 5, 3), "cleared")], D(2022, 6, 30)) == [
        ("released", D(2022, 5, 2), D(2022, 5, 22), "verified_cleared")
    ]


def test_older_verification_delivered_late_does_not_govern():
    events = [verif("v2", D(2022, 5, 4), "keep"), verif("v1", D(2022, 5, 3), "not_exposed", known=D(2022, 5, 5))]
    assert run([cand()], events, D(2022, 5, 20)) == [("active", D(2022, 5, 2), None, None)]


def test_not_exposed_through_registered_link_needs_commitment_letter():
    c = cand(registered_only=True)
    assert run([c], [verif("v1", D(2022, 5, 3), "not_exposed")], D(2022, 5, 9)) == [
        ("active", D(2022, 5, 2), None, None)
    ]
    assert run([c], [verif("v1", D(2022, 5, 3), "not_exposed", signed=True)], D(2022, 5, 9)) == [
        ("released", D(2022, 5, 2), D(2022, 5, 3), "verified_not_exposed")
    ]


def test_new_evidence_after_release_raises_a_new_reason_old_evidence_does_not():
    cands = [
        cand(),
        cand(start=D(2022, 5, 2, 12), evidence_known_at=D(2022, 5, 2, 12)),
        cand(start=D(2022, 5, 6), evidence_known_at=D(2022, 5, 6)),
    ]
    assert run(cands, [verif("v1", D(2022, 5, 3), "not_exposed")], D(2022, 5, 9)) == [
        ("released", D(2022, 5, 2), D(2022, 5, 3), "verified_not_exposed"),
        ("active", D(2022, 5, 6), None, None),
    ]


def test_negative_nat_known_before_the_trigger_would_be_raised_prevents_it():
    c = cand(
        popup_code="4",
        reason_type="drug_purchase",
        release_mode="nat",
        nat_from=D(2022, 5, 2),
        exposure_end=None,
        start=D(2022, 5, 3),
    )
    assert run([c], [nat("n1", D(2022, 5, 2, 1), D(2022, 5, 2, 20))], D(2022, 5, 9)) == []


def test_positive_or_earlier_nat_releases_nothing():
    c = cand(popup_code="4", reason_type="drug_purchase", release_mode="nat", nat_from=D(2022, 5, 2), exposure_end=None)
    assert run([c], [nat("n0", D(2022, 5, 1), D(2022, 5, 3))], D(2022, 5, 9)) == [("active", D(2022, 5, 2), None, None)]


def test_touching_holds_merge_into_one_episode():
    a = cand(
        popup_code="1",
        reason_type="case_county",
        release_mode="auto",
        stop=D(2022, 5, 4),
        stop_basis="evidence_withdrawn",
    )
    b = cand(
        popup_code="1",
        reason_type="case_county",
        release_mode="auto",
        start=D(2022, 5, 4),
        stop=D(2022, 5, 16),
        stop_basis="left_14d",
    )
    assert run([a, b], [], D(2022, 5, 20)) == [("released", D(2022, 5, 2), D(2022, 5, 16), "left_14d")]


def test_bundled_candidates_give_the_same_episodes_as_each_candidate_alone(spark):
    """Thousands of dwell pairs of one household and one case share start and stop; `episodes` bundles them before
    the state machine. The reference is build_episodes on every candidate alone; every column must agree."""
    from jobs.rules.episodes import EVENT_SCHEMA, bundle, episodes

    def ev(rid):
        return json.dumps({"feed": "grid_dwells", "record_id": rid})

    comp = {"reason_type": "companion", "cause": "case=c1"}
    cands = []
    for i in range(30):  # p: two starts, a cleared verification reads the latest exposure of both
        cands.append(
            cand(
                **comp, exposure_end=D(2022, 4, 25, i % 24), registered_only=i % 2 == 0, evidence=ev(f"dwell-a-{i:02d}")
            )
        )
    for i in range(25):
        cands.append(
            cand(
                **comp,
                start=D(2022, 5, 3),
                evidence_known_at=D(2022, 5, 3),
                exposure_end=D(2022, 4, 28, i % 24),
                evidence=ev(f"dwell-b-{i:02d}"),
            )
        )
    for i in range(40):  # q: withdrawn, more record keys than its detail can show
        cands.append(
            cand(
                **comp,
                person_id="q",
                release_mode="auto",
                stop=D(2022, 5, 5),
                stop_basis="evidence_withdrawn",
                evidence=ev(f"grid-dwell-record-{39 - i:03d}"),
            )
        )
    for rid, basis in (
        ("z-withdrawn", "evidence_withdrawn"),
        ("c-left", "left_14d"),
        ("b-withdrawn", "evidence_withdrawn"),
    ):
        cands.append(
            cand(
                person_id="r",
                popup_code="1",
                reason_type="case_county",
                release_mode="auto",
                stop=D(2022, 5, 16),
                stop_basis=basis,
                evidence=ev(rid),
            )
        )  # r: equal stops, the smallest evidence's basis
    events = [verif("v1", D(2022, 5, 4), "cleared")]
    as_of = D(2022, 5, 20)

    c_df = spark.createDataFrame(pd.DataFrame(cands, columns=CANDIDATE_COLUMNS))
    e_df = spark.createDataFrame(pd.DataFrame(events, columns=EVENT_SCHEMA.fieldNames()), EVENT_SCHEMA)
    assert bundle(c_df).count() == 6  # p: registered or not at 5/2, and 5/3; q; r: two bases
    got = episodes(c_df, e_df, as_of, POLICY).toPandas()
    want = build_episodes(pd.DataFrame(cands, columns=CANDIDATE_COLUMNS), pd.DataFrame(events), as_of, POLICY)

    assert episode_rows(got) == episode_rows(want)
    by = {r.person_id: r for r in want.itertuples()}
    assert (by["p"].released_at, by["p"].release_basis) == (D(2022, 5, 12, 23), "verified_cleared")  # 4/28 23:00 + 14 d
    assert json.loads(by["p"].evidence)["count"] == 55 and len(json.loads(by["p"].evidence)["items"]) == 20
    assert by["q"].release_detail.startswith("a record behind the reason changed: grid_dwells grid-dwell-record-000, ")
    assert len(by["q"].release_detail) == len("a record behind the reason changed: ") + 500
    assert by["r"].release_basis == "evidence_withdrawn"


def test_one_call_for_several_people_releases_each_only_by_their_own_events():
    """`episodes` hands build_episodes a bucket of many people at once; one person's verification or NAT must never
    release another's reason."""
    drug = {
        "popup_code": "4",
        "reason_type": "drug_purchase",
        "release_mode": "nat",
        "nat_from": D(2022, 5, 2),
        "exposure_end": None,
        "start": D(2022, 5, 3),
    }
    cands = [cand(person_id="a"), cand(person_id="b"), cand(person_id="c", **drug), cand(person_id="d", **drug)]
    events = [
        {**verif("v1", D(2022, 5, 3), "not_exposed"), "person_id": "a"},
        {**nat("n1", D(2022, 5, 4), D(2022, 5, 4, 8)), "person_id": "d"},
    ]
    out = build_episodes(pd.DataFrame(cands, columns=CANDIDATE_COLUMNS), pd.DataFrame(events), D(2022, 5, 9), POLICY)
    got = {r.person_id: (r.status, r.release_basis) for r in out.itertuples()}
    assert got == {
        "a": ("released", "verified_not_exposed"),
        "b": ("active", None),
        "c": ("active", None),
        "d": ("released", "nat_negative"),
    }


def test_episodes_of_many_people_sharing_a_bucket_match_each_person_alone(spark):
    """More people than buckets, so buckets hold several: every column equals build_episodes on each person alone."""
    from jobs.rules.episodes import BUCKETS_PER_PARTITION, EVENT_SCHEMA, episodes

    n = 3 * BUCKETS_PER_PARTITION * int(spark.conf.get("spark.sql.shuffle.partitions"))
    cands, events = [], []
    for i in range(n):
        p = f"p{i:03d}"
        cands.append(cand(person_id=p, start=D(2022, 5, 2, i % 24), evidence_known_at=D(2022, 5, 2, i % 24)))
        if i % 3:
            events.append(
                {**verif(f"v{i}", D(2022, 5, 3 + i % 4), "not_exposed" if i % 3 == 1 else "cleared"), "person_id": p}
            )
    as_of = D(2022, 5, 20)
    c_df = spark.createDataFrame(pd.DataFrame(cands, columns=CANDIDATE_COLUMNS))
    e_df = spark.createDataFrame(pd.DataFrame(events, columns=EVENT_SCHEMA.fieldNames()), EVENT_SCHEMA)
    got = episodes(c_df, e_df, as_of, POLICY).toPandas()
    alone = [
        r
        for c in cands
        for r in build_episodes(
            pd.DataFrame([c], columns=CANDIDATE_COLUMNS),
            pd.DataFrame([e for e in events if e["person_id"] == c["person_id"]], columns=EVENT_SCHEMA.fieldNames()),
            as_of,
            POLICY,
        ).to_dict("records")
    ]
    want = pd.DataFrame(alone, columns=EPISODE_SCHEMA.fieldNames())
    assert len(want) == n and sorted(want["status"].unique()) == ["active", "released"]
    assert episode_rows(got) == episode_rows(want)
