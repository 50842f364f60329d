"""`screening bench` at the smallest scale: it prints its table and writes its JSON (#7 asks no more of it in CI;
the figures themselves depend on the machine and belong in docs/scaling.md, not in asserts). Two of the four
scenarios, to keep it to about a minute and a half: every scenario is a whole run (all four took 5.5 minutes)."""

from __future__ import annotations

import json
import re
import shutil
import sys
from datetime import date, datetime
from pathlib import Path

import pytest

import jobs.run
from jobs.cli import main
from jobs.devtools import bench

STAGES = ["initial (2 days, nightly)", "companion rule (3d) alone"]


def test_bench_command_prints_a_row_per_scenario_and_writes_its_json(spark, tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        main(
            [
                "bench",
                "--sf",
                "0.0005",
                "--days",
                "2",
                "--grid-split",
                "2",
                "--repeat",
                "1",
                "--only",
                "initial",
                "--only",
                "companion",
                "--fresh-process",
                "--work",
                str(tmp_path / "work"),
                "--results",
                str(tmp_path / "results"),
            ]
        )
    assert done.value.code == 0
    out = capsys.readouterr().out.splitlines()

    head = next(i for i, line in enumerate(out) if line.startswith("bench sf=0.0005 "))
    assert out[head + 1].split() == ["stage", "rows", "in", "rows", "out", "wall", "s", "rows/s", "peak", "MB"]
    table = out[head + 2 :]
    rows = [line for line in table if not line.startswith("    of which ")]
    assert len(rows) == 3 and rows[2].startswith("results: ")
    for line, stage in zip(rows, STAGES, strict=False):
        assert line.startswith(stage) and len(line.removeprefix(stage).split()) == 5  # rows in/out, s, rows/s, MB
    # the initial run's stage breakdown, read from the output of its own `screening run` process
    assert table[1].startswith("    of which ingest ") and table[1].endswith("; each run a fresh process")

    path = Path(out[-1].removeprefix("results: "))
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert path.parent == tmp_path / "results" and path.name == f"{saved['commit']}-sf0.0005-d2.json"
    assert (saved["sf"], saved["days"], saved["repeat"], saved["grid_split"]) == (0.0005, 2, 1, 2)
    assert [r["stage"] for r in saved["rows"]] == STAGES
    for r in saved["rows"]:
        assert r["rows_in"] > 0 and r["wall_s"] > 0 and r["peak_driver_mb"] > 0 and len(r["runs_s"]) == 1
    initial = saved["rows"][0]
    assert set(initial["stages_s"]) == {"ingest", "dq_feeds", "screen", "dq_results", "publish"}
    assert initial["rows_out"] > 0, "the run published reasons"
    assert initial["fresh_process"] and "fresh_process" not in saved["rows"][1], "the companion rule runs in the bench"
    assert not list((tmp_path / "work" / "scratch").glob("*-r0")), "the per-run copies are removed"


def test_a_second_bench_run_of_the_same_commit_keeps_the_other_scenarios_in_its_json(tmp_path):
    def result(rows):
        return {"commit": "abc", "sf": 0.01, "days": 14, "rows": [{"stage": s, "wall_s": w} for s, w in rows]}

    bench.write_result(result([("steady nightly (+1 day)", 159.3), ("hourly (+1 hour)", 130.0)]), tmp_path)
    path = bench.write_result(result([("hourly (+1 hour)", 127.5)]), tmp_path)
    assert path.name == "abc-sf0.01-d14.json"
    assert json.loads(path.read_text(encoding="utf-8"))["rows"] == [
        {"stage": "steady nightly (+1 day)", "wall_s": 159.3},
        {"stage": "hourly (+1 hour)", "wall_s": 127.5},
    ]


def test_an_hour_slice_with_a_lower_bound_lands_only_rows_first_fully_known_in_that_hour(tmp_path):
    src = tmp_path / "src" / "grid_dwells"
    src.mkdir(parents=True)
    header = "record_id,phone,grid_id,start_at,end_at,reported_at\n"
    known = {
        "morning": "13:59:59",
        "at_two": "14:00:00",
        "in_hour": "14:30:00",
        "at_three": "15:00:00",
        "late": "15:00:01",
    }
    (src / "grid_dwells_20220515.csv").write_text(
        header
        + "".join(
            f"{rid},13800000000,G1,2022-05-15T10:00:00,2022-05-15T11:00:00,2022-05-15T{k}\n" for rid, k in known.items()
        )
    )
    (src / "grid_dwells_20220514.csv").write_text(
        header + "other_day,13800000000,G1,2022-05-14T10:00:00,2022-05-14T11:00:00,2022-05-15T14:10:00\n"
    )
    day, two, three = date(2022, 5, 15), datetime(2022, 5, 15, 14), datetime(2022, 5, 15, 15)

    def ids(dst):
        return [line.split(",")[0] for f in sorted(dst.glob("*/*.csv")) for line in f.read_text().splitlines()[1:]]

    assert bench.hour_slice(tmp_path / "src", tmp_path / "morning", day, two) == 2
    assert ids(tmp_path / "morning") == ["morning", "at_two"]
    assert bench.hour_slice(tmp_path / "src", tmp_path / "hour", day, three, after=two) == 2
    assert ids(tmp_path / "hour") == ["in_hour", "at_three"]
    assert (tmp_path / "hour" / "grid_dwells" / "grid_dwells_20220515_h15.csv").exists()


def test_a_prepared_lake_is_reused_only_when_asked_and_only_if_made_from_the_same_landing_and_as_of(
    tmp_path, monkeypatch
):
    runs: list[datetime] = []

    def fake_run(landing, lake, as_of, mode, log):  # preparing is a nightly run; here it only leaves a lake behind
        runs.append(as_of)
        Path(lake).mkdir(parents=True)
        return 0

    monkeypatch.setattr(jobs.run, "run", fake_run)
    monkeypatch.setattr(bench, "commit", lambda: "c1")
    src = tmp_path / "landing-set"
    (src / "grid_dwells").mkdir(parents=True)
    (src / "grid_dwells" / "grid_dwells_20220501.csv").write_text("record_id\nr1\n", encoding="utf-8")
    day, t, later = date(2022, 5, 1), datetime(2022, 5, 2), datetime(2022, 5, 3)

    assert bench.prepare(tmp_path, src, "initial", day, t)[2]["commit"] == "c1"
    monkeypatch.setattr(bench, "commit", lambda: "c2")
    assert bench.prepare(tmp_path, src, "initial", day, t)[2]["commit"] == "c2", "without reuse it is rebuilt"
    assert bench.prepare(tmp_path, src, "initial", day, t, reuse=True)[2]["commit"] == "c2"
    assert runs == [t, t], "the third call reused the second's lake"
    assert bench.prepare(tmp_path, src, "initial", day, later, reuse=True)[2]["as_of"] == later.isoformat()
    assert runs == [t, t, later], "a lake run at another as-of is not reused"
    other = tmp_path / "landing-set-2"
    shutil.copytree(src, other)
    bench.prepare(tmp_path, other, "initial", day, later, reuse=True)
    assert len(runs) == 4, "nor one made from another landing set"


def test_a_run_timed_per_stage_is_one_screening_stage_process_per_airflow_task_but_maintenance(tmp_path):
    t = datetime(2022, 5, 15, 1)
    run = bench.commands(tmp_path / "landing", tmp_path / "lake", t, "hourly")
    staged = bench.commands(tmp_path / "landing", tmp_path / "lake", t, "hourly", per_stage=True)
    assert [(name, argv[3:5]) for name, argv in run] == [("run", ["run", "--landing"])]
    assert [(name, argv[3:5]) for name, argv in staged] == [
        ("ingest", ["stage", "ingest"]),
        ("dq_feeds", ["stage", "dq-feeds"]),
        ("screen", ["stage", "screen"]),
        ("dq_results", ["stage", "dq-results"]),
        ("publish", ["stage", "publish"]),
    ]
    tail = [
        "--landing",
        str(tmp_path / "landing"),
        "--lake",
        str(tmp_path / "lake"),
        "--as-of",
        "2022-05-15T01:00:00",
        "--mode",
        "hourly",
    ]
    assert all(argv[-8:] == tail for _, argv in run + staged)


def test_a_run_timed_per_stage_reports_each_process_wall_time_and_stops_at_the_first_failing_stage(
    tmp_path, monkeypatch
):
    def py(code: str) -> list[str]:
        return [sys.executable, "-c", code]

    never = tmp_path / "third stage ran"
    monkeypatch.setattr(
        bench,
        "commands",
        lambda *a, **k: [
            ("ingest", py("print('stage ingest: 99 s'); print('ingested')")),
            ("dq_feeds", py("import sys; print('halted by gate X'); sys.exit(3)")),
            ("screen", py(f"open({str(never)!r}, 'w')")),
        ],
    )
    lines: list[str] = []
    code, _ = bench.run_fresh(tmp_path, tmp_path, datetime(2022, 5, 15, 1), "hourly", lines.append, per_stage=True)
    assert code == 3 and not never.exists()
    assert lines[0] == "ingested" and lines[2] == "halted by gate X", "the stage's own timing line is replaced"
    walls = [re.fullmatch(r"stage (\w+): (\d+) s", line) for line in (lines[1], lines[3])]
    assert [m[1] for m in walls] == ["ingest", "dq_feeds"] and len(lines) == 4
    assert int(walls[0][2]) < 99, "the process's wall time, not what the process said of itself"


def test_a_timed_run_s_copy_shares_the_prepared_lake_s_parquet_files_but_not_the_files_a_run_rewrites(tmp_path):
    base = tmp_path / "initial"
    table = base / "lake" / "bronze" / "tickets"
    (table / "_delta_log").mkdir(parents=True)
    (base / "landing").mkdir()
    (table / "part-0.parquet").write_bytes(b"PAR1")
    (table / "_delta_log" / "00000.json").write_text("{}", encoding="utf-8")
    (base / "lake" / "run.lock").write_text("free", encoding="utf-8")

    _, lake = bench.restore(base, "h0")
    (lake / "run.lock").write_text("held", encoding="utf-8")  # a run rewrites files of its copy in place
    (lake / "bronze" / "tickets" / "_delta_log" / "00000.json").write_text("[]", encoding="utf-8")

    assert (base / "lake" / "run.lock").read_text(encoding="utf-8") == "free"
    assert (table / "_delta_log" / "00000.json").read_text(encoding="utf-8") == "{}"
    copied = lake / "bronze" / "tickets" / "part-0.parquet"
    assert copied.stat().st_ino == (table / "part-0.parquet").stat().st_ino, "a Parquet file is linked, not copied"
