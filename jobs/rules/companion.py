"""Popup ③ reason 3d — spatio-temporal companion (时空伴随), rules.md.

A linked phone of p and a phone of a `local` case (the case report's `phone`, or a phone linked to the case's
person, inside that link) dwelt in the same grid cell with one overlapping stretch of >= 10 minutes, and one
of the two phones accumulated >= 30 hours of dwell in that cell (p's phone counted only inside its link).
The overlap is measured on the union of each phone's dwell records in the cell: records of one phone that touch
or overlap form one stretch (operators split long dwells into pieces: two back-to-back pieces of 6 minutes are 12).
Both must hold at one instant x on what was known at x: the overlap's last 10 minutes inside [x - 14 d, x],
the 30 hours inside [x - 14 d, x]. The reason is raised at the first such x; a dwell is known only once it is
reported (after it ends), so that x is the latest knowledge time behind the overlap (of every piece of it) or a
later dwell report. A stretch stops holding when a record used in it is withdrawn (a corrected version).

Scale: grid_dwells is ~1 G rows a day against a few hundred case phones. Never pair dwells with dwells: the
case dwells (small) are cut into hour slots per cell and broadcast; a person dwell is kept only if its cell
was touched by a case (broadcast semi-join), then cut into slots and joined on (cell, slot). A pair is kept in
the slot where its overlap starts, so it is found once. The pieces are merged after the pairing, on the pairs'
overlaps (see `overlaps`): only the pairs are shuffled, never every dwell of a case's cell. The dwell hours are
summed only for the (phone, cell) pairs that survived, once per such side and instant (never per pair of
dwells: one household makes thousands of pairs on the same two sides).

Evidence names the cell, the overlap window and minutes, the records of each side behind it, the person's phone
masked with its link type and the case by its report id (`case_id`), never the case's person or phone.
"""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from jobs.asof import as_of_for, known_by
from jobs.keys import mask_phone
from jobs.policy import Policy
from jobs.rules.common import candidates, evidence_json, least_with_basis
from jobs.rules.links import registered_only
from jobs.spark import cut, lookup, shuffle_width

FEED_GRID_M = 800  # feeds.md: grid_dwells are on the carriers' 800 m grid; the policy cannot ask for another
SLOT_SECONDS = 3600  # bucket width for the cell/time pre-join (tuning only: results do not depend on it)
FAR = "9999-12-31 00:00:00"


def _epoch(c: Column) -> Column:
    return F.unix_timestamp(c)


def _slots(start: str, stop: str) -> Column:
    return F.explode(
        F.sequence(F.floor(_epoch(F.col(start)) / SLOT_SECONDS), F.floor(_epoch(F.col(stop)) / SLOT_SECONDS))
    )


def _seconds(lo: Column, hi: Column) -> Column:
    return F.greatest(F.lit(0), _epoch(hi) - _epoch(lo))


def case_phones(case_reports: DataFrame, links: DataFrame) -> DataFrame:
    """case_id, c_person, c_known, c_valid_to, c_phone, c_from, c_to (null = unbounded), c_link_known."""
    cases = case_reports.where(F.col("case_type") == "local").select(
        "case_id",
        F.col("person_id").alias("c_person"),
        F.col("phone").alias("c_direct"),
        F.col("_known_at").alias("c_known"),
        F.col("_valid_to").alias("c_valid_to"),
    )
    none = F.lit(None).cast("timestamp")
    direct = cases.where(F.col("c_direct").isNotNull()).select(
        "case_id",
        "c_person",
        "c_known",
        "c_valid_to",
        F.col("c_direct").alias("c_phone"),
        none.alias("c_from"),
        none.alias("c_to"),
        none.alias("c_link_known"),
    )
    linked = cases.join(links, F.col("c_person") == links.person_id).select(
        "case_id",
        "c_person",
        "c_known",
        "c_valid_to",
        F.col("phone").alias("c_phone"),
        F.col("link_from").alias("c_from"),
        F.col("link_to").alias("c_to"),
        F.col("link_known_at").alias("c_link_known"),
    )
    return direct.unionByName(linked).distinct()


