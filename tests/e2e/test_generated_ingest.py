"""The generator against the ingest: every file `jobs.devtools.generate` writes passes ingest, and exactly the bad rows
it injected (its manifest) end up in `<lake>/rejects`, each with its line verbatim; every other row reaches
bronze, one row per (key, knowledge time) as spec/feeds.md and rules.md ("Precise semantics") ask.

One small landing set (sf 0.001, 2 days, a raised bad-row share so most reject reasons occur more than once)
is generated and ingested once for the module; the expected counts are worked out from the CSV files with
the csv module, not with the ingest code.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from jobs import schemas
from jobs.devtools.generate import generate
from jobs.ingest.job import Ingestor
from jobs.lake import Lake

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("small_jobs")]  # minutes of Spark: deselect with -m "not slow"

START = date(2022, 5, 1)
DAYS = 2
SF = 0.001
BAD_SHARE = 0.01
RUN_ID = "test-ingest"
# The reasons the generator injects (jobs.devtools.generate.defects.REASONS), written out so a dropped kind fails here.
INJECTED_REASONS = {
    "bad_type",
    "bad_id_checksum",
    "bad_id_birth_date",
    "bad_id_format",
    "unknown_county_code",
    "unknown_community_code",
    "bad_phone",
    "unknown_enum",
    "end_before_start",
    "observed_after_knowledge",
    "missing_key",
    "unknown_street_code",
}


@pytest.fixture(scope="module")
def ingested(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("generated_ingest")
    landing = root / "landing"
    generate(landing, sf=SF, start=START, days=DAYS, seed=11, bad_share=BAD_SHARE, log=lambda *_: None)
    manifest = json.loads((landing / "_generated" / "manifest.json").read_text(encoding="utf-8"))
    lake = Lake(root / "lake")
    reports = Ingestor(spark, lake, landing, RUN_ID, None, log=lambda *_: None).run()
    rejects = [r.asDict() for r in spark.read.format("delta").load(lake.gold("rejects")).collect()]
    bronze = {f: spark.read.format("delta").load(lake.bronze(f)).count() for f in schemas.FEEDS}
    bronze["telecom_stays record_ids"] = (
        spark.read.format("delta").load(lake.bronze("telecom_stays")).select("record_id").distinct().count()
    )
    return landing, manifest, reports, rejects, bronze


def csv_rows(landing: Path, feed: str):
    """(file relative to landing, physical line, row dict) of every data row of a feed's landed files."""
    for path in sorted((landing / feed).glob("*.csv")):
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            for row in reader:
                yield f"{feed}/{path.name}", reader.line_num, row


def physical_lines(landing: Path, rel: str) -> list[str]:
    return (landing / rel).read_text(encoding="utf-8-sig").split("\n")


def test_generated_files_pass_ingest_with_exactly_the_injected_bad_rows_rejected(ingested):
    landing, manifest, reports, rejects, _ = ingested
    expected = {(b["feed"], b["file"], b["line"], b["reason"]) for b in manifest["bad_rows"]}
    got = [(r["feed"], r["file"], r["line"], r["reason"]) for r in rejects]
    # the data set is not trivial: every injected kind occurs, and bad rows are spread over feeds and days
    assert {b["reason"] for b in manifest["bad_rows"]} == INJECTED_REASONS
    assert len({b["feed"] for b in manifest["bad_rows"]}) >= 8
    assert {b["file"][-12:-4] for b in manifest["bad_rows"]} == {"20220501", "20220502"}
    assert len(got) == len(set(got)), "a bad row was rejected twice"
    assert set(got) == expected, (
        f"rejected but not injected: {sorted(set(got) - expected)}; injected but not rejected: {sorted(expected - set(got))}"
    )
    # no whole file is rejected, and every reject keeps its line verbatim and names the run
    assert all(r["line"] >= 2 for r in rejects)
    lines = {}
    for r in rejects:
        text = lines.setdefault(r["file"], physical_lines(landing, r["file"]))
        assert r["raw_row"] == text[r["line"] - 1], (r["file"], r["line"])
        assert r["run_id"] == RUN_ID
        assert r["detail"]
    # the ingest's own report agrees with the manifest, feed by feed
    summary = manifest["summary"]
    assert set(reports) == set(schemas.FEEDS)
    for feed, rep in reports.items():
        assert (rep.files, rep.skipped, rep.rows, rep.rejected, rep.late, rep.rejected_files) == (
            summary[feed]["files"],
            0,
            summary[feed]["rows"],
            summary[feed]["bad_rows"],
            0,
            [],
        ), feed


def test_every_feed_reaches_bronze_minus_its_bad_rows_one_row_per_key_and_knowledge_time(ingested):
    landing, manifest, _, _, bronze = ingested
    bad = {(b["file"], b["line"]) for b in manifest["bad_rows"]}
    dedup = {}
    for feed in schemas.FEEDS:
        spec = schemas.feed_spec(feed)
        cols = [*spec["key"], spec["knowledge_time"]]  # for two-event feeds the start time is part of the key
        keys = Counter()
        n_good = 0
        for rel, line, row in csv_rows(landing, feed):
            if (rel, line) in bad:
                continue
            n_good += 1
            keys[tuple(row[c].strip().upper() if c == "person_id" else row[c].strip() for c in cols)] += 1
        s = manifest["summary"][feed]
        assert n_good == s["rows"] - s["bad_rows"], feed
        dedup[feed] = n_good - len(keys)
        assert bronze[feed] == s["rows"] - s["bad_rows"] - dedup[feed], feed
    # The only rows sharing a key + knowledge time are re-deliveries of a Kit binding that carry its unbinding
    # (same person, phone and bound_at): bronze keeps one row per binding.
    assert {f: n for f, n in dedup.items() if n} == {"kit_bindings": 1}
    assert all(bronze[f] > 0 for f in schemas.FEEDS)
    # An open telecom stay re-reported later (same record_id, later reported_at) is a second version, not a dup.
    ids = Counter(row["record_id"] for rel, line, row in csv_rows(landing, "telecom_stays") if (rel, line) not in bad)
    assert sum(1 for n in ids.values() if n > 1) > 0
    assert bronze["telecom_stays record_ids"] == len(ids)
