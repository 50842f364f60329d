"""The Spark settings of jobs/spark.py that change how queries run (no session needed)."""

from __future__ import annotations

import pytest

from jobs.spark import builder_config

CODEGEN = ("spark.sql.codegen.wholeStage", "spark.sql.codegen.factoryMode")


def codegen(conf: dict) -> tuple:
    return tuple(conf.get(k) for k in CODEGEN)


def test_code_generation_is_on_for_runs_and_off_for_the_tests_small_frames(monkeypatch):
    monkeypatch.delenv("SCREENING_CODEGEN", raising=False)
    assert codegen(builder_config("run")) == (None, None)  # Spark's defaults: generated code
    assert codegen(builder_config("tests", testing=True)) == ("false", "NO_CODEGEN")


@pytest.mark.parametrize(
    ("value", "testing", "expected"),
    [
        ("off", False, ("false", "NO_CODEGEN")),  # a small lake (the Airflow end-to-end test, a demo)
        ("on", True, (None, None)),  # the tests with generated code, as production runs
    ],
)
def test_screening_codegen_overrides_the_default(monkeypatch, value, testing, expected):
    monkeypatch.setenv("SCREENING_CODEGEN", value)
    assert codegen(builder_config("x", testing=testing)) == expected


def test_interpreted_turns_generated_code_off_inside_and_gives_the_session_back_as_it_was(spark, monkeypatch):
    from jobs.spark import interpreted

    monkeypatch.delenv("SCREENING_CODEGEN", raising=False)
    before = {k: spark.conf.get(k, None) for k in CODEGEN}
    try:
        spark.conf.set(CODEGEN[0], "true")
        spark.conf.unset(CODEGEN[1])
        with interpreted(spark):
            inside = tuple(spark.conf.get(k, None) for k in CODEGEN)
        assert inside == ("false", "NO_CODEGEN")
        assert tuple(spark.conf.get(k, None) for k in CODEGEN) == ("true", None)
        with interpreted(spark, on=False):
            assert spark.conf.get(CODEGEN[0]) == "true"
        monkeypatch.setenv("SCREENING_CODEGEN", "on")  # the operator's choice holds for the whole process
        with interpreted(spark):
            assert spark.conf.get(CODEGEN[0]) == "true"
    finally:
        for k, v in before.items():
            spark.conf.set(k, v) if v is not None else spark.conf.unset(k)


def test_the_jvm_logs_errors_only_and_spark_log_level_is_set_only_to_raise_it(monkeypatch):
    from jobs.spark import LOG4J

    monkeypatch.delenv("SCREENING_SPARK_LOG_LEVEL", raising=False)
    conf = builder_config()
    assert f"-Dlog4j2.configurationFile={LOG4J}" in conf["spark.driver.extraJavaOptions"].split()
    assert "rootLogger.level = error" in LOG4J.read_text(encoding="utf-8").splitlines()
    assert "spark.log.level" not in conf  # setting it makes Spark print a line at start-up
    monkeypatch.setenv("SCREENING_SPARK_LOG_LEVEL", "warn")
    assert builder_config()["spark.log.level"] == "WARN"


def test_the_jvm_compiles_spark_s_large_generated_methods():
    """HotSpot leaves methods over 8,000 bytes of bytecode interpreted: ingest's checks of a feed ran 3 times
    slower. The flag must reach the driver (local mode runs its tasks there) and the executors."""
    conf = builder_config()
    for key in ("spark.driver.extraJavaOptions", "spark.executor.extraJavaOptions"):
        assert "-XX:-DontCompileHugeMethods" in conf[key].split()


def test_a_full_screen_s_shuffles_start_split_fine_and_a_cluster_s_partitions_are_never_lowered(spark, monkeypatch):
    """Inside `split_shuffles` a shuffle starts at SCREENING_SHUFFLE_SPLIT partitions if set (AQE coalesces the
    small ones): with 8, one sort of the companion rule held ~8 M rows at SF 0.1 with 28 days and failed for want of
    one 128 MB array. Unset, outside, and with on=False (an hourly run), the session is left as it was."""
    from jobs.spark import INITIAL_PARTITIONS, split_shuffles

    before = spark.conf.get(INITIAL_PARTITIONS, None)
    partitions = spark.conf.get("spark.sql.shuffle.partitions")
    try:
        monkeypatch.delenv("SCREENING_SHUFFLE_SPLIT", raising=False)
        with split_shuffles(spark):  # unset: a small lake's shuffles stay few
            assert spark.conf.get(INITIAL_PARTITIONS, None) == before
        monkeypatch.setenv("SCREENING_SHUFFLE_SPLIT", "128")
        with split_shuffles(spark):
            assert spark.conf.get(INITIAL_PARTITIONS) == "128"
        assert spark.conf.get(INITIAL_PARTITIONS, None) == before
        with split_shuffles(spark, on=False):
            assert spark.conf.get(INITIAL_PARTITIONS, None) == before
        spark.conf.set("spark.sql.shuffle.partitions", "2000")  # a cluster's own number stays
        with split_shuffles(spark):
            assert spark.conf.get(INITIAL_PARTITIONS) == "2000"
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", partitions)


def test_the_pandas_buckets_follow_a_split_only_where_aqe_starts_shuffles_at_it(spark, monkeypatch):
    """shuffle_width: the shuffle partitions, the split inside `split_shuffles`, and the shuffle partitions again
    when AQE is off (Spark then ignores its initial number)."""
    from jobs.spark import shuffle_width, split_shuffles

    partitions = int(spark.conf.get("spark.sql.shuffle.partitions"))
    aqe = spark.conf.get("spark.sql.adaptive.enabled")
    monkeypatch.setenv("SCREENING_SHUFFLE_SPLIT", "96")
    assert shuffle_width(spark) == partitions
    try:
        with split_shuffles(spark):
            assert shuffle_width(spark) == 96
            spark.conf.set("spark.sql.adaptive.enabled", "false")
            assert shuffle_width(spark) == partitions
    finally:
        spark.conf.set("spark.sql.adaptive.enabled", aqe)