def dwells_in_case_cells(
    raw: DataFrame, links: DataFrame, case_reports: DataFrame, t: datetime, phones: DataFrame | None = None
) -> DataFrame:
    """grid_dwells as of T in the cells a case phone dwelt in: all the rule reads (a pair lies in a case's cell, and
    the hours counted are its two sides' in that cell). The cells come from every version known at T (a safe
    superset); the version window then runs over those cells' records only, never over the whole feed.
    `phones` (an hourly run's: its people's and the cases'): only their dwells in those cells."""
    cphones = lookup(case_phones(case_reports, links).select(F.col("c_phone").alias("phone")).distinct())
    cells = known_by(raw, t).join(cphones, "phone", "left_semi").select("grid_id").distinct()
    return as_of_for(raw, "grid_dwells", t, cells, "grid_id", None if phones is None else (phones, "phone"))


def _clip(lo: Column, hi: Column, frm: Column, to: Column) -> tuple[Column, Column]:
    far = F.lit(FAR).cast("timestamp")
    return F.greatest(lo, F.coalesce(frm, lo)), F.least(hi, F.coalesce(to, far))


GK = ["lid", "cid", "grid_id"]  # a pair of sides: a person link (its row id), a case phone row, a cell
STRETCH_SCHEMA = (
    "lid long, cid int, grid_id string, o_lo timestamp, o_hi timestamp, o_known timestamp, o_valid_to timestamp, "
    "record_id string, c_record_id string"
)
BUCKETS_PER_PARTITION = 8  # the walk below: groups per shuffle partition, many pairs of sides each


def _stretches(pdf, need: int):
    """The overlap stretches of >= `need` seconds of the elements of a few pairs of sides (`GK`), each formed at
    some instant: per run of all the elements' versions, at each instant an element of it became known or was
    withdrawn, the runs of the elements holding then (`overlaps`). A walk in Python: in Spark the same, a window
    and an aggregate over every (instant, element) of a run, cost several times the pairing itself."""
    import numpy as np  # here: only the Python workers that run the walk need numpy and pandas
    import pandas as pd

    never = np.iinfo(np.int64).max

    def ns(c: str) -> np.ndarray:
        v = pdf[c].to_numpy("datetime64[ns]")
        return np.where(np.isnat(v), never, v.astype(np.int64))

    # an element's id: its two record versions (a record id and the instant that version became known)
    pdf = pdf.assign(
        eid=pdf["record_id"]
        + "|"
        + ns("d_known").astype(str)
        + "|"
        + pdf["c_record_id"]
        + "|"
        + ns("cd_known").astype(str)
    ).sort_values([*GK, "o_lo", "o_hi", "eid"])
    els = list(
        zip(
            zip(pdf["lid"], pdf["cid"], pdf["grid_id"], strict=True),
            ns("o_lo"),
            ns("o_hi"),
            ns("e_known"),
            ns("e_valid_to"),
            pdf["eid"],
            pdf["record_id"],
            pdf["c_record_id"],
            strict=True,
        )
    )
    out: list[tuple] = []

    def long(lo: int, hi: int) -> bool:  # whole seconds apart, as unix_timestamp counts them (_seconds)
        return hi // 10**9 - lo // 10**9 >= need

    def emit(part: list[tuple], hi: int, seen: set) -> None:
        if not long(part[0][1], hi):
            return
        eids = tuple(sorted(y[5] for y in part))
        if eids not in seen:
            seen.add(eids)
            out.append(
                (
                    *part[0][0],
                    part[0][1],
                    hi,
                    max(y[3] for y in part),
                    min(y[4] for y in part),
                    ",".join(sorted({y[6] for y in part})),
                    ",".join(sorted({y[7] for y in part})),
                )
            )

    def walk(run: list[tuple], run_hi: int) -> None:
        if not long(run[0][1], run_hi):
            return  # no part of it can be long enough
        seen: set = set()
        for at in sorted({x[3] for x in run} | {x[4] for x in run if x[4] != never}):
            part: list[tuple] = []
            hi = 0
            for x in run:  # in time order
                if not x[3] <= at < x[4]:
                    continue  # not known yet, or withdrawn
                if part and x[1] > hi:
                    emit(part, hi, seen)
                    part = []
                hi = max(hi, x[2]) if part else x[2]
                part.append(x)
            if part:
                emit(part, hi, seen)

    run: list[tuple] = []
    run_hi = 0
    for x in els:
        if run and (x[0] != run[0][0] or x[1] > run_hi):
            walk(run, run_hi)
            run = []
        run_hi = max(run_hi, x[2]) if run else x[2]
        run.append(x)
    if run:
        walk(run, run_hi)
    df = pd.DataFrame(out, columns=[*GK, "o_lo", "o_hi", "o_known", "o_valid_to", "record_id", "c_record_id"])
    df["lid"], df["cid"] = df["lid"].astype(np.int64), df["cid"].astype(np.int32)
    for c in ("o_lo", "o_hi", "o_known", "o_valid_to"):
        v = df[c].to_numpy(np.int64)
        df[c] = np.where(v == never, np.datetime64("NaT"), v.astype("datetime64[ns]"))
    return df


