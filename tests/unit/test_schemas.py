"""Schemas: one per table, used by readers and writers; the checked-in data dictionary is current."""

from __future__ import annotations

from jobs import ROOT
from jobs.schemas import FEEDS, GOLD, bronze_partition, bronze_schema, data_dictionary, feed_spec, gold_schema


def test_data_dictionary_is_current():
    checked_in = (ROOT / "docs" / "data_dictionary.md").read_text(encoding="utf-8")
    assert checked_in == data_dictionary(), "run: .venv/bin/screening schemas --output docs/data_dictionary.md"


def test_every_feed_of_feeds_md_has_a_schema_with_its_columns():
    spec = ROOT.parent / "shared" / "spec" / "feeds.md"
    if spec.exists():  # the contract sits beside the repo in development and CI
        text = spec.read_text(encoding="utf-8")
        for feed in FEEDS:
            assert f"| `{feed}`" in text
            row = next(line for line in text.splitlines() if line.startswith(f"| `{feed}`"))
            for col in feed_spec(feed)["columns"]:
                assert col["name"] in row, (feed, col["name"])
    assert len(FEEDS) == 20


def test_bronze_tables_carry_knowledge_time_and_provenance():
    for feed in FEEDS:
        names = bronze_schema(feed).fieldNames()
        assert {"_known_at", "_source_known_at", "_file", "_line", "_run_id"} <= set(names)
        assert ("_end_known_at" in names) == (feed in ("kit_bindings", "phone_registrations"))


def test_gold_tables_of_outputs_md_have_schemas_without_raw_ids():
    assert {
        "popup_reasons",
        "popup_status",
        "assignment_list",
        "release_list",
        "dispatch_list",
        "run_log",
        "rejects",
    } <= set(GOLD)
    for table in ("popup_reasons", "popup_status", "assignment_list", "release_list", "dispatch_list"):
        names = gold_schema(table).fieldNames()
        assert "person_key" in names and "person_id" not in names


def test_event_feeds_are_laid_out_by_knowledge_date_and_reference_feeds_are_not():
    """A reference feed's knowledge times span years (a partition per day would be thousands of tiny files)."""
    by_day = {f for f in FEEDS if bronze_partition(f)}
    assert by_day == {
        "case_reports",
        "clinic_visits",
        "drug_purchases",
        "grid_dwells",
        "inbound_entries",
        "nat_results",
        "nat_samples",
        "telecom_stays",
        "tickets",
        "trip_declarations",
        "venue_scans",
        "verifications",
    }
    for feed in FEEDS:
        assert ("_known_date" in bronze_schema(feed).fieldNames()) == (feed in by_day), feed
