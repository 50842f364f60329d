"""A long ingest says where it is: one line per feed as it finishes; a small delivery stays quiet."""

from __future__ import annotations

import re

from jobs.ingest.job import SMALL_DELIVERY_BYTES, FeedReport, Progress


def _work(tmp_path, feed: str, size: int):
    p = tmp_path / f"{feed}.csv"
    p.write_bytes(b"x" * size)
    return feed, [(p, "digest")], FeedReport()


def _ingest(rows: dict[str, int]):
    def fn(feed, todo, rep):
        rep.rows, rep.rejected = rows[feed], 1

    return fn


def test_a_long_ingest_logs_each_feed_as_it_finishes_with_the_share_done(tmp_path):
    half = SMALL_DELIVERY_BYTES
    work = [_work(tmp_path, "grid_dwells", 3 * half), _work(tmp_path, "persons", half)]
    lines: list[str] = []
    progress = Progress(lines.append, len(work), 4 * half)
    for w in work:
        progress.run(_ingest({"grid_dwells": 2_300_000, "persons": 12}), w)
    assert [re.sub(r"\d+ s", "N s", x) for x in lines] == [
        "ingest: grid_dwells done, 2,300,000 rows (1 rejected) in N s; 1 of 2 feeds, 75% of the bytes, N s in",
        "ingest: persons done, 12 rows (1 rejected) in N s; 2 of 2 feeds, 100% of the bytes, N s in",
    ]


def test_a_small_delivery_ingests_without_progress_lines(tmp_path):
    work = [_work(tmp_path, "grid_dwells", 10), _work(tmp_path, "persons", 10)]
    lines: list[str] = []
    progress = Progress(lines.append, len(work), 20)
    for w in work:
        progress.run(_ingest({"grid_dwells": 5, "persons": 1}), w)
    assert lines == [] and work[0][2].rows == 5  # the feeds were still ingested


def test_the_ingest_table_keeps_a_city_days_nine_digit_counts_apart():
    from jobs.run import print_ingest

    big = FeedReport(files=14, rows=292_312_583, loaded=292_312_583)
    small = FeedReport(files=14, rows=334, loaded=322, rejected=12)
    lines: list[str] = []
    print_ingest({"grid_dwells": big, "case_reports": small}, lines.append)
    assert [line.split() for line in lines] == [
        ["feed", "files", "skipped", "rows", "loaded", "rejected", "late"],
        ["case_reports", "14", "0", "334", "322", "12", "0"],
        ["grid_dwells", "14", "0", "292312583", "292312583", "0", "0"],
        ["total", "28", "0", "292312917", "292312905", "12", "0"],
    ]
    assert lines[0].index("rows") + len("rows") == lines[2].index("292312583") + len("292312583")  # right-aligned
