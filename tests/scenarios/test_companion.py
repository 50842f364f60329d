"""Reason 3d, the grid companion (时空伴随): one tiny lake of hand-made dwells, screened once, many stories.

Cells: G10 overlap minutes, a late link and a dwell corrected into G99; G20 the 30 hours; G30/G31/G32 the 14-day edges and a case known
after the overlap; G40 a case phone known only through its registration; G50 an imported case; G71-G76 dwells split into
pieces (case c-F); G75 phones registered to p and bound to p at other times (the commitment letter)."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from pyspark.testing import assertDataFrameEqual

from jobs.ingest.job import Ingestor
from jobs.keys import person_key_py
from jobs.lake import Lake
from jobs.policy import policy_at
from jobs.screen import inputs, screen
from tests.landing import dwell, resident_id, write_feed

NAMES = [
    "o9",
    "o10",
    "o11",
    "late_bind",
    "h29",
    "h31",
    "out14",
    "in14",
    "retro",
    "h_edge",
    "via_reg",
    "shared",
    "imp",
    "case_c",
    "moved",
    "pieces",
    "case_pieces",
    "gap",
    "late_piece",
    "piece_fixed",
    "reg_later",
    "reg_later_signed",
    "reg_long_ago",
    "reg_and_bound",
]
REGISTERED = ("reg_later", "reg_later_signed", "reg_long_ago", "reg_and_bound")  # each registered to p since 2020
P = {n: resident_id(f"11010519850101{i:03d}") for i, n in enumerate(NAMES, 1)}
PH = {n: f"1370000{i:04d}" for i, n in enumerate(NAMES, 1)}
CA, CB, CR, CD, CF = "13800000001", "13800000002", "13800000003", "13800000004", "13800000006"
T = "2022-05-20T00:00:00"


def build(landing) -> None:
    bindings = [
        {"person_id": P[n], "phone": PH[n], "bound_at": "2021-01-01T00:00:00"}
        for n in NAMES
        if n not in ("late_bind", "shared", "case_c", "reg_later", "reg_later_signed", "reg_long_ago")
    ]
    bindings += [
        {"person_id": P["late_bind"], "phone": PH["late_bind"], "bound_at": "2022-05-08T10:55:00"},
        {"person_id": P["shared"], "phone": CR, "bound_at": "2021-01-01T00:00:00"},
        # bound only after the overlap of May 8, or bound long ago and unbound a year before it
        {"person_id": P["reg_later"], "phone": PH["reg_later"], "bound_at": "2022-05-15T00:00:00"},
        {"person_id": P["reg_later_signed"], "phone": PH["reg_later_signed"], "bound_at": "2022-05-15T00:00:00"},
        {
            "person_id": P["reg_long_ago"],
            "phone": PH["reg_long_ago"],
            "bound_at": "2020-01-01T00:00:00",
            "unbound_at": "2021-06-01T00:00:00",
        },
    ]
    write_feed(landing, "kit_bindings", bindings)
    write_feed(
        landing,
        "phone_registrations",
        [{"phone": CR, "person_id": P["case_c"], "registered_at": "2020-01-01T00:00:00"}]
        + [{"phone": PH[n], "person_id": P[n], "registered_at": "2020-01-01T00:00:00"} for n in REGISTERED],
    )
    write_feed(
        landing,
        "case_reports",
        [
            {
                "case_id": "c-A",
                "phone": CA,
                "county_code": "110105",
                "case_type": "local",
                "case_date": "2022-05-08",
                "reported_at": "2022-05-08T09:00:00",
            },
            {
                "case_id": "c-B",
                "phone": CB,
                "county_code": "110105",
                "case_type": "local",
                "case_date": "2022-05-16",
                "reported_at": "2022-05-16T08:00:00",
            },
            {
                "case_id": "c-C",
                "person_id": P["case_c"],
                "county_code": "110105",
                "case_type": "local",
                "case_date": "2022-05-09",
                "reported_at": "2022-05-09T10:00:00",
            },
            {
                "case_id": "c-D",
                "phone": CD,
                "county_code": "110105",
                "case_type": "imported",
                "case_date": "2022-05-08",
                "reported_at": "2022-05-08T09:00:00",
            },
            {
                "case_id": "c-F",
                "phone": CF,
                "county_code": "110105",
                "case_type": "local",
                "case_date": "2022-05-08",
                "reported_at": "2022-05-08T09:00:00",
            },
        ],
    )
    d = "2022-05-0"
    write_feed(
        landing,
        "grid_dwells",
        [
            # G10: the case 31 h; 9, 10, 11 minutes of overlap; a phone bound only 5 minutes before its dwell ends
            dwell(CA, "G10", f"{d}8T00:00:00", f"{d}9T07:00:00", f"{d}9T08:00:00"),
            dwell(PH["o9"], "G10", f"{d}8T10:00:00", f"{d}8T10:09:00", f"{d}8T10:30:00"),
            dwell(PH["o10"], "G10", f"{d}8T10:00:00", f"{d}8T10:10:00", f"{d}8T10:30:00"),
            dwell(PH["o11"], "G10", f"{d}8T10:00:00", f"{d}8T10:11:00", f"{d}8T10:30:00"),
            dwell(PH["late_bind"], "G10", f"{d}8T10:00:00", f"{d}8T11:00:00", f"{d}8T11:30:00"),
            # G20: the case only 1 h; the person 28.5 h + 0.5 h (29) vs 30.5 h + 0.5 h (31)
            dwell(CA, "G20", f"{d}8T12:00:00", f"{d}8T13:00:00", f"{d}8T13:30:00"),
            dwell(PH["h29"], "G20", f"{d}7T00:00:00", f"{d}8T04:30:00", f"{d}8T05:00:00"),
            dwell(PH["h29"], "G20", f"{d}8T12:00:00", f"{d}8T12:30:00", f"{d}8T12:45:00"),
            dwell(PH["h31"], "G20", f"{d}7T00:00:00", f"{d}8T06:30:00", f"{d}8T07:00:00"),
            dwell(PH["h31"], "G20", f"{d}8T12:00:00", f"{d}8T12:30:00", f"{d}8T12:45:00"),
            # G30: case B (known 05-16 08:00) overlaps on 05-02 until 08:00 (last 10 min leave W14 at 05-16 07:50)
            # or until 08:11 (still inside at 08:00); its 32 h in the cell are on 05-10
            dwell(CB, "G30", f"{d}1T20:00:00", f"{d}2T09:00:00", f"{d}2T09:30:00"),
            dwell(CB, "G30", "2022-05-10T00:00:00", "2022-05-11T08:00:00", "2022-05-11T09:00:00"),
            dwell(PH["out14"], "G30", f"{d}2T07:00:00", f"{d}2T08:00:00", f"{d}2T08:30:00"),
            dwell(PH["in14"], "G30", f"{d}2T07:00:00", f"{d}2T08:11:00", f"{d}2T08:30:00"),
            # G31: overlap on 05-06, the case reported ten days later (retroactive)
            dwell(CB, "G31", f"{d}5T00:00:00", f"{d}6T08:00:00", f"{d}6T09:00:00"),
            dwell(PH["retro"], "G31", f"{d}6T07:00:00", f"{d}6T08:00:00", f"{d}6T08:30:00"),
            # G32: the person's 32 h are mostly before W14 of the case's report (21 h + 0.5 h inside)
            dwell(CB, "G32", "2022-05-12T10:00:00", "2022-05-12T10:30:00", "2022-05-12T11:00:00"),
            dwell(PH["h_edge"], "G32", f"{d}1T21:00:00", f"{d}3T05:00:00", f"{d}3T06:00:00"),
            dwell(PH["h_edge"], "G32", "2022-05-12T10:00:00", "2022-05-12T10:30:00", "2022-05-12T10:45:00"),
            # G40: case C has no phone on its report; CR is registered to it (and bound to `shared`)
            dwell(CR, "G40", f"{d}8T00:00:00", f"{d}9T08:00:00", f"{d}9T09:00:00"),
            dwell(PH["via_reg"], "G40", f"{d}8T12:00:00", f"{d}8T13:00:00", f"{d}8T13:30:00"),
            # G10 again: a dwell re-reported days later in G99, a cell no case touched (the same record, corrected)
            {
                "record_id": "gd-moved",
                "phone": PH["moved"],
                "grid_id": "G10",
                "start_at": f"{d}8T14:00:00",
                "end_at": f"{d}8T14:30:00",
                "reported_at": f"{d}8T15:00:00",
            },
            {
                "record_id": "gd-moved",
                "phone": PH["moved"],
                "grid_id": "G99",
                "start_at": f"{d}8T14:00:00",
                "end_at": f"{d}8T14:30:00",
                "reported_at": "2022-05-12T09:00:00",
            },
            # G50: an imported case is not a companion source
            dwell(CD, "G50", f"{d}8T00:00:00", f"{d}9T08:00:00", f"{d}9T09:00:00"),
            dwell(PH["imp"], "G50", f"{d}8T12:00:00", f"{d}8T13:00:00", f"{d}8T13:30:00"),
            # G71-G76: case F 32.5 h in each cell (May 7 02:00 to May 8 10:30, reported 10:40), pieces around 10:00
            *[
                dwell(CF, g, f"{d}7T02:00:00", f"{d}8T10:30:00", f"{d}8T10:40:00", f"gd-f{g}")
                for g in ("G71", "G72", "G74", "G75", "G76")
            ],
            # G71: two back-to-back pieces of 6 minutes, both known before the case's dwell
            dwell(PH["pieces"], "G71", f"{d}8T10:00:00", f"{d}8T10:06:00", f"{d}8T10:07:00", "gd-p1"),
            dwell(PH["pieces"], "G71", f"{d}8T10:06:00", f"{d}8T10:12:00", f"{d}8T10:13:00", "gd-p2"),
            # G72: 6 + 6 minutes with a minute between them
            dwell(PH["gap"], "G72", f"{d}8T10:00:00", f"{d}8T10:06:00", f"{d}8T10:07:00", "gd-g1"),
            dwell(PH["gap"], "G72", f"{d}8T10:07:00", f"{d}8T10:13:00", f"{d}8T10:14:00", "gd-g2"),
            # G73: the case side split at 10:06 (its second piece known at 10:40), one person dwell of 12 minutes
            dwell(CF, "G73", f"{d}7T02:00:00", f"{d}8T10:06:00", f"{d}8T10:20:00", "gd-c1"),
            dwell(CF, "G73", f"{d}8T10:06:00", f"{d}8T10:30:00", f"{d}8T10:40:00", "gd-c2"),
            dwell(PH["case_pieces"], "G73", f"{d}8T10:00:00", f"{d}8T10:12:00", f"{d}8T10:15:00", "gd-cp"),
            # G74: the second piece reported only at 15:00
            dwell(PH["late_piece"], "G74", f"{d}8T10:00:00", f"{d}8T10:06:00", f"{d}8T10:07:00", "gd-l1"),
            dwell(PH["late_piece"], "G74", f"{d}8T10:06:00", f"{d}8T10:12:00", f"{d}8T15:00:00", "gd-l2"),
            # G76: the second piece corrected on May 12 to start a minute later (a gap): the 12 minutes are withdrawn
            {
                "record_id": "gd-pf1",
                "phone": PH["piece_fixed"],
                "grid_id": "G76",
                "start_at": f"{d}8T10:00:00",
                "end_at": f"{d}8T10:06:00",
                "reported_at": f"{d}8T10:07:00",
            },
            {
                "record_id": "gd-pf2",
                "phone": PH["piece_fixed"],
                "grid_id": "G76",
                "start_at": f"{d}8T10:06:00",
                "end_at": f"{d}8T10:12:00",
                "reported_at": f"{d}8T10:13:00",
            },
            {
                "record_id": "gd-pf2",
                "phone": PH["piece_fixed"],
                "grid_id": "G76",
                "start_at": f"{d}8T10:07:00",
                "end_at": f"{d}8T10:12:00",
                "reported_at": "2022-05-12T09:00:00",
            },
            # G75: 20 minutes beside case F through a phone registered to p (bound to p only later, long before, or also then)
            *[dwell(PH[n], "G75", f"{d}8T10:00:00", f"{d}8T10:20:00", f"{d}8T10:25:00", f"gd-{n}") for n in REGISTERED],
        ],
    )
    write_feed(
        landing,
        "verifications",
        [
            {
                "verification_id": "vf-o11",
                "person_id": P["o11"],
                "community_code": "110105001001",
                "verified_at": "2022-05-10T10:00:00",
                "outcome": "not_exposed",
                "commitment_signed": "false",
                "operator_id": "op1",
            },
        ]
        + [
            {
                "verification_id": f"vf-{n}",
                "person_id": P[n],
                "community_code": "110105001001",
                "verified_at": "2022-05-10T10:00:00",
                "outcome": "not_exposed",
                "commitment_signed": "true" if n == "reg_later_signed" else "false",
                "operator_id": "op1",
            }
            for n in REGISTERED
        ],
    )


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory) -> Lake:
    root = tmp_path_factory.mktemp("companion")
    build(root / "landing")
    lake = Lake(root / "lake")
    Ingestor(spark, lake, root / "landing", "test", None, log=lambda *_: None).run()
    return lake


@pytest.fixture(scope="module")
def reasons(spark, lake):
    t = datetime.fromisoformat(T)
    names = {person_key_py(p): n for n, p in P.items()}
    out: dict[str, list[dict]] = {n: [] for n in P}
    for r in screen(spark, inputs(spark, lake, t), t, policy_at(t)).collect():
        d = r.asDict()
        d["items"] = json.loads(d["evidence"])["items"]
        out[names[r["person_key"]]].append(d)
    return out


def brief(rows: list[dict]) -> list[tuple]:
    return [
        (r["popup_code"], r["reason_type"], r["cause"], r["status"], r["raised_at"].isoformat(), r["release_basis"])
        for r in rows
    ]


def raised(cause: str, at: str) -> list[tuple]:
    return [("3", "companion", cause, "active", at, None)]


def test_overlap_of_9_minutes_is_not_a_companion(reasons):
    assert reasons["o9"] == []


def test_overlap_of_exactly_10_minutes_is_a_companion_raised_when_the_case_hours_are_known(reasons):
    assert brief(reasons["o10"]) == raised("case=c-A", "2022-05-09T08:00:00")
    (item,) = reasons["o10"][0]["items"]
    assert item == {
        "feed": "grid_dwells",
        "record_id": "gd-003",
        "grid_id": "G10",
        "grid_m": 800,
        "phone": "137****0002",
        "link_type": "bound",
        "overlap_from": "2022-05-08T10:00:00.000+08:00",
        "overlap_to": "2022-05-08T10:10:00.000+08:00",
        "overlap_minutes": 10,
        "case_id": "c-A",
        "case_record_id": "gd-001",
        "dwell_hours": 31.0,
        "dwell_hours_of": "case",
    }


def test_overlap_of_11_minutes_is_released_by_a_not_exposed_verification(reasons):
    assert brief(reasons["o11"]) == [
        ("3", "companion", "case=c-A", "released", "2022-05-09T08:00:00", "verified_not_exposed")
    ]
    assert reasons["o11"][0]["items"][0]["overlap_minutes"] == 11


def test_dwell_corrected_into_a_cell_no_case_touched_withdraws_the_companion(reasons):
    """The screen windows only the records of the cells cases touched (jobs.screen.inputs); the corrected
    version, in G99, must still end the version in G10."""
    assert brief(reasons["moved"]) == [
        ("3", "companion", "case=c-A", "released", "2022-05-09T08:00:00", "evidence_withdrawn")
    ]
    assert reasons["moved"][0]["released_at"] == datetime(2022, 5, 12, 9, 0)


def test_only_the_minutes_inside_the_phone_link_count(reasons):
    assert reasons["late_bind"] == []


def test_29_hours_of_either_phone_in_the_cell_is_not_enough(reasons):
    assert reasons["h29"] == []


def test_31_hours_of_the_persons_own_phone_in_the_cell_is_enough(reasons):
    assert brief(reasons["h31"]) == raised("case=c-A", "2022-05-08T13:30:00")
    (item,) = reasons["h31"][0]["items"]
    assert (item["dwell_hours"], item["dwell_hours_of"], item["overlap_minutes"]) == (31.0, "person", 30)


def test_overlap_just_outside_14_days_of_the_case_report_is_not_a_companion(reasons):
    assert reasons["out14"] == []


def test_overlap_just_inside_14_days_of_the_case_report_is_a_companion(reasons):
    assert brief(reasons["in14"]) == raised("case=c-B", "2022-05-16T08:00:00")


def test_case_reported_after_the_overlap_raises_at_its_report(reasons):
    assert brief(reasons["retro"]) == raised("case=c-B", "2022-05-16T08:00:00")
    item = reasons["retro"][0]["items"][0]
    assert (item["overlap_from"][:19], item["overlap_to"][:19]) == ("2022-05-06T07:00:00", "2022-05-06T08:00:00")


def test_dwell_hours_before_the_14_days_do_not_count(reasons):
    assert reasons["h_edge"] == []


def test_case_phone_known_through_its_registration_is_a_companion_source(reasons):
    assert brief(reasons["via_reg"]) == raised("case=c-C", "2022-05-09T10:00:00")


def test_a_phone_linked_to_both_the_person_and_the_case_is_not_its_own_companion(reasons):
    assert reasons["shared"] == []
    assert reasons["case_c"] == []


def test_imported_case_is_not_a_companion_source(reasons):
    assert reasons["imp"] == []


def test_evidence_never_names_the_case_person_or_phone(reasons):
    text = json.dumps([r["items"] for rows in reasons.values() for r in rows])
    for secret in (CA, CB, CR, CF, P["case_c"]):
        assert secret not in text


# -- dwells split into pieces: the overlap is taken on each phone's records in the cell merged (rules.md, Association)
def piece_item(
    name: str, record_ids: str, grid: str, case_record_ids: str, to: str = "10:12", minutes: int = 12
) -> dict:
    return {
        "feed": "grid_dwells",
        "record_id": record_ids,
        "grid_id": grid,
        "grid_m": 800,
        "phone": f"137****{PH[name][-4:]}",
        "link_type": "bound",
        "overlap_from": "2022-05-08T10:00:00.000+08:00",
        "overlap_to": f"2022-05-08T{to}:00.000+08:00",
        "overlap_minutes": minutes,
        "case_id": "c-F",
        "case_record_id": case_record_ids,
        "dwell_hours": 32.5,
        "dwell_hours_of": "case",
    }


def test_two_back_to_back_pieces_of_6_minutes_overlapping_a_case_are_a_12_minute_companion(reasons):
    # both pieces known by 10:13; the case's dwell (its 32.5 h) is reported at 10:40
    assert brief(reasons["pieces"]) == raised("case=c-F", "2022-05-08T10:40:00")
    assert reasons["pieces"][0]["items"] == [piece_item("pieces", "gd-p1,gd-p2", "G71", "gd-fG71")]


def test_case_dwell_split_into_pieces_is_one_stretch_raised_when_its_second_piece_is_known(reasons):
    # the case's first piece (10:06) is known at 10:20, with it 32.1 h: the 12 minutes need its second, known 10:40
    assert brief(reasons["case_pieces"]) == raised("case=c-F", "2022-05-08T10:40:00")
    assert reasons["case_pieces"][0]["items"] == [piece_item("case_pieces", "gd-cp", "G73", "gd-c1,gd-c2")]


def test_pieces_of_6_minutes_a_minute_apart_are_not_a_companion(reasons):
    assert reasons["gap"] == []


def test_a_piece_known_later_makes_the_12_minutes_only_from_its_knowledge_time(reasons):
    # the first piece alone (6 minutes) is known at 10:07, the case's dwell at 10:40, the second piece at 15:00
    assert brief(reasons["late_piece"]) == raised("case=c-F", "2022-05-08T15:00:00")
    assert reasons["late_piece"][0]["items"] == [piece_item("late_piece", "gd-l1,gd-l2", "G74", "gd-fG74")]


def test_a_piece_corrected_apart_withdraws_the_stretch_it_made(reasons):
    # gd-pf2 re-reported on May 12 from 10:07: 6 + 5 minutes a minute apart, no stretch of 10 minutes holds then
    assert brief(reasons["piece_fixed"]) == [
        ("3", "companion", "case=c-F", "released", "2022-05-08T10:40:00", "evidence_withdrawn")
    ]
    assert reasons["piece_fixed"][0]["released_at"] == datetime(2022, 5, 12, 9, 0)
    assert reasons["piece_fixed"][0]["items"] == [piece_item("piece_fixed", "gd-pf1,gd-pf2", "G76", "gd-fG76")]


# -- the commitment letter: only the links that held at the overlap count (rules.md, Verifications) ------------------
RELEASED_NOT_EXPOSED = [("3", "companion", "case=c-F", "released", "2022-05-08T10:40:00", "verified_not_exposed")]


def test_companion_through_a_phone_bound_only_after_it_still_needs_the_commitment_letter(reasons):
    # registered to p since 2020, bound to p from May 15: on May 8 it reached p only as a registered phone
    assert brief(reasons["reg_later"]) == raised("case=c-F", "2022-05-08T10:40:00")
    assert [i["link_type"] for i in reasons["reg_later"][0]["items"]] == ["registered"]
    assert brief(reasons["reg_later_signed"]) == RELEASED_NOT_EXPOSED
    assert reasons["reg_later_signed"][0]["released_at"] == datetime(2022, 5, 10, 10, 0)


def test_companion_through_a_phone_bound_years_ago_and_now_only_registered_needs_the_commitment_letter(reasons):
    assert brief(reasons["reg_long_ago"]) == raised("case=c-F", "2022-05-08T10:40:00")


def test_companion_through_a_phone_also_bound_to_p_then_needs_no_commitment_letter(reasons):
    assert brief(reasons["reg_and_bound"]) == RELEASED_NOT_EXPOSED
    assert sorted(i["link_type"] for i in reasons["reg_and_bound"][0]["items"]) == ["bound", "registered"]


def test_screening_some_people_gives_exactly_their_reasons_of_a_full_screen(spark, lake, reasons):
    # An hourly run screens some people on bronze that also holds the cases' rows: the companion pairs are then
    # taken for those people only. Not screened here: case_c, whose phone CR is the case side of via_reg's pair.
    some = ["o10", "h31", "via_reg", "shared", "o9"]
    t = datetime.fromisoformat(T)
    people = spark.createDataFrame([(person_key_py(P[n]),) for n in some], "person_key string")
    b = inputs(spark, lake, t)
    full = screen(spark, b, t, policy_at(t))
    mine = screen(spark, b, t, policy_at(t), people)
    assertDataFrameEqual(mine, full.join(people, "person_key", "left_semi").select(*full.columns))
    names = {person_key_py(P[n]): n for n in P}
    assert sorted(names[r["person_key"]] for r in mine.collect()) == ["h31", "o10", "via_reg"]
    assert full.count() == sum(len(v) for v in reasons.values()) > 3


# -- the dwell hours of a side (jobs.rules.companion.hours_reached) against a count done by hand ------------------
def _first_hours(sides_: list[dict], dwells: list[dict], need: int, days: int) -> dict[str, tuple]:
    """The rule's definition, one instant at a time: pair_key -> (x, hours_side, hours)."""
    from datetime import timedelta

    base = datetime(2000, 1, 1)

    def sec(t: datetime) -> int:
        return int((t - base).total_seconds() // 1)

    def hours_at(key: tuple, x: datetime) -> int:
        return sum(
            max(0, sec(min(d["hi"], x)) - sec(max(d["lo"], x - timedelta(days=days))))
            for d in dwells
            if d["key"] == key and d["known"] <= x and (d["valid_to"] is None or d["valid_to"] > x)
        )

    out: dict[str, tuple] = {}
    for s in sides_:
        key = s["key"]
        xs = sorted({s["x0"]} | {d["known"] for d in dwells if d["key"] == key})
        hit = next(
            ((x, hours_at(key, x)) for x in xs if s["x0"] <= x <= s["x_limit"] and hours_at(key, x) >= need), None
        )
        if hit and (
            s["pair_key"] not in out
            or (hit[0], s["side"] != "case") < (out[s["pair_key"]][0], out[s["pair_key"]][1] != "case")
        ):
            out[s["pair_key"]] = (hit[0], s["side"], round(hit[1] / 3600, 2))
    return out


def test_dwell_hours_of_a_side_at_each_instant_match_a_count_of_its_current_dwell_versions(spark):
    """Random sides sharing dwells, superseded versions, reports after a dwell left the window, instants with
    fractions of a second, ties between a pair's x0 and a report, and pairs asking at the same side and x0 with
    different limits: the running sum gives the count by hand."""
    import random
    from datetime import timedelta

    from jobs.rules.companion import hours_reached

    policy = policy_at(datetime.fromisoformat(T))
    need, days = policy.companion_dwell_hours * 3600, policy.window_days
    rnd = random.Random(7)
    t0 = datetime(2022, 5, 1)
    keys = [(f"1390000{i:04d}", f"G{i % 3}", t0 - timedelta(days=30), datetime(9999, 12, 31)) for i in range(12)]
    keys[3] = (keys[3][0], keys[3][1], t0 + timedelta(days=5, hours=3), t0 + timedelta(days=19))  # a bounded link
    dwells, sides_ = [], []
    for key in keys:
        at = t0 + timedelta(hours=rnd.randint(0, 48))
        for _ in range(rnd.randint(3, 12)):
            lo = at + timedelta(hours=rnd.randint(0, 30), seconds=rnd.choice([0, 0, 17]))
            hi = lo + timedelta(hours=rnd.randint(1, 20), minutes=rnd.randint(0, 59))
            late = timedelta(days=rnd.choice([0, 0, 0, 0, 13, 15]))  # a report after its dwell left the window
            known = hi + late + timedelta(minutes=rnd.choice([0, 5, 90]), microseconds=rnd.choice([0, 0, 250000]))
            valid_to = rnd.choice([None, None, None, known + timedelta(days=rnd.randint(0, 9), hours=3), known])
            c_lo, c_hi = max(lo, key[2]), min(hi, key[3])
            if c_lo < c_hi:
                dwells.append({"key": key, "lo": c_lo, "hi": c_hi, "known": known, "valid_to": valid_to})
            at = hi
    reports = sorted(d["known"] for d in dwells)
    for i in range(40):
        a, b = rnd.sample(keys, 2)
        x0 = rnd.choice([rnd.choice(reports), t0 + timedelta(days=rnd.randint(0, 25), minutes=rnd.randint(0, 1440))])
        x_limit = x0 + timedelta(days=rnd.randint(0, 14), hours=rnd.randint(0, 23))
        for side, key in (("person", a), ("case", b)):
            sides_.append({"pair_key": f"p{i:02d}", "side": side, "key": key, "x0": x0, "x_limit": x_limit})
    for i in range(40, 52):  # asking at the side and x0 of an earlier pair (answered once), with its own x_limit
        twin = sides_[2 * rnd.randrange(40)]
        b = rnd.choice([k for k in keys if k != twin["key"]])
        x_limit = twin["x0"] + timedelta(days=rnd.randint(0, 14), hours=rnd.randint(0, 23))
        for side, key in (("person", twin["key"]), ("case", b)):
            sides_.append({"pair_key": f"p{i:02d}", "side": side, "key": key, "x0": twin["x0"], "x_limit": x_limit})
    side_cols = "phone string, grid_id string, s_from timestamp, s_to timestamp"
    sdf = spark.createDataFrame(
        [(s["pair_key"], s["side"], *s["key"], s["x0"], s["x_limit"]) for s in sides_],
        f"pair_key string, side string, {side_cols}, x0 timestamp, x_limit timestamp",
    )
    ddf = spark.createDataFrame(
        [(*d["key"], d["lo"], d["hi"], d["known"], d["valid_to"]) for d in dwells],
        f"{side_cols}, lo timestamp, hi timestamp, known timestamp, valid_to timestamp",
    )
    got = {r["pair_key"]: (r["x"], r["hours_side"], r["hours"]) for r in hours_reached(sdf, ddf, policy).collect()}
    want = _first_hours(sides_, dwells, need, days)
    assert 10 <= len(want) < 52 and any(k >= "p40" for k in want)  # the draw has both kinds of pairs, twins too
    assert got == want


# -- the overlap stretches of split and corrected records (jobs.rules.companion.overlaps) against merging by hand ---
def _stretches_by_hand(records: list[dict], x: datetime, need: int) -> set[tuple]:
    """rules.md, Association, at instant x: each phone's record versions current at x merged where they touch or
    overlap, the two phones' merged stretches intersected; those of >= need seconds, with the records behind each
    (those meeting it for a positive time): (phone, grid, lo, hi, person record ids, case record ids)."""

    def merged(rs: list[dict]) -> list[list]:
        out: list[list] = []
        for r in sorted(rs, key=lambda r: (r["start_at"], r["end_at"])):
            if out and r["start_at"] <= out[-1][1]:
                out[-1][1] = max(out[-1][1], r["end_at"])
            else:
                out.append([r["start_at"], r["end_at"]])
        return out

    now = [r for r in records if r["known"] <= x and (r["valid_to"] is None or x < r["valid_to"])]
    got = set()
    for phone, grid in {(r["phone"], r["grid_id"]) for r in now if r["phone"] != "case"}:
        mine = [r for r in now if (r["phone"], r["grid_id"]) == (phone, grid)]
        theirs = [r for r in now if (r["phone"], r["grid_id"]) == ("case", grid)]
        for a, b in merged(mine):
            for c, d in merged(theirs):
                lo, hi = max(a, c), min(b, d)
                if (hi - lo).total_seconds() >= need:

                    def used(rs: list[dict], lo=lo, hi=hi) -> str:
                        return ",".join(
                            sorted({r["record_id"] for r in rs if min(r["end_at"], hi) > max(r["start_at"], lo)})
                        )

                    got.add((phone, grid, lo, hi, used(mine), used(theirs)))
    return got


def test_overlap_stretches_held_at_each_instant_match_merging_each_phones_current_records_by_hand(spark):
    """Random pieces on both sides, touching, overlapping or a minute apart, reported at different times, some
    corrected (a later version with other times, or moved to another cell): at every instant the records change,
    the longest stretches the rule holds are exactly those of merging each phone's current records by hand."""
    import random
    from datetime import timedelta

    from jobs.rules.companion import overlaps

    policy = policy_at(datetime.fromisoformat(T))
    need = policy.companion_overlap_minutes * 60
    rnd = random.Random(11)
    t0 = datetime(2022, 5, 8, 8, 0)
    records: list[dict] = []
    for phone in ("case", "p1", "p2", "p3"):
        for grid in ("G1", "G2"):
            at = t0 + timedelta(minutes=rnd.randint(0, 20))
            for n in range(rnd.randint(3, 9)):
                start = at + timedelta(minutes=rnd.choice([0, 0, 0, 1, -2, 5]))
                end = start + timedelta(minutes=rnd.randint(2, 9) if phone != "case" else rnd.randint(4, 40))
                known = end + timedelta(minutes=rnd.choice([1, 1, 30, 200]))
                rid = f"{phone}-{grid}-{n}"
                versions = [(grid, start, end, known)]
                while rnd.random() < 0.3:  # corrected: other times (or another cell), known later
                    s2 = start + timedelta(minutes=rnd.choice([-1, 1, 2]))
                    known = known + timedelta(minutes=rnd.choice([0, 45, 300]))
                    versions.append((rnd.choice([grid, grid, "G9"]), s2, max(s2, end) + timedelta(minutes=1), known))
                for i, (g, s, e, k) in enumerate(versions):
                    nxt = versions[i + 1][3] if i + 1 < len(versions) else None
                    records.append(
                        {
                            "record_id": rid,
                            "phone": phone,
                            "grid_id": g,
                            "start_at": s,
                            "end_at": e,
                            "known": k,
                            "valid_to": nxt,
                        }
                    )
                at = end
    dwells = spark.createDataFrame(
        [
            (r["record_id"], r["phone"], r["grid_id"], r["start_at"], r["end_at"], r["known"], r["valid_to"])
            for r in records
        ],
        "record_id string, phone string, grid_id string, start_at timestamp, end_at timestamp, _known_at timestamp, "
        "_valid_to timestamp",
    )
    links = spark.createDataFrame(
        [(f"person-{p}", p, "bound", datetime(2020, 1, 1), None, datetime(2020, 1, 1)) for p in ("p1", "p2", "p3")],
        "person_id string, phone string, link_type string, link_from timestamp, "
        "link_to timestamp, link_known_at timestamp",
    )
    cphones = spark.createDataFrame(
        [("c-1", None, datetime(2022, 5, 1), None, "case", None, None, None)],
        "case_id string, c_person string, c_known timestamp, c_valid_to timestamp, "
        "c_phone string, c_from timestamp, c_to timestamp, c_link_known timestamp",
    )
    rows = [r.asDict() for r in overlaps(dwells, links, cphones, policy).collect()]
    instants = sorted({r["known"] for r in records} | {r["valid_to"] for r in records if r["valid_to"] is not None})
    seen = 0
    for x in instants:
        held = [
            (r["phone"], r["grid_id"], r["o_lo"], r["o_hi"], r["record_id"], r["c_record_id"])
            for r in rows
            if r["o_known"] <= x and (r["o_valid_to"] is None or x < r["o_valid_to"])
        ]

        def within(h: tuple, o: tuple) -> bool:  # o's stretch and records take in h's: h is part of a longer stretch
            return (
                o != h
                and o[:2] == h[:2]
                and o[2] <= h[2]
                and h[3] <= o[3]
                and set(h[4].split(",")) <= set(o[4].split(","))
                and set(h[5].split(",")) <= set(o[5].split(","))
            )

        longest = {h for h in held if not any(within(h, o) for o in held)}
        want = _stretches_by_hand(records, x, need)
        assert longest == want, x
        seen += len(want)
    multi = [r for r in rows if "," in r["record_id"] or "," in r["c_record_id"]]
    assert seen > 20 and len(multi) > 5 and any(r["o_valid_to"] is not None for r in rows)  # the draw has them all


def test_a_split_screen_cuts_the_pandas_steps_finer_and_gives_the_same_reasons(spark, lake, monkeypatch):
    """With SCREENING_SHUFFLE_SPLIT a full screen's shuffles start at that many partitions, and the companion's
    stretch walk and the episodes cut their rows into as many more buckets (at SF 1, 64 buckets of the walk did not
    fit one sort in a 6 GB heap). A bucket holds whole pairs of sides and whole people, so the reasons are the same."""
    from jobs.spark import shuffle_width, split_shuffles

    t = datetime.fromisoformat(T)
    b = inputs(spark, lake, t)
    plain = shuffle_width(spark)
    full = screen(spark, b, t, policy_at(t))
    monkeypatch.setenv("SCREENING_SHUFFLE_SPLIT", str(16 * plain))
    with split_shuffles(spark):
        assert shuffle_width(spark) == 16 * plain
        split = screen(spark, b, t, policy_at(t))
        assertDataFrameEqual(split, full)
        assert split.count() > 3
    assert shuffle_width(spark) == plain
