"""One Spark session (with Delta) for the whole test run: local[2], few partitions, UI off. With `--engine` it is a
thin client of a test engine (one warm JVM in `.engine-test/`, apart from the operator's `.engine/`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("SCREENING_SHUFFLE_PARTITIONS", "2")
# The tests' own session is classic unless `--engine` is given; tests/e2e/test_engine.py and the Airflow end-to-end
# test start an engine of their own.
os.environ.pop("SCREENING_SPARK_REMOTE", None)
os.environ.setdefault("SCREENING_PII_KEY", "test-key")
# The Great Expectations suites cost minutes per run: on for test_dq and the end-to-end run, off elsewhere.
os.environ.setdefault("SCREENING_DQ_SUITES", "0")


TEST_ENGINE = Path(__file__).resolve().parent.parent / ".engine-test"
_STOP_ENGINE = pytest.StashKey[bool]()


def pytest_addoption(parser):
    parser.addoption(
        "--engine",
        choices=("off", "warm", "once"),
        default="off",
        help="the session is a thin client of the test engine in .engine-test/, started unless it is up: "
        "'warm' leaves it up for the next run (make test-fast), 'once' stops it at the end if this run started it",
    )


def pytest_configure(config):
    mode = config.getoption("--engine")
    if mode == "off":
        return
    from jobs import engine

    started = engine.status(TEST_ENGINE) is None
    # a free port: another clone's test engine or the operator's engine may hold the usual one
    st = engine.start(engine.free_port() if started else None, testing=True, folder=TEST_ENGINE, log=lambda *_: None)
    os.environ["SCREENING_SPARK_REMOTE"] = engine.remote_url(st.port)
    config.stash[_STOP_ENGINE] = mode == "once" and started


def pytest_unconfigure(config):
    if config.stash.get(_STOP_ENGINE, False):
        from jobs import engine

        engine.stop(TEST_ENGINE, log=lambda *_: None)


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
