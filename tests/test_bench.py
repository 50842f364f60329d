"""`screening bench` at a tiny scale (CI): it runs every scenario once and prints its table and JSON.
Runs as its own process (the bench makes its own Spark session)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_bench_prints_a_table_row_per_scenario_and_writes_json(tmp_path):
    out = subprocess.run(
        [str(Path(sys.executable).parent / "screening"), "bench", "--sf", "0.0003", "--days", "2", "--repeat", "1",
         "--work", str(tmp_path / "work"), "--results", str(tmp_path / "results")],
        capture_output=True, text=True, cwd=ROOT, timeout=3600)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("stage"))
    assert lines[head].split() == ["stage", "rows", "in", "rows", "out", "wall", "s", "rows/s", "peak", "MB"]
    stages = [line[:28].strip() for line in lines[head + 1:head + 5]]
    assert stages == ["initial (2 days, nightly)", "steady nightly (+1 day)", "hourly (+1 hour)", "companion rule (3d) alone"]
    (path,) = (tmp_path / "results").glob("*-sf0.0003-d2.json")
    result = json.loads(path.read_text())
    assert [r["stage"] for r in result["rows"]] == stages
    assert all(r["rows_in"] > 0 and r["wall_s"] > 0 and r["peak_driver_mb"] > 0 for r in result["rows"])
