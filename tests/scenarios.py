"""Hand-made landing set: one small story per rule of rules.md, each with its own people, phones and places,
so all stories can be screened together (Spark is slow per job; one lake, several as-of instants)."""

from __future__ import annotations

from pathlib import Path

from tests.landing import resident_id, write_feed

BJ = "110105"  # 朝阳区


def pid(n: int) -> str:
    return resident_id(f"11010519900307{n:03d}")


def phone(n: int) -> str:
    return f"139{n:08d}"


PEOPLE = {
    # name: number
    "relative_unsigned": 1,
    "relative_signed": 2,
    "upgraded_after": 3,
    "verified_between": 4,
    "refunded": 5,
    "ticket_kept": 6,
    "shop_payer": 7,
    "inbound": 8,
    "nat_late": 9,
    "old_phone": 10,
    "quiet": 11,
    "lowered": 12,
    "entrant": 13,
    "entrant_late_known": 14,
    "clinic": 15,
    "case_person": 16,
    "colocated": 17,
    "not_colocated": 18,
    "cleared": 19,
    "kept": 20,
    "starred": 21,
    "short_stay": 22,
    "no_nat": 23,
    "new_owner": 24,
    "refunded_later": 25,
    "future_ticket": 26,
    "lifted": 27,
    "verified_only": 28,
}
P = {k: pid(v) for k, v in PEOPLE.items()}
PH = {k: phone(v) for k, v in PEOPLE.items()}


def stay(rid, who, county, first, last, reported, ph=None):
    return {
        "record_id": rid,
        "phone": ph or PH[who],
        "county_code": county,
        "first_seen": first,
        "last_seen": last,
        "reported_at": reported,
    }


