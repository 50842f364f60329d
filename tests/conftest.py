"""One Spark session (with Delta) for the whole test run: local[2], few partitions, UI off."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("SCREENING_SHUFFLE_PARTITIONS", "2")
# The tests' own session is classic; tests/e2e/test_engine.py and the Airflow end-to-end test start an engine of their own.
os.environ.pop("SCREENING_SPARK_REMOTE", None)
os.environ.setdefault("SCREENING_PII_KEY", "test-key")
# The Great Expectations suites cost minutes per run: on for test_dq and the end-to-end run, off elsewhere.
os.environ.setdefault("SCREENING_DQ_SUITES", "0")


@pytest.fixture(scope="session")
def spark():
    from jobs.spark import get_spark

    session = get_spark("screening-tests", testing=True)
    yield session
    session.stop()


@pytest.fixture(scope="module")
def small_jobs(spark):
    """One shuffle partition and no AQE for a module of tiny in-process runs (faster; restored after). Modules
    take it with `pytestmark = [..., pytest.mark.usefixtures("small_jobs")]`."""
    conf = {"spark.sql.shuffle.partitions": "1", "spark.sql.adaptive.enabled": "false"}
    old = {k: spark.conf.get(k) for k in conf}
    for k, v in conf.items():
        spark.conf.set(k, v)
    yield
    for k, v in old.items():
        spark.conf.set(k, v)