def overlaps(grid_dwells: DataFrame, links: DataFrame, cphones: DataFrame, policy: Policy) -> DataFrame:
    """One row per overlap stretch of >= the policy minutes between a person link's phone and a case phone in one
    cell, each as it held over an interval of knowledge time: the pair's side columns, o_lo, o_hi (the stretch),
    o_known (from when it held), o_valid_to (when a record used in it was withdrawn), record_id / c_record_id
    (the records of each side used, sorted, comma-separated), registered_only, x0, x_limit, pair_key."""
    d = grid_dwells.select(
        "record_id",
        "phone",
        "grid_id",
        "start_at",
        "end_at",
        F.col("_known_at").alias("d_known"),
        F.col("_valid_to").alias("d_valid_to"),
    )
    # The elements, the rule's most numerous rows (5.3 M at SF 0.1 with 14 days), carry row ids of their two sides.
    # The case phone rows (a few hundred) are numbered in one partition on purpose, in the order of every column:
    # the same ids each time they are read.
    cid = F.row_number().over(Window.partitionBy(F.lit(0)).orderBy(*cphones.columns)).cast("int")
    cphones = F.broadcast(cphones.withColumn("cid", cid))
    links = cut(links.withColumn("lid", F.monotonically_increasing_id()))  # materialised: the ids stay put
    cd = d.join(cphones.select("cid", "c_phone", "c_person", "c_from", "c_to"), d.phone == F.col("c_phone"))
    cd = cd.drop("phone")
    c_lo, c_hi = _clip(F.col("start_at"), F.col("end_at"), F.col("c_from"), F.col("c_to"))
    cd = cd.select(
        F.col("record_id").alias("c_record_id"),
        "grid_id",
        c_lo.alias("c_lo"),
        c_hi.alias("c_hi"),
        F.col("d_known").alias("cd_known"),
        F.col("d_valid_to").alias("cd_valid_to"),
        "cid",
        "c_phone",
        "c_person",
    )
    cd = cd.where(F.col("c_lo") < F.col("c_hi"))
    cslots = cd.withColumn("slot", _slots("c_lo", "c_hi"))
    # person side: only dwells in cells a case touched, then only in the hours it was there
    pd_ = d.join(F.broadcast(cd.select("grid_id").distinct()), "grid_id", "left_semi")
    pd_ = pd_.withColumn("slot", _slots("start_at", "end_at"))
    j = pd_.join(F.broadcast(cslots), ["grid_id", "slot"])
    lo = F.greatest("start_at", "c_lo")
    j = j.where((F.floor(_epoch(lo) / SLOT_SECONDS) == F.col("slot")) & (F.col("phone") != F.col("c_phone")))
    j = (
        j.withColumn("o_lo", lo)
        .withColumn("o_hi", F.least("end_at", "c_hi"))
        .drop("slot")
        .where(F.col("o_lo") < F.col("o_hi"))
    )
    # the person's phone counts only inside its link
    j = j.join(links.select("lid", "phone", "person_id", "link_from", "link_to"), "phone")
    j = j.where(F.col("person_id") != F.coalesce(F.col("c_person"), F.lit("")))
    p_lo, p_hi = _clip(F.col("o_lo"), F.col("o_hi"), F.col("link_from"), F.col("link_to"))
    j = j.withColumn("o_lo", p_lo).withColumn("o_hi", p_hi).where(F.col("o_lo") < F.col("o_hi"))
    # Each row is now an *element*: the overlap of one person record and one case record (each a version), inside
    # both links. The union of each phone's records in the cell intersected with the other's is the union of the
    # elements, so the overlap stretches of the two phones' merged records are the runs of touching or overlapping
    # elements: records are merged after the pairing, which shuffles only the pairs, never every dwell of a case
    # cell. A record meeting the other phone's stretch nowhere (or at one instant) neither lengthens nor joins
    # one, so the records used are those of the elements.
    # Versions: an element holds from its records' later knowledge time until either is withdrawn. At instant x
    # the stretches are the runs of the elements holding at x; a set of elements that formed a run at some x holds
    # as one contiguous stretch from the latest knowledge time of its elements until the first of them is withdrawn
    # (a piece known at 11:00 joining one known at 10:00 makes the 12 minutes from 11:00, not before; a correction of
    # either piece ends it, and what still holds then is another run, with its own knowledge time). The runs change
    # only when an element becomes known or is withdrawn, so they are formed at those instants, each inside one run
    # of all the versions: per such run, its instants x its elements (`_stretches`, per pair of sides `GK`). Every
    # stretch so formed is a candidate of its own, held over its own knowledge interval; a shorter one formed before
    # a later piece extended it raises the reason where it alone held, the longer one moves its last exposure.
    e = j.select(
        *GK,
        "o_lo",
        "o_hi",
        F.greatest("d_known", "cd_known").alias("e_known"),
        F.least("d_valid_to", "cd_valid_to").alias("e_valid_to"),
        "d_known",
        "cd_known",
        "record_id",
        "c_record_id",
    )
    bucket = F.pmod(F.xxhash64(*GK), F.lit(BUCKETS_PER_PARTITION * shuffle_width(e.sparkSession))).alias("_bucket")
    need = policy.companion_overlap_minutes * 60
    s = e.select(bucket, "*").groupBy("_bucket").applyInPandas(lambda pdf: _stretches(pdf, need), STRETCH_SCHEMA)
    s = s.join(links, "lid").join(cphones, "cid")  # the side columns back, on the stretches only
    # each row is a stretch formed once (its elements differ from every other's): a row id keys it, fixed here
    s = cut(s.withColumn("pair_key", F.monotonically_increasing_id()))
    # the letter is asked about the links of these (person, phone) only, not the whole city's
    s = registered_only(
        s,
        links.join(lookup(s.select("person_id", "phone").distinct()), ["person_id", "phone"], "left_semi"),
        "o_lo",
        "o_hi",
    )
    base = F.greatest("o_known", "c_known", "link_known_at", "c_link_known")  # greatest skips nulls
    # the overlap's last `need` seconds must still be inside W14 at x
    limit = F.col("o_hi") + F.make_interval(
        F.lit(0), F.lit(0), F.lit(0), F.lit(policy.window_days), F.lit(0), F.lit(0), F.lit(float(-need))
    )
    return (
        s.withColumn("x0", base).withColumn("x_limit", limit).where(F.col("x0") <= F.col("x_limit")).drop("lid", "cid")
    )


