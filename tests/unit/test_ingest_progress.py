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
