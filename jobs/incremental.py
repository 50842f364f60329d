"""Hourly runs: screen only the people whose reasons can have changed since the previous run (rules.md,
"Hourly equals nightly").

A person's reasons depend on their own rows, their linked phones' rows, shared context (announcements, case
reports, border counties, venues, and the cases' own scans and dwells), and the passing of time. So between the
previous run's as-of F and this run's T, a person's outcome can change only if one of these holds; the union is
`affected`:

1. a row about them or a phone linked to them became known in [F, T] (late rows count from F) or was written by
   ingest since the previous run, or such a row's key had a version that was theirs: a correction may name
   someone else, and a re-delivery with the same knowledge time overwrites its row, so what it said before comes
   from bronze's change data feed (bronze_writes); a grid dwell only in a cell a case phone dwelt in (nothing
   else reads grid dwells);
2. a ticket of theirs departs or arrives, or a declared Beijing entry falls, in [F, T] (scheduled times count
   only once they have come);
3. a release of theirs falls due by T: gold's `release_eligible_at` (every time-based end an active reason can
   reach without a new row; an open reason ends only by a new row, which 1 or 4 finds);
4. new or corrected context touches a place they were: a county or city of an announcement, a local case
   outside the home region (what ① reads of a case) or a border county (their stays, tickets, scans, declared
   counties), a new or corrected venue, a venue a case scanned, a grid cell a case phone dwelt in (a case, a
   dwell of a case phone, or a phone newly linked to a case). A correction counts with every version of its
   key: a case dwell moved to another cell withdraws the reasons of the old cell.

Everything else is a superset-safe filter: the rules then run unchanged on the affected people's rows plus the
cases' rows, for the affected people only (screen's `people`), and only their reasons are published (and only
theirs can be found gone).
tests/e2e/test_run.py and tests/e2e/test_incremental.py prove hourly = nightly.
"""

from __future__ import annotations

from datetime import datetime

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import schemas
from jobs.asof import as_of_for, ts
from jobs.keys import person_key
from jobs.lake import Lake
from jobs.rules import companion
from jobs.rules.links import linked_phones
from jobs.spark import cut, each_of, lookup

PERSON_FEEDS = (
    "tickets",
    "venue_scans",
    "inbound_entries",
    "drug_purchases",
    "clinic_visits",
    "nat_samples",
    "nat_results",
    "trip_declarations",
    "verifications",
    "kit_bindings",
    "phone_registrations",
)
PHONE_FEEDS = ("telecom_stays", "grid_dwells")
LINK_FEEDS = ("kit_bindings", "phone_registrations")
# Taken as of T only for the wanted people or phones (restrict): all of bronze but the small shared context and
# the link feeds (two-event rows: their as-of hides ends not yet known, so they are no safe superset unwindowed).
NARROWED = PHONE_FEEDS + tuple(f for f in PERSON_FEEDS if f not in LINK_FEEDS)
CONTEXT_FEEDS = ("risk_announcements", "case_reports", "venues", "border_port_counties")  # shared, kept whole
WRITTEN = ("insert", "update_preimage", "update_postimage")  # change data feed rows (deletes: none in bronze)


def _is_new(df: DataFrame, floor: datetime) -> F.Column:
    cond = F.col("_known_at") >= ts(floor)
    if "_end_known_at" in df.columns:
        cond = cond | (F.col("_end_known_at") >= ts(floor))
    return cond


def new_rows(df: DataFrame, floor: datetime) -> DataFrame:
    """Rows whose start or end became known at or after the previous run's as-of (late rows are set to it)."""
    return df.where(_is_new(df, floor))


def bronze_writes(spark: SparkSession, lake: Lake, since: dict[str, int | None]) -> dict[str, DataFrame] | None:
    """Per feed, what ingest wrote into bronze after the versions `since` (the previous run's input_versions), from
    Delta's change data feed: inserted rows, and both images of a row replaced in place (a re-delivery with the
    same knowledge time overwrites its row and keeps its knowledge time, so neither new_rows nor bronze shows what
    it said before). Materialised. None when some feed's changes were not recorded (a lake from before bronze
    kept them): the caller then screens everyone."""

    def one(f: str) -> DataFrame | None:
        path, v = lake.bronze(f), since.get(f)
        if not lake.exists(path) or (v is not None and lake.version(spark, path) <= v):
            return spark.createDataFrame([], schemas.bronze_schema(f)).withColumn(
                "_change_type", F.lit(None).cast("string")
            )
        rows = (
            spark.read.format("delta")
            .option("readChangeFeed", "true")
            .option("startingVersion", 0 if v is None else v + 1)
            .load(path)
            .where(F.col("_change_type").isin(*WRITTEN))
            .drop("_commit_version", "_commit_timestamp")
        )
        try:
            return cut(rows)
        except AnalysisException as e:
            if "DELTA_MISSING_CHANGE_DATA" not in str(e):
                raise
            return None

    out = each_of(one, [f for f in schemas.FEEDS if f not in schemas.optional_feeds()])  # those name, never screen
    return None if any(df is None for df in out.values()) else out