SIDE = ["phone", "grid_id", "s_from", "s_to"]  # a side: one phone in one cell, counted inside [s_from, s_to)


def sides(pairs: DataFrame) -> DataFrame:
    """pair_key, side (person | case), the side's key (SIDE; an unbounded link end as FAR or the epoch), x0, x_limit.
    The hours of a side depend on its key and x only, never on the pair: all the pairs of one household share
    two sides, so the hours are computed once per side and instant, not once per pair."""
    lo, hi = F.lit("1970-01-01 00:00:00").cast("timestamp"), F.lit(FAR).cast("timestamp")

    def one(side: str, phone: str, frm: str, to: str) -> DataFrame:
        return pairs.select(
            "pair_key",
            F.lit(side).alias("side"),
            F.col(phone).alias("phone"),
            "grid_id",
            F.coalesce(frm, lo).alias("s_from"),
            F.coalesce(to, hi).alias("s_to"),
            "x0",
            "x_limit",
        )

    return one("person", "phone", "link_from", "link_to").unionByName(one("case", "c_phone", "c_from", "c_to"))


def side_dwells(grid_dwells: DataFrame, sides_: DataFrame, window_days: int) -> DataFrame:
    """Every dwell that can count towards the hours of a side: SIDE, lo, hi, known, valid_to."""
    keys = sides_.groupBy(*SIDE).agg(F.min("x0").alias("x0"), F.max("x_limit").alias("x_limit"))
    d = grid_dwells.select(
        "phone",
        "grid_id",
        "start_at",
        "end_at",
        F.col("_known_at").alias("known"),
        F.col("_valid_to").alias("valid_to"),
    )
    # semi-join on the few (phone, cell) keys first so the big table is filtered map-side, never shuffled
    d = d.join(F.broadcast(keys.select("phone", "grid_id").distinct()), ["phone", "grid_id"], "left_semi")
    j = d.join(keys, ["phone", "grid_id"]).where(
        (F.col("end_at") >= F.col("x0") - F.make_interval(F.lit(0), F.lit(0), F.lit(0), F.lit(window_days)))
        & (F.col("known") <= F.col("x_limit"))
    )
    lo, hi = _clip(F.col("start_at"), F.col("end_at"), F.col("s_from"), F.col("s_to"))
    return j.select(*SIDE, lo.alias("lo"), hi.alias("hi"), "known", "valid_to").where(F.col("lo") < F.col("hi"))