def build(landing: Path) -> None:
    persons = [
        {
            "person_id": p,
            "name": f"测试{n}",
            "birth_date": "1990-03-07",
            "phone": PH[n],
            "community_code": "110105001001",
            "updated_at": "2022-04-01T00:00:00",
        }
        for n, p in P.items()
    ]
    write_feed(landing, "persons", persons)
    # Health Kit bindings: everyone's own phone, except the relative stories (phone only registered to the ID)
    bindings = [
        {"person_id": P[n], "phone": PH[n], "bound_at": "2021-01-01T00:00:00"}
        for n in P
        if not n.startswith("relative") and n not in ("old_phone",)
    ]
    bindings.append(
        {
            "person_id": P["old_phone"],
            "phone": PH["old_phone"],
            "bound_at": "2021-01-01T00:00:00",
            "unbound_at": "2022-05-02T00:00:00",
        }
    )
    bindings.append({"person_id": P["new_owner"], "phone": PH["old_phone"], "bound_at": "2022-05-03T00:00:00"})
    write_feed(landing, "kit_bindings", bindings)
    write_feed(
        landing,
        "phone_registrations",
        [
            {
                "phone": PH["relative_unsigned"],
                "person_id": P["relative_unsigned"],
                "registered_at": "2020-01-01T00:00:00",
            },
            {"phone": PH["relative_signed"], "person_id": P["relative_signed"], "registered_at": "2020-01-01T00:00:00"},
        ],
    )
    write_feed(
        landing,
        "telecom_stays",
        [
            # a relative uses the phone registered to the ID in a county-level medium area (3b)
            stay(
                "s-rel1",
                "relative_unsigned",
                "130203",
                "2022-05-03T08:00:00",
                "2022-05-03T11:00:00",
                "2022-05-03T12:00:00",
            ),
            stay(
                "s-rel2",
                "relative_signed",
                "130203",
                "2022-05-03T08:00:00",
                "2022-05-03T11:00:00",
                "2022-05-03T12:00:00",
            ),
            # old phone: in the border county before unbinding; the next owner goes there after
            stay("s-old1", "old_phone", "152501", "2022-05-01T08:00:00", "2022-05-01T12:00:00", "2022-05-01T13:00:00"),
            stay("s-old2", "old_phone", "152501", "2022-05-05T08:00:00", "2022-05-05T12:00:00", "2022-05-05T13:00:00"),
            # popup 1: county goes quiet / is announced low-risk
            stay("s-quiet", "quiet", "140105", "2022-05-02T08:00:00", "2022-05-03T08:00:00", "2022-05-03T09:00:00"),
            stay("s-low", "lowered", "140106", "2022-05-02T08:00:00", "2022-05-03T08:00:00", "2022-05-03T09:00:00"),
            # popup 4: Beijing entry after a stay outside
            stay("s-ent1", "entrant", "120101", "2022-05-04T08:00:00", "2022-05-05T08:00:00", "2022-05-05T09:00:00"),
            stay("s-ent2", "entrant", BJ, "2022-05-05T10:00:00", "2022-05-05T12:00:00", "2022-05-05T13:00:00"),
            stay(
                "s-lat1",
                "entrant_late_known",
                "120101",
                "2022-05-04T08:00:00",
                "2022-05-05T08:00:00",
                "2022-05-05T09:00:00",
            ),
            stay(
                "s-lat2", "entrant_late_known", BJ, "2022-05-05T10:00:00", "2022-05-05T12:00:00", "2022-05-09T11:00:00"
            ),
            # trip verification: city 1301 is starred by an area in 130102
            stay("s-star", "starred", "130102", "2022-05-03T08:00:00", "2022-05-03T16:00:00", "2022-05-03T17:00:00"),
            stay(
                "s-short", "short_stay", "130102", "2022-05-03T08:00:00", "2022-05-03T10:00:00", "2022-05-03T11:00:00"
            ),
            stay("s-nonat", "no_nat", "130104", "2022-05-03T08:00:00", "2022-05-03T14:00:00", "2022-05-03T15:00:00"),
        ],
    )
    write_feed(
        landing,
        "tickets",
        [
            {
                "ticket_id": "t-ref",
                "person_id": P["refunded"],
                "mode": "train",
                "origin_county": BJ,
                "dest_county": "150102",
                "depart_at": "2022-05-03T06:00:00",
                "arrive_at": "2022-05-03T10:00:00",
                "status": "issued",
                "status_at": "2022-05-01T09:00:00",
            },
            {
                "ticket_id": "t-kept",
                "person_id": P["ticket_kept"],
                "mode": "train",
                "origin_county": BJ,
                "dest_county": "150102",
                "depart_at": "2022-05-03T06:00:00",
                "arrive_at": "2022-05-03T10:00:00",
                "status": "issued",
                "status_at": "2022-05-01T09:00:00",
            },
            {
                "ticket_id": "t-later",
                "person_id": P["refunded_later"],
                "mode": "train",
                "origin_county": BJ,
                "dest_county": "150102",
                "depart_at": "2022-05-03T06:00:00",
                "arrive_at": "2022-05-03T10:00:00",
                "status": "issued",
                "status_at": "2022-05-01T09:00:00",
            },
            {
                "ticket_id": "t-future",
                "person_id": P["future_ticket"],
                "mode": "flight",
                "origin_county": BJ,
                "dest_county": "150102",
                "depart_at": "2022-05-20T06:00:00",
                "arrive_at": "2022-05-20T09:00:00",
                "status": "issued",
                "status_at": "2022-05-02T09:00:00",
            },
        ],
    )
    write_feed(
        landing,
        "tickets",
        [
            {
                "ticket_id": "t-later",
                "person_id": P["refunded_later"],
                "mode": "train",
                "origin_county": BJ,
                "dest_county": "150102",
                "depart_at": "2022-05-03T06:00:00",
                "arrive_at": "2022-05-03T10:00:00",
                "status": "refunded",
                "status_at": "2022-05-08T09:00:00",
            },
        ],
        name="part-003.csv",
    )
    write_feed(
        landing,
        "tickets",
        [
            {
                "ticket_id": "t-ref",
                "person_id": P["refunded"],
                "mode": "train",
                "origin_county": BJ,
                "dest_county": "150102",
                "depart_at": "2022-05-03T06:00:00",
                "arrive_at": "2022-05-03T10:00:00",
                "status": "refunded",
                "status_at": "2022-05-02T09:00:00",
            },
        ],
        name="part-002.csv",
    )
    write_feed(
        landing,
        "case_reports",
        [
            {
                "case_id": "c-150102",
                "county_code": "150102",
                "case_type": "local",
                "case_date": "2022-05-04",
                "reported_at": "2022-05-04T12:00:00",
            },
            {
                "case_id": "c-140105",
                "county_code": "140105",
                "case_type": "local",
                "case_date": "2022-05-01",
                "reported_at": "2022-05-02T12:00:00",
            },
            {
                "case_id": "c-140106",
                "county_code": "140106",
                "case_type": "local",
                "case_date": "2022-05-02",
                "reported_at": "2022-05-02T10:00:00",
            },
            {
                "case_id": "c-bj",
                "person_id": P["case_person"],
                "county_code": BJ,
                "case_type": "local",
                "case_date": "2022-05-06",
                "reported_at": "2022-05-06T09:00:00",
            },
        ],
    )
    write_feed(
        landing,
        "risk_announcements",
        [
            {
                "announcement_id": "a-130203",
                "area_code": "130203",
                "risk_level": "medium",
                "effective_from": "2022-05-01T00:00:00",
                "announced_at": "2022-05-01T00:00:00",
            },
            {
                "announcement_id": "a-up1",
                "area_code": "110108001001",
                "risk_level": "medium",
                "effective_from": "2022-05-01T00:00:00",
                "announced_at": "2022-05-06T12:00:00",
            },
            {
                "announcement_id": "a-up2",
                "area_code": "110108002001",
                "risk_level": "high",
                "effective_from": "2022-05-02T00:00:00",
                "announced_at": "2022-05-08T09:00:00",
            },
            {
                "announcement_id": "a-bldg",
                "area_code": "110105002003",
                "building_id": "B77",
                "risk_level": "high",
                "effective_from": "2022-05-05T00:00:00",
                "announced_at": "2022-05-05T08:00:00",
            },
            {
                "announcement_id": "a-140106-low",
                "area_code": "140106",
                "risk_level": "low",
                "effective_from": "2022-05-06T10:00:00",
                "announced_at": "2022-05-06T10:00:00",
            },
            {
                "announcement_id": "a-lift-up",
                "area_code": "110108003001",
                "risk_level": "medium",
                "effective_from": "2022-05-01T00:00:00",
                "announced_at": "2022-05-04T00:00:00",
            },
            {
                "announcement_id": "a-lift-low",
                "area_code": "110108003001",
                "risk_level": "low",
                "effective_from": "2022-05-01T00:00:00",
                "announced_at": "2022-05-07T00:00:00",
            },
            {
                "announcement_id": "a-1301",
                "area_code": "130102001001",
                "risk_level": "medium",
                "effective_from": "2022-05-01T00:00:00",
                "announced_at": "2022-05-01T00:00:00",
            },
        ],
    )
    write_feed(
        landing,
        "venues",
        [
            {
                "venue_id": "v-up1",
                "name": "超市甲",
                "county_code": "110108",
                "community_code": "110108001001",
                "grid_id": "G1",
                "updated_at": "2022-01-01T00:00:00",
            },
            {
                "venue_id": "v-up2",
                "name": "餐厅乙",
                "county_code": "110108",
                "community_code": "110108002001",
                "grid_id": "G2",
                "updated_at": "2022-01-01T00:00:00",
            },
            {
                "venue_id": "v-lift",
                "name": "书店",
                "county_code": "110108",
                "community_code": "110108003001",
                "grid_id": "G5",
                "updated_at": "2022-01-01T00:00:00",
            },
            {
                "venue_id": "v-shop",
                "name": "便利店",
                "county_code": BJ,
                "community_code": "110105002099",
                "building_id": "B77",
                "grid_id": "G3",
                "updated_at": "2022-01-01T00:00:00",
            },
            {
                "venue_id": "v-cafe",
                "name": "咖啡馆",
                "county_code": BJ,
                "community_code": "110105003001",
                "grid_id": "G4",
                "updated_at": "2022-01-01T00:00:00",
            },
        ],
    )
    scans = []
    for who in ("upgraded_after", "verified_between"):
        scans += [
            {
                "scan_id": f"sc-{who}-1",
                "person_id": P[who],
                "venue_id": "v-up1",
                "scan_type": "checkin",
                "scanned_at": "2022-05-02T10:00:00",
            },
            {
                "scan_id": f"sc-{who}-2",
                "person_id": P[who],
                "venue_id": "v-up2",
                "scan_type": "checkin",
                "scanned_at": "2022-05-03T10:00:00",
            },
        ]
    for who in ("cleared", "kept"):
        scans.append(
            {
                "scan_id": f"sc-{who}",
                "person_id": P[who],
                "venue_id": "v-up1",
                "scan_type": "payment",
                "scanned_at": "2022-05-02T10:00:00",
            }
        )
    scans += [
        {
            "scan_id": "sc-lift",
            "person_id": P["lifted"],
            "venue_id": "v-lift",
            "scan_type": "checkin",
            "scanned_at": "2022-05-03T10:00:00",
        },
        {
            "scan_id": "sc-shop",
            "person_id": P["shop_payer"],
            "venue_id": "v-shop",
            "scan_type": "payment",
            "scanned_at": "2022-05-05T10:00:00",
        },
        {
            "scan_id": "sc-case",
            "person_id": P["case_person"],
            "venue_id": "v-cafe",
            "scan_type": "checkin",
            "scanned_at": "2022-05-04T10:00:00",
        },
        {
            "scan_id": "sc-near",
            "person_id": P["colocated"],
            "venue_id": "v-cafe",
            "scan_type": "payment",
            "scanned_at": "2022-05-04T10:20:00",
        },
        {
            "scan_id": "sc-far",
            "person_id": P["not_colocated"],
            "venue_id": "v-cafe",
            "scan_type": "payment",
            "scanned_at": "2022-05-04T10:40:00",
        },
    ]
    write_feed(landing, "venue_scans", scans)
    write_feed(
        landing,
        "verifications",
        [
            {
                "verification_id": "vf-1",
                "person_id": P["relative_unsigned"],
                "community_code": "110105001001",
                "verified_at": "2022-05-06T10:00:00",
                "outcome": "not_exposed",
                "commitment_signed": "false",
                "operator_id": "op1",
            },
            {
                "verification_id": "vf-2",
                "person_id": P["relative_signed"],
                "community_code": "110105001001",
                "verified_at": "2022-05-06T10:00:00",
                "outcome": "not_exposed",
                "commitment_signed": "true",
                "operator_id": "op1",
            },
            {
                "verification_id": "vf-3",
                "person_id": P["verified_between"],
                "community_code": "110105001001",
                "verified_at": "2022-05-07T10:00:00",
                "outcome": "not_exposed",
                "commitment_signed": "false",
                "operator_id": "op1",
            },
            {
                "verification_id": "vf-4",
                "person_id": P["cleared"],
                "community_code": "110105001001",
                "verified_at": "2022-05-07T10:00:00",
                "outcome": "cleared",
                "commitment_signed": "false",
                "operator_id": "op1",
            },
            {
                "verification_id": "vf-5",
                "person_id": P["kept"],
                "community_code": "110105001001",
                "verified_at": "2022-05-07T10:00:00",
                "outcome": "keep",
                "commitment_signed": "false",
                "operator_id": "op1",
            },
        ]
        + [  # verifications of someone with no exposure at all, one of each outcome
            {
                "verification_id": f"vf-only-{o}",
                "person_id": P["verified_only"],
                "community_code": "110105001001",
                "verified_at": "2022-05-07T10:00:00",
                "outcome": o,
                "commitment_signed": "true",
                "operator_id": "op1",
            }
            for o in ("not_exposed", "cleared", "keep")
        ],
    )
    write_feed(
        landing,
        "inbound_entries",
        [
            {
                "entry_id": "e-1",
                "person_id": P["inbound"],
                "entry_date": "2022-05-01",
                "port": "PEK",
                "reported_at": "2022-05-01T12:00:00",
            },
        ],
    )
    write_feed(
        landing,
        "drug_purchases",
        [
            {
                "purchase_id": "d-1",
                "person_id": P["nat_late"],
                "pharmacy_id": "ph1",
                "drug_category": "antipyretic",
                "purchased_at": "2022-05-08T10:00:00",
            },
        ],
    )
    write_feed(
        landing,
        "clinic_visits",
        [
            {
                "visit_id": "cv-1",
                "person_id": P["clinic"],
                "clinic_id": "cl1",
                "visited_at": "2022-05-08T15:00:00",
                "symptoms": "fever;sore_throat",
            },
        ],
    )
    write_feed(
        landing,
        "nat_samples",
        [
            {
                "sample_id": "n-late",
                "person_id": P["nat_late"],
                "site_id": "site1",
                "lab_id": "lab1",
                "sampled_at": "2022-05-08T12:00:00",
            },
        ],
    )
    write_feed(
        landing,
        "nat_results",
        [
            {
                "sample_id": "n-late",
                "person_id": P["nat_late"],
                "lab_id": "lab1",
                "sampled_at": "2022-05-08T12:00:00",
                "result": "negative",
                "platform": "beijing",
                "reported_at": "2022-05-10T12:00:00",
            },
            {
                "sample_id": "n-ent",
                "person_id": P["entrant"],
                "lab_id": "lab1",
                "sampled_at": "2022-05-04T09:00:00",
                "result": "negative",
                "platform": "national",
                "reported_at": "2022-05-06T09:00:00",
            },
        ],
    )
    write_feed(
        landing,
        "border_port_counties",
        [
            {"county_code": "152501", "port_name": "二连浩特", "valid_from": "2020-01-01"},
        ],
    )
    write_feed(
        landing,
        "trip_declarations",
        [
            {
                "declaration_id": "td-1",
                "person_id": P["starred"],
                "declared_at": "2022-05-06T10:00:00",
                "counties": "130102",
                "entered_beijing_at": "2022-05-04T10:00:00",
            },
            {
                "declaration_id": "td-2",
                "person_id": P["no_nat"],
                "declared_at": "2022-05-06T10:00:00",
                "counties": "130104",
                "entered_beijing_at": "2022-05-04T10:00:00",
            },
        ],
    )