def changed(df: DataFrame, feed: str, floor: datetime, written: DataFrame | None = None) -> DataFrame:
    """Every version of the keys that have a new version (new_rows, or a row ingest wrote since the previous run),
    and what a row replaced in place said before: a correction and what it replaced, whose owner or place may
    differ."""
    key = schemas.feed_spec(feed)["key"]
    keys = new_rows(df, floor).select(*key)
    if written is not None:
        keys = keys.unionByName(written.select(*key))
    out = df.join(lookup(keys.distinct()), key, "left_semi")
    if written is None:
        return out
    before = written.where(F.col("_change_type") == "update_preimage").drop("_change_type")
    return out.unionByName(before, allowMissingColumns=True)


def _persons_of_phones(phones: DataFrame, links: DataFrame) -> DataFrame:
    return links.join(phones.select("phone").distinct(), "phone", "left_semi").select("person_id")


def affected(
    b: dict[str, DataFrame],
    due_keys: DataFrame,
    floor: datetime,
    t: datetime,
    home_prefix: str,
    written: dict[str, DataFrame] | None = None,
) -> DataFrame:
    """person_key of everyone whose reasons may differ from the previous run's (see the module docstring).
    `due_keys`: person_key of the active reasons whose release falls due by T; `written`: bronze_writes."""
    w = written or {}
    links = linked_phones(b["kit_bindings"], b["phone_registrations"])
    twice = ("venue_scans",) + LINK_FEEDS  # each read twice below: one join of bronze, not two

    def change(f: str) -> DataFrame:
        df = changed(b[f], f, floor, w.get(f))
        return cut(df) if f in twice else df

    feeds = [f for f in PERSON_FEEDS + PHONE_FEEDS + CONTEXT_FEEDS if f != "grid_dwells"]
    ch = each_of(change, feeds)
    ids = [ch[f].select("person_id") for f in PERSON_FEEDS]
    case_phones = case_phone_set(b["case_reports"], links)
    ids.append(
        _persons_of_phones(
            ch["telecom_stays"]
            .select("phone")
            .unionByName(
                dwell_phones(b["grid_dwells"], floor, case_phones, new_case_phones(b, ch, links), w.get("grid_dwells"))
            )
            .unionByName(ch["kit_bindings"].select("phone"))
            .unionByName(ch["phone_registrations"].select("phone")),
            links,
        )
    )
    tk = b["tickets"]
    due = lambda c: (F.col(c) >= ts(floor)) & (F.col(c) <= ts(t))  # noqa: E731
    ids.append(tk.where(due("depart_at") | due("arrive_at")).select("person_id"))
    ids.append(b["trip_declarations"].where(due("entered_beijing_at")).select("person_id"))  # a declared future entry
    ids.extend(context_persons(b, ch, links, home_prefix))
    out = ids[0]
    for df in ids[1:]:
        out = out.unionByName(df)
    keys = (
        out.where(F.col("person_id").isNotNull()).distinct().select(person_key(F.col("person_id")).alias("person_key"))
    )
    return keys.unionByName(due_keys.select("person_key")).distinct()


def _flag(keys: DataFrame, cols: list[str], flag: str) -> DataFrame:
    """The distinct `cols` of `keys` with `flag` true, as a lookup side: a semi-join that can be one of several
    conditions of one pass (_flagged), or a plain one."""
    return lookup(keys.select(*cols).distinct().withColumn(flag, F.lit(True)))


def _flagged(df: DataFrame, side: DataFrame, cols: list[str], flag: str) -> DataFrame:
    return df.join(side, cols, "left").withColumn(flag, F.coalesce(F.col(flag), F.lit(False)))