def hours_reached(sides_: DataFrame, dwells: DataFrame, policy: Policy) -> DataFrame:
    """pair_key, x (first instant the hours hold), hours_side, hours: the earliest x in [x0, x_limit] among x0 and
    the later dwell reports where one side has >= the policy hours within [x - 14 d, x], counting dwell versions
    current at x. A dwell is reported after it ends (feeds.md), so between two reports of a side its hours only
    fall: the first x of a side is its pair's x0 or one of its own reports, and the pair's x is the earlier of
    its two sides' (the case side on a tie)."""
    w = policy.window_days * 86400
    win = F.make_interval(F.lit(0), F.lit(0), F.lit(0), F.lit(policy.window_days))
    # A dwell version [lo, hi], known at k, current until v, counts at x >= k (hi <= end_at <= k: feeds.md rejects
    # an observed time after the knowledge time): g(x) = (hi - lo) - (x - (lo + W))+ + (x - (hi + W))+ seconds.
    # Each term is an affine a + b * x switched on at one instant, and switched off again at v, so a side's hours
    # at x are a running sum over its own events in time order: linear in its dwells, never instants x dwells.
    lo_e, hi_e = _epoch(F.col("lo")), _epoch(F.col("hi"))
    terms = [
        (F.col("known"), hi_e - lo_e, 0),
        (F.greatest("known", F.col("lo") + win), lo_e + w, -1),
        (F.greatest("known", F.col("hi") + win), -(hi_e + w), 1),
    ]
    on = [F.struct(at.alias("x"), a.alias("a"), F.lit(b).alias("b")) for at, a, b in terms]
    off = [
        F.struct(F.greatest(at, F.col("valid_to")).alias("x"), (-a).alias("a"), F.lit(-b).alias("b"))
        for at, a, b in terms
    ]
    ev = dwells.select(*SIDE, F.explode(F.array(*on)).alias("e")).unionByName(
        dwells.where(F.col("valid_to").isNotNull()).select(*SIDE, F.explode(F.array(*off)).alias("e"))
    )
    ev = ev.select(*SIDE, "e.x", "e.a", "e.b", F.lit(1).alias("ask"))
    # the instants that can be first: every report of the side, and the pairs' x0
    xs = (
        dwells.select(*SIDE, F.col("known").alias("x"))
        .unionByName(sides_.select(*SIDE, F.col("x0").alias("x")))
        .distinct()
    )
    xs = xs.select(*SIDE, "x", F.lit(0).cast("bigint").alias("a"), F.lit(0).alias("b"), F.lit(2).alias("ask"))
    upto = Window.partitionBy(*SIDE).orderBy("x", "ask").rowsBetween(Window.unboundedPreceding, Window.currentRow)
    secs = F.sum("a").over(upto) + F.sum("b").over(upto) * _epoch(F.col("x"))  # events at x sort before the ask at x
    h = (
        ev.unionByName(xs)
        .withColumn("secs", secs)
        .where((F.col("ask") == 2) & (F.col("secs") >= policy.companion_dwell_hours * 3600))
        .select(*SIDE, "x", "secs")
    )
    # Per side, the first such x at or after each x0 asked: a running minimum over the side's instants taken from
    # the latest back (a range join of pairs to instants was pairs x instants rows). The answer depends on the side
    # and x0 only, so each is asked once (pair sides outnumber their distinct (side, x0) many times over).
    events = h.select(*SIDE, "x", F.lit(0).alias("ask"), F.struct("x", "secs").alias("hit"))
    asks = (
        sides_.select(*SIDE, F.col("x0").alias("x"))
        .distinct()
        .select(*SIDE, "x", F.lit(1).alias("ask"), F.lit(None).cast("struct<x:timestamp,secs:bigint>").alias("hit"))
    )
    later = (
        Window.partitionBy(*SIDE).orderBy(F.desc("x"), "ask").rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )  # at equal x the instant sorts first: x >= x0 counts
    answers = (
        events.unionByName(asks)
        .withColumn("next", F.min("hit").over(later))
        .where((F.col("ask") == 1) & F.col("next").isNotNull())
        .select(*SIDE, F.col("x").alias("x0"), "next")
    )
    nxt = sides_.join(lookup(answers), [*SIDE, "x0"]).where(F.col("next.x") <= F.col("x_limit"))
    first = nxt.groupBy("pair_key").agg(
        F.min_by(
            F.struct(F.col("next.x").alias("x"), "side", F.col("next.secs").alias("secs")),
            F.struct(F.col("next.x"), F.col("side") != "case"),
        ).alias("m")
    )
    return first.select(
        "pair_key",
        F.col("m.x").alias("x"),
        F.col("m.side").alias("hours_side"),
        F.round(F.col("m.secs") / 3600, 2).alias("hours"),
    )


