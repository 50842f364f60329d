"""The DAGs keep copies of the job's constants (they must not import the pipeline at parse time): pinned here."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

from jobs import engine, run
from jobs.asof_time import parse_as_of
from jobs.runlog import RunContext

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "dags"))
import screening_common as common  # noqa: E402  (the DAG folder is on the path only for this)


def test_the_dags_run_the_jobs_stages_in_the_jobs_order():
    assert common.STAGES == run.STAGES
    assert common.GATE_STAGES == run.GATE_STAGES


def test_the_dags_read_the_jobs_exit_codes():
    assert (common.EXIT_HALTED, common.EXIT_LOCKED) == (run.EXIT_HALTED, run.EXIT_LOCKED)


def test_the_dags_run_id_is_the_run_id_the_job_records_for_the_as_of_the_dag_passes():
    end = datetime(2022, 5, 3, 5, 10, tzinfo=UTC)  # 13:10 in Beijing
    for mode in ("nightly", "hourly"):
        context = {"dag": SimpleNamespace(dag_id=f"screening_{mode}"), "data_interval_end": end}
        job = RunContext(spark=None, lake=None, landing="", as_of=parse_as_of(common.shanghai(end)), mode=mode)
        assert common.run_id_of(context) == job.run_id == f"{mode}-20220503T131000"


def test_the_dags_default_engine_address_is_the_port_the_engine_starts_on():
    assert common.DEFAULT_REMOTE == f"sc://127.0.0.1:{engine.DEFAULT_PORT}"