def dwell_phones(
    dwells: DataFrame,
    floor: datetime,
    case_phones: DataFrame,
    new_case_phones: DataFrame,
    written: DataFrame | None = None,
) -> DataFrame:
    """Phones whose reasons a grid dwell may have changed (module docstring, 1 and 4): those of a new or corrected
    dwell (every version, as `changed`) in a cell a case phone dwelt in (grid dwells have no reader but the
    companion rule, and a dwell elsewhere pairs with no case), and those of every dwell in a cell that a new case
    phone's dwells, or a new or corrected case dwell, touch. `dwells`: every version known at T, most of bronze,
    so it is read twice, not once per question: the new rows and the case phones' dwells, then every version of
    the new keys and the dwells of the touched cells."""
    key = schemas.feed_spec("grid_dwells")["key"]
    case_phones = _flag(case_phones, ["phone"], "_case")
    used = dwells.select(*key, "phone", "grid_id", *[c for c in ("_known_at", "_end_known_at") if c in dwells.columns])
    first = cut(
        _flagged(used, case_phones, ["phone"], "_case").where(  # the columns used below only: Parquet skips the rest
            _is_new(used, floor) | F.col("_case")
        )
    )
    keys = first.where(_is_new(first, floor)).select(*key)
    before = None
    if written is not None:
        keys = keys.unionByName(written.select(*key))
        before = written.where(F.col("_change_type") == "update_preimage").select("phone", "grid_id")
    new_keys = _flag(keys, key, "_new")
    case_dwells = first.where("_case")
    changed_cells = case_dwells.join(new_keys, key, "left_semi").select("grid_id")
    if before is not None:
        changed_cells = changed_cells.unionByName(before.join(case_phones, "phone", "left_semi").select("grid_id"))
    touched = (
        case_dwells.join(lookup(new_case_phones), "phone", "left_semi").select("grid_id").unionByName(changed_cells)
    )
    second = cut(
        _flagged(
            _flagged(dwells, new_keys, key, "_new"), _flag(touched, ["grid_id"], "_touched"), ["grid_id"], "_touched"
        )
        .where(F.col("_new") | F.col("_touched"))
        .select("phone", "grid_id", "_new", "_touched")
    )
    new = second.where("_new").select("phone", "grid_id")
    if before is not None:
        new = new.unionByName(before)
    return (
        new.join(lookup(case_dwells.select("grid_id").distinct()), "grid_id", "left_semi")
        .select("phone")
        .unionByName(second.where("_touched").select("phone"))
    )


def new_case_phones(b: dict[str, DataFrame], ch: dict[str, DataFrame], links: DataFrame) -> DataFrame:
    """Phones that became a case's: a new or corrected case's, or a phone newly linked to an earlier case (its old
    dwells now count)."""
    case_ids = b["case_reports"].where(F.col("person_id").isNotNull()).select("person_id").distinct()
    new_links = (
        ch["kit_bindings"]
        .select("person_id", "phone")
        .unionByName(ch["phone_registrations"].select("person_id", "phone"))
    )
    return (
        case_phone_set(ch["case_reports"], links)
        .unionByName(new_links.join(case_ids, "person_id", "left_semi").select("phone"))
        .distinct()
    )


def due_releases(reasons: DataFrame, t: datetime, run_id: str) -> DataFrame:
    """person_key of the active gold reasons whose time-based release is due by T, and of the reasons this run
    already assigned or released (a rerun after a publish that stopped half-way screens them again)."""
    due = (F.col("status") == "active") & (F.col("release_eligible_at") <= ts(t))
    mine = (F.col("first_run_id") == run_id) | F.col("release_run_id").eqNullSafe(F.lit(run_id))
    return reasons.where(due | mine).select("person_key")