def rule(
    spark: SparkSession,
    grid_dwells: DataFrame,
    links: DataFrame,
    case_reports: DataFrame,
    policy: Policy,
    person_links: DataFrame | None = None,
) -> DataFrame:
    """`person_links`: the links of the people whose candidates are wanted (default: `links`, everyone). The case
    side always takes every link of a case."""
    if policy.companion_grid_m != FEED_GRID_M:
        raise ValueError(
            f"policy companion_grid_m={policy.companion_grid_m} but grid_dwells are on a {FEED_GRID_M} m grid"
        )
    # pairs feeds four branches (sides, their dwells, the instants, the final join): materialise it once
    pairs = cut(
        overlaps(grid_dwells, links if person_links is None else person_links, case_phones(case_reports, links), policy)
    )
    sides_ = cut(sides(pairs))  # asked, then joined back to, in hours_reached
    hit = pairs.join(hours_reached(sides_, side_dwells(grid_dwells, sides_, policy.window_days), policy), "pair_key")
    stop, basis = least_with_basis(
        (F.col("o_valid_to"), "evidence_withdrawn"), (F.col("c_valid_to"), "evidence_withdrawn")
    )
    minutes = F.floor(_seconds(F.col("o_lo"), F.col("o_hi")) / 60)
    return candidates(
        hit,
        person_id=F.col("person_id"),
        popup_code=F.lit("3"),
        reason_type=F.lit("companion"),
        cause=F.concat(F.lit("case="), F.col("case_id")),
        start=F.col("x"),
        stop=stop,
        stop_basis=basis,
        release_mode=F.lit("verify"),
        exposure_end=F.col("o_hi"),
        registered_only=F.col("registered_only"),
        evidence_known_at=F.col("x"),
        evidence=evidence_json(
            feed=F.lit("grid_dwells"),
            record_id=F.col("record_id"),
            grid_id=F.col("grid_id"),
            grid_m=F.lit(policy.companion_grid_m),
            phone=mask_phone(F.col("phone")),
            link_type=F.col("link_type"),
            overlap_from=F.col("o_lo"),
            overlap_to=F.col("o_hi"),
            overlap_minutes=minutes,
            case_id=F.col("case_id"),
            case_record_id=F.col("c_record_id"),
            dwell_hours=F.col("hours"),
            dwell_hours_of=F.col("hours_side"),
        ),
    )
