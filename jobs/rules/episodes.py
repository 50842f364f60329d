"""From candidates and release events to reason episodes (rules.md, "A person's state" and "Precise semantics").

An episode of a cause starts at the earliest candidate start (raised_at) and absorbs every candidate of the same
cause that starts before it ends. It ends:
- 'auto' rules (①②⑤ T, and withdrawals of any rule): when the last absorbed hold stops (release_basis = that
  stop's basis: left_14d, county_quiet_14d, county_low_risk, quarantine_complete, declared, evidence_withdrawn);
- 'verify' (③): by the governing community verification (the latest by verified_at, known at the time), made
  at or after the latest knowledge time of the evidence; `not_exposed` at once (with the commitment letter when
  the evidence came only through `registered` links), `cleared` once last exposure + 14 days has passed (the
  evidence and exposures are those known by that instant: new evidence joining the reason before it counts);
- 'nat' (④): by the first negative NAT sampled at or after `nat_from`, known after the raise; a trigger whose
  NAT was already known when it would be raised is never raised.
After a release, only candidates starting later (new evidence) raise a new episode. Everything is computed
from instants in the data, never from when runs happen, so hourly and nightly runs agree.

This runs per person as a pandas function (a small, branchy state machine; only people with candidates reach it).
Candidates that differ only in their evidence and exposure end are first bundled into one row (`bundle`): one
household and one case give thousands of dwell pairs that the state machine would walk one by one.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs.policy import Policy
from jobs.spark import shuffle_width

CANDIDATE_SCHEMA = T.StructType(
    [
        T.StructField("person_id", T.StringType()),
        T.StructField("popup_code", T.StringType()),
        T.StructField("reason_type", T.StringType()),
        T.StructField("cause", T.StringType()),
        T.StructField("start", T.TimestampType()),
        T.StructField("stop", T.TimestampType()),
        T.StructField("stop_basis", T.StringType()),
        T.StructField("release_mode", T.StringType()),
        T.StructField("nat_from", T.TimestampType()),
        T.StructField("exposure_end", T.TimestampType()),
        T.StructField("registered_only", T.BooleanType()),
        T.StructField("evidence_known_at", T.TimestampType()),
        T.StructField("evidence", T.StringType()),
    ]
)

EVENT_SCHEMA = T.StructType(
    [
        T.StructField("person_id", T.StringType()),
        T.StructField("kind", T.StringType()),
        T.StructField("event_id", T.StringType()),
        T.StructField("event_at", T.TimestampType()),
        T.StructField("known_at", T.TimestampType()),
        T.StructField("outcome", T.StringType()),
        T.StructField("commitment_signed", T.BooleanType()),
    ]
)

EPISODE_SCHEMA = T.StructType(
    [
        T.StructField("person_id", T.StringType()),
        T.StructField("popup_code", T.StringType()),
        T.StructField("reason_type", T.StringType()),
        T.StructField("cause", T.StringType()),
        T.StructField("raised_at", T.TimestampType()),
        T.StructField("last_evidence_at", T.TimestampType()),
        T.StructField("status", T.StringType()),
        T.StructField("release_rule", T.StringType()),
        T.StructField("release_eligible_at", T.TimestampType()),
        T.StructField("released_at", T.TimestampType()),
        T.StructField("release_basis", T.StringType()),
        T.StructField("release_detail", T.StringType()),
        T.StructField("registered_only", T.BooleanType()),
        T.StructField("evidence", T.StringType()),
    ]
)

MAX_EVIDENCE = 20
DETAIL_CHARS = 500  # of the evidence_withdrawn detail
DETAIL_KEYS = DETAIL_CHARS // 3 + 2  # each key takes >= 3 characters of the joined detail, so more never show
# Candidates equal in these behave as one in the state machine: members are absorbed, consumed and known by their
# start, and what a release reads of them (evidence_known_at, registered_only, nat_from) is in the key; of
# exposure_end only the latest counts.
BUNDLE_KEY = [
    "person_id",
    "popup_code",
    "reason_type",
    "cause",
    "start",
    "stop",
    "stop_basis",
    "release_mode",
    "nat_from",
    "registered_only",
    "evidence_known_at",
]
BUCKETS_PER_PARTITION = 8  # episodes: groups per shuffle partition (many people each), enough to spread skew
TIME_BASED = {"left_14d", "county_quiet_14d", "county_low_risk", "quarantine_complete"}
TIE_ORDER = ("left_14d", "county_quiet_14d", "county_low_risk")  # rules.md: ① bases on ties, the person's first


def _rank(basis: str | None) -> int:
    return TIE_ORDER.index(basis) if basis in TIE_ORDER else -1


def release_events(verifications: DataFrame, nat_results: DataFrame) -> DataFrame:
    v = verifications.where("_is_current").select(
        "person_id",
        F.lit("verification").alias("kind"),
        F.col("verification_id").alias("event_id"),
        F.col("verified_at").alias("event_at"),
        F.col("_known_at").alias("known_at"),
        "outcome",
        "commitment_signed",
    )
    # every negative version, from when it was known: the same sample reported on both platforms releases at the
    # first report, and a release that happened is not undone by a later correction
    n = nat_results.where(F.col("result") == "negative").select(
        "person_id",
        F.lit("nat").alias("kind"),
        F.col("sample_id").alias("event_id"),
        F.col("sampled_at").alias("event_at"),
        F.col("_known_at").alias("known_at"),
        F.lit(None).cast("string").alias("outcome"),
        F.lit(None).cast("boolean").alias("commitment_signed"),
    )
    return v.unionByName(n)


def _record_key(evidence: F.Column) -> F.Column:
    def field(name: str) -> F.Column:
        return F.coalesce(F.get_json_object(evidence, f"$.{name}"), F.lit(""))

    return F.concat(field("feed"), F.lit(" "), field("record_id"))


def bundle(candidates: DataFrame) -> DataFrame:
    """One row per BUNDLE_KEY: the latest exposure_end, the smallest evidence (the sort tie-break), how many
    candidates it stands for (weight), the first MAX_EVIDENCE evidence items and the first DETAIL_KEYS record keys
    in sorted order: all that an episode reports of its members."""
    return (
        candidates.groupBy(*BUNDLE_KEY)
        .agg(
            F.max("exposure_end").alias("exposure_end"),
            F.count(F.lit(1)).alias("weight"),
            F.slice(F.array_sort(F.collect_list("evidence")), 1, MAX_EVIDENCE).alias("evidence_items"),
            F.slice(F.array_sort(F.collect_set(_record_key(F.col("evidence")))), 1, DETAIL_KEYS).alias("record_keys"),
        )
        .withColumn("evidence", F.col("evidence_items")[0])
    )


def _member_key(evidence: str) -> str:
    e = json.loads(evidence)
    return e.get("feed", "") + " " + str(e.get("record_id", ""))


def _unbundled(r: dict) -> None:
    """A candidate given as itself (tests, the pandas path) is a bundle of one."""
    if r.get("weight") is None or pd.isna(r.get("weight")):
        r["weight"], r["evidence_items"], r["record_keys"] = 1, [r["evidence"]], [_member_key(r["evidence"])]
    else:
        r["evidence_items"], r["record_keys"] = list(r["evidence_items"]), list(r["record_keys"])


def _ts(x):
    return None if x is None or pd.isna(x) else pd.Timestamp(x).to_pydatetime()


class _Episode:
    def __init__(self, first: dict):
        self.members = [first]
        self.raised = first["start"]
        self.end = first["stop"]  # None = open
        self.basis = first["stop_basis"]

    def absorb(self, c: dict) -> None:
        self.members.append(c)
        if self.end is not None and (c["stop"] is None or c["stop"] > self.end):
            self.end, self.basis = c["stop"], c["stop_basis"]
        elif c["stop"] == self.end and self.basis in TIE_ORDER and _rank(c["stop_basis"]) > _rank(self.basis):
            # ① holds ending at one instant: `left_14d` only if every presence left; a member whose own presence
            # did not gives the county's basis, which holds for all (rules.md, "Boundaries")
            self.basis = c["stop_basis"]

    def known_by(self, x: datetime) -> list[dict]:
        return [m for m in self.members if m["start"] <= x]


def _verify_release(ep: _Episode, verifs: list[dict], window: timedelta):
    """(instant, basis, detail) of the verification release, or (None, ...) with a pending eligible time."""
    pending = None
    governing_at = None
    for v in verifs:
        if pending is not None and pending[0] <= v["known_at"]:
            return pending
        if governing_at is not None and v["event_at"] < governing_at:
            continue  # an older verification delivered late does not govern
        governing_at = v["event_at"]
        x = max(v["known_at"], ep.raised)
        pending = None
        if v["outcome"] == "not_exposed":
            members = ep.known_by(x)
            if not _covers(v, members) or (all(m["registered_only"] for m in members) and not v["commitment_signed"]):
                continue
            pending = (x, "verified_not_exposed", f"verification {v['event_id']}")
        elif v["outcome"] == "cleared":
            # The records behind the reason at the release instant are those known by then: evidence joining the
            # reason before it (a new scan in the area) is behind it too, moves its last exposure and, known after
            # the verification was made, leaves it unable to release (rules.md, ③ Release). So the instant is
            # found again with each member that becomes known before it.
            at, known = x, []
            while True:
                members = ep.known_by(at)
                if len(members) == len(known):
                    break
                known = members
                exposure = max((m["exposure_end"] for m in members if m["exposure_end"] is not None), default=ep.raised)
                at = max(x, exposure + window)
            if _covers(v, known):
                pending = (at, "verified_cleared", f"verification {v['event_id']}")
    return pending if pending is not None else (None, None, None)


def _covers(v: dict, members: list[dict]) -> bool:
    """The verification was made at or after the latest knowledge time of the records behind the reason."""
    return v["event_at"] >= max(m["evidence_known_at"] for m in members)


def _nat_release(ep: _Episode, nats: list[dict]):
    nat_from = min(m["nat_from"] for m in ep.members if m["nat_from"] is not None)
    for n in nats:  # sorted by known_at
        if n["event_at"] >= nat_from and n["known_at"] > ep.raised:
            return n["known_at"], "nat_negative", f"NAT sample {n['event_id']} sampled {n['event_at']:%Y-%m-%d %H:%M}"
    return None, None, None


def _nat_blocks(c: dict, nats: list[dict]) -> bool:
    return c["nat_from"] is not None and any(
        n["event_at"] >= c["nat_from"] and n["known_at"] <= c["start"] for n in nats
    )


def _release_rule(code: str, mode: str, ep: _Episode, nat_from) -> str:
    if mode == "verify":
        reg = all(m["registered_only"] for m in ep.members)
        return (
            "community verification: not_exposed"
            + (" with signed commitment letter" if reg else "")
            + ", or cleared 14 days after last exposure"
        )
    if mode == "nat":
        return f"negative NAT sampled at or after {nat_from:%Y-%m-%d %H:%M}"
    if ep.basis in TIME_BASED or ep.basis == "declared":
        return {
            "1": "left_14d / county_quiet_14d / county_low_risk",
            "2": "quarantine_complete",
            "5": "left_14d",
            "T": "trip declaration, or left_14d",
        }.get(code, ep.basis)
    return "evidence no longer holds"


def build_episodes(cands: pd.DataFrame, events: pd.DataFrame, as_of: datetime, policy: Policy) -> pd.DataFrame:
    """The episodes of every person in `cands`, each from their own candidates and release events alone."""
    window = timedelta(days=policy.window_days)
    out = []
    ev = [
        {k: (_ts(v) if k in ("event_at", "known_at") else v) for k, v in r.items()} for r in events.to_dict("records")
    ]
    verifs: dict[str, list[dict]] = {}  # person_id -> their events known by as_of, in the order they became known
    nats: dict[str, list[dict]] = {}
    for e in sorted(ev, key=lambda e: (e["known_at"], e["event_at"], e["event_id"])):
        if e["known_at"] <= as_of and e["kind"] in ("verification", "nat"):
            (verifs if e["kind"] == "verification" else nats).setdefault(e["person_id"], []).append(e)
    rows = []
    for r in cands.to_dict("records"):
        for k in ("start", "stop", "nat_from", "exposure_end", "evidence_known_at"):
            r[k] = _ts(r[k])
        r["registered_only"] = bool(r["registered_only"])
        _unbundled(r)
        if r["start"] is not None and r["start"] <= as_of:
            rows.append(r)
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["person_id"], r["popup_code"], r["reason_type"], r["cause"]), []).append(r)
    for (pid, code, rtype, cause), cs in sorted(groups.items()):
        pv, pn = verifs.get(pid, []), nats.get(pid, [])
        cs.sort(key=lambda c: (c["start"], c["stop"] or datetime.max, c["evidence"]))
        mode = cs[0]["release_mode"]
        i = 0
        while i < len(cs):
            c = cs[i]
            i += 1
            if mode == "nat" and _nat_blocks(c, pn):
                continue
            ep = _Episode(c)
            while True:
                if mode == "verify":
                    ext = _verify_release(ep, pv, window)
                elif mode == "nat":
                    ext = _nat_release(ep, pn)
                else:
                    ext = (None, None, None)
                cut = min([x for x in (ep.end, ext[0]) if x is not None], default=None)
                if i < len(cs) and (cut is None or cs[i]["start"] <= cut):
                    ep.absorb(cs[i])
                    i += 1
                    continue
                break
            rel_at, basis, detail = None, None, None
            if ep.end is not None and (ext[0] is None or ep.end <= ext[0]):
                rel_at, basis, detail = ep.end, ep.basis, None
            elif ext[0] is not None:
                rel_at, basis, detail = ext
            if basis == "evidence_withdrawn":
                detail = (
                    "a record behind the reason changed: "
                    + ", ".join(sorted({k for m in ep.members for k in m["record_keys"]}))[:DETAIL_CHARS]
                )
            elif basis is not None and basis.startswith("policy:"):  # the next version does not hold it up
                basis, detail = (
                    "evidence_withdrawn",
                    f"no longer produced under policy {basis[7:]}, in force from {rel_at:%Y-%m-%d %H:%M}",
                )
            released = rel_at is not None and rel_at <= as_of
            nat_from = min((m["nat_from"] for m in ep.members if m["nat_from"] is not None), default=None)
            items = sorted((m["start"], e) for m in ep.members for e in m["evidence_items"])[:MAX_EVIDENCE]
            evidence = json.dumps(
                {"count": int(sum(m["weight"] for m in ep.members)), "items": [json.loads(e) for _, e in items]},
                ensure_ascii=False,
                sort_keys=True,
                default=str,
            )
            out.append(
                {
                    "person_id": pid,
                    "popup_code": code,
                    "reason_type": rtype,
                    "cause": cause,
                    "raised_at": ep.raised,
                    "last_evidence_at": max(m["evidence_known_at"] for m in ep.members),
                    "status": "released" if released else "active",
                    "release_rule": None if released else _release_rule(code, mode, ep, nat_from),
                    "release_eligible_at": None
                    if released
                    else (rel_at if basis not in (None, "evidence_withdrawn") else None),
                    "released_at": rel_at if released else None,
                    "release_basis": basis if released else None,
                    "release_detail": detail if released else None,
                    "registered_only": all(m["registered_only"] for m in ep.members),
                    "evidence": evidence,
                }
            )
            if not released:
                break  # an active episode absorbs everything after it
            while i < len(cs) and cs[i]["start"] <= rel_at:
                i += 1  # known before the release: consumed by it
    cols = [f.name for f in EPISODE_SCHEMA.fields]
    return pd.DataFrame(out, columns=cols)


def episodes(candidates: DataFrame, events: DataFrame, as_of: datetime, policy: Policy) -> DataFrame:
    """build_episodes on the people of each of a few buckets of person_id at once: a group per person cost about
    5 ms of pandas each (20,000 people: 104 s on 2 cores), whatever the group's size."""
    parts = shuffle_width(candidates.sparkSession)
    bucket = F.pmod(F.xxhash64("person_id"), F.lit(BUCKETS_PER_PARTITION * parts)).alias("_bucket")
    ev = events.join(candidates.select("person_id").distinct(), "person_id").select(bucket, *EVENT_SCHEMA.fieldNames())
    bundles = bundle(candidates).select(bucket, "*")

    def fn(c: pd.DataFrame, e: pd.DataFrame) -> pd.DataFrame:
        return build_episodes(c.drop(columns="_bucket"), e.drop(columns="_bucket"), as_of, policy)

    return bundles.groupBy("_bucket").cogroup(ev.groupBy("_bucket")).applyInPandas(fn, EPISODE_SCHEMA)