def context_persons(
    b: dict[str, DataFrame], ch: dict[str, DataFrame], links: DataFrame, home_prefix: str
) -> list[DataFrame]:
    """People a new or corrected announcement, case, border county or venue touches (with every version of a
    corrected one); the cells of cases: dwell_phones. `ch`: `changed` of every feed read here."""
    ann, cases_new, venues_new = ch["risk_announcements"], ch["case_reports"], ch["venues"]
    # a case's county is read only by ① (local cases outside the home region: one in Beijing would otherwise take
    # in everyone who was in its district); a venue's place only for the people who scanned it (below)
    case_counties = cases_new.where((F.col("case_type") == "local") & ~F.col("county_code").startswith(home_prefix))
    c6 = (
        ann.select(F.substring("area_code", 1, 6).alias("c"))
        .unionByName(case_counties.select(F.col("county_code").alias("c")))
        .unionByName(ch["border_port_counties"].select(F.col("county_code").alias("c")))
        .distinct()
    )
    c4 = (
        ann.where(~F.col("area_code").startswith(home_prefix))
        .select(F.substring("area_code", 1, 4).alias("c"))
        .distinct()
    )
    c6b, c4b = F.broadcast(c6), F.broadcast(c4)

    def present(df: DataFrame, col: str) -> DataFrame:
        return df.join(c6b, F.col(col) == F.col("c"), "left_semi").unionByName(
            df.join(c4b, F.substring(col, 1, 4) == F.col("c"), "left_semi")
        )

    stays = b["telecom_stays"]
    out = [_persons_of_phones(present(stays, "county_code"), links)]
    tk = b["tickets"]
    out += [present(tk, "origin_county").select("person_id"), present(tk, "dest_county").select("person_id")]
    venues = b["venues"]
    touched_venues = venues.join(c6b, F.col("county_code") == F.col("c"), "left_semi").select("venue_id")
    decl = b["trip_declarations"].select("person_id", F.explode_outer("counties").alias("county"))
    out.append(decl.join(c6b, F.col("county") == F.col("c"), "left_semi").select("person_id"))

    # Cases: venues they scanned, when the case or those scans are new or corrected (every version: a case scan
    # moved to another venue withdraws the old venue's co-location reasons).
    cases = b["case_reports"]
    case_ids = cases.where(F.col("person_id").isNotNull()).select("person_id").distinct()
    new_case_ids = cases_new.where(F.col("person_id").isNotNull()).select("person_id").distinct()
    scans = b["venue_scans"]
    case_venues = (
        scans.join(new_case_ids, "person_id", "left_semi")
        .select("venue_id")
        .unionByName(ch["venue_scans"].join(case_ids, "person_id", "left_semi").select("venue_id"))
    )
    venues_all = touched_venues.unionByName(case_venues).unionByName(venues_new.select("venue_id")).distinct()
    out.append(scans.join(lookup(venues_all), "venue_id", "left_semi").select("person_id"))
    return out


def case_phone_set(cases: DataFrame, links: DataFrame) -> DataFrame:
    """Phones of cases: the reported phone and every phone linked to a case's ID."""
    reported = cases.where(F.col("phone").isNotNull()).select("phone")
    linked = links.join(
        cases.where(F.col("person_id").isNotNull()).select("person_id"), "person_id", "left_semi"
    ).select("phone")
    return reported.unionByName(linked).distinct()


def restrict(b: dict[str, DataFrame], keys: DataFrame, raw: dict[str, DataFrame], t: datetime) -> dict[str, DataFrame]:
    """The bronze frames the rules need for the people in `keys`, plus the cases' own rows (the co-location
    and companion rules read them); shared context (announcements, cases, venues, persons) stays whole.
    `b` holds the other feeds as of T; the NARROWED feeds come in `raw`, bronze as stored, and only their rows
    of the wanted people and phones are taken as of T: the whole feeds (most of bronze) are never windowed or
    cached. Grid dwells only in the cells a case phone dwelt in, as the full screen takes them: the companion
    rule, their only reader, pairs nothing elsewhere (in a quiet hour about 1 % of the rows)."""
    cases = b["case_reports"].where(F.col("person_id").isNotNull())
    wanted = (
        keys.select("person_key")
        .unionByName(cases.select(person_key(F.col("person_id")).alias("person_key")))
        .distinct()
    )
    wanted = cut(wanted)
    links = cut(linked_phones(b["kit_bindings"], b["phone_registrations"]))
    phones = (
        by_person(links, wanted)
        .select("phone")
        .unionByName(b["case_reports"].where(F.col("phone").isNotNull()).select("phone"))
        .distinct()
    )
    phones = cut(phones)

    def narrow(f: str) -> DataFrame:
        if f == "grid_dwells":  # as the full screen takes it (screen.inputs), for these phones
            return cut(companion.dwells_in_case_cells(raw[f], links, b["case_reports"], t, phones))
        if f in PHONE_FEEDS:
            return cut(as_of_for(raw[f], f, t, phones, "phone"))
        return cut(persons_as_of(raw[f], f, t, wanted) if f in NARROWED else by_person(b[f], wanted))

    return {**b, **each_of(narrow, PHONE_FEEDS + PERSON_FEEDS)}  # the biggest first: the small ones fill in beside it


def by_person(df: DataFrame, keys: DataFrame) -> DataFrame:
    pk = keys.select(F.col("person_key").alias("_pk"))
    return df.withColumn("_pk", person_key(F.col("person_id"))).join(pk, "_pk", "left_semi").drop("_pk")


def persons_as_of(raw: DataFrame, feed: str, t: datetime, keys: DataFrame) -> DataFrame:
    """as_of(raw, feed, t) for the people in `keys` only (asof.as_of_for on the person key)."""
    pk = keys.select(F.col("person_key").alias("_pk"))
    rows = raw.withColumn("_pk", person_key(F.col("person_id")))
    return as_of_for(rows, feed, t, pk, "_pk").drop("_pk")
