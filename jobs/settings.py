"""Every `SCREENING_*` environment variable the `jobs` package reads, parsed and checked in one place.

`settings()` returns them as a frozen `Settings`. It reads the environment anew on every call (two dozen lookups,
microseconds; nothing calls it in a loop): a variable a test sets with monkeypatch, or one a process sets before
starting a child, is seen at once, and there is no cache to go stale or to clear. Nothing else in `jobs/` reads a
`SCREENING_*` variable (tests/unit/test_settings.py checks it); code that *sets* one for a child process (the
engine, the crash drill, the bench) does so in that child's environment as before.

Unset or empty means the default. A bad value stops the command with one line naming the variable and what it
expects (`SettingsError`, a SystemExit; the value of the PII key is never shown). Every variable is in the table
"Settings (environment variables)" of docs/operations.md, with the DAGs' own three (`SCREENING_START_DATE`,
`SCREENING_END_DATE`, `SCREENING_NIGHTLY_CATCHUP`), which dags/screening_common.py reads itself: parsing the DAG
files imports no pipeline code. Standard library only, and no other module of `jobs` (the bottom import layer).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from jobs import ROOT

PREFIX = "SCREENING_"
DEFAULT_ENGINE_PORT = 15002
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")
SPARK_LOG_LEVELS = ("ALL", "DEBUG", "ERROR", "FATAL", "INFO", "OFF", "TRACE", "WARN")  # SparkContext.setLogLevel's
SIZE = re.compile(r"\d+(b|kb?|mb?|gb?|tb?|pb?)?", re.I)  # Spark's byte strings: 2m, 512k, 4g, 4096mb
DURATION = re.compile(r"\d+(us|ms|s|m|min|h|d)?", re.I)  # Spark's time strings: 15m, 900s, 1h


class SettingsError(SystemExit):
    """A `SCREENING_*` variable with a value that does not parse (the command stops with this one line)."""


# -- parsers: the raw text (never empty) to the value, or ValueError("what is expected") -----------------------
def _text(raw: str) -> str:
    return raw


def _path(raw: str) -> Path:
    return Path(raw)


def _flag(raw: str) -> bool:
    value = raw.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ValueError("1 or 0 (also true/false, yes/no, on/off)")


def _whole(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            n = int(raw.strip())
        except ValueError:
            n = None
        if n is None or n < low or (high is not None and n > high):
            raise ValueError(
                f"a whole number from {low} to {high}" if high is not None else f"a whole number of at least {low}"
            )
        return n

    return parse


def _choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip()
        for option in options:
            if value.lower() == option.lower():
                return option
        raise ValueError("one of " + ", ".join(options))

    return parse


def _matching(pattern: re.Pattern, expected: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip()
        if not pattern.fullmatch(value):
            raise ValueError(expected)
        return value

    return parse


def _engine_url(raw: str) -> str:
    value = raw.strip()
    if not value.startswith("sc://") or len(value) == len("sc://"):
        raise ValueError("a Spark Connect address sc://host:port")
    return value


def _setting(default: Any, parse: Callable[[str], Any], meaning: str, *, secret: bool = False) -> Any:
    """A field of Settings: its default (unset or empty), how its text parses, what it means (one line)."""
    return field(default=default, repr=not secret, metadata={"parse": parse, "meaning": meaning, "secret": secret})


@dataclass(frozen=True)
class Settings:
    """The `SCREENING_*` variables, one field each: field `x_y` is the variable `SCREENING_X_Y`."""

    # -- Spark: the session, the warm engine --------------------------------------------------------------------
    spark_remote: str | None = _setting(None, _engine_url, "sc://host:port: every command a thin client of that engine")
    spark_master: str | None = _setting(
        None, _text, "Spark master of a classic session and of the engine (unset: local[*], local[2] in the tests)"
    )
    driver_memory: str = _setting(
        "4g", _matching(SIZE, "a size such as 4g or 4096m"), "heap of the engine, or of a classic session's driver"
    )
    shuffle_partitions: int | None = _setting(
        None, _whole(1), "spark.sql.shuffle.partitions (unset: 8, 4 in the tests)"
    )
    shuffle_split: int | None = _setting(
        None, _whole(1), "partitions a full screen's shuffles start with (unset: the shuffle partitions)"
    )
    codegen: str | None = _setting(
        None,
        _choice("on", "off"),
        "on/off: generated code fixed for the whole process "
        "(unset: on, but off in the tests and while ingesting a small delivery)",
    )
    spark_ui: bool = _setting(False, _flag, "the Spark UI on")
    spark_log_level: str = _setting("ERROR", _choice(*SPARK_LOG_LEVELS), "Spark's log level")
    page_size: str = _setting("2m", _matching(SIZE, "a size such as 2m or 512k"), "spark.buffer.pageSize")
    listing_parallelism: int = _setting(8, _whole(1), "tasks VACUUM lists a table's files in")
    jar_dir: Path = _setting(ROOT / ".cache" / "jars", _path, "where `make setup` put the Delta jars")
    engine_home: Path = _setting(ROOT / ".engine", _path, "the engine's state folder (pid, port, log)")
    engine_port: int = _setting(DEFAULT_ENGINE_PORT, _whole(1, 65535), "the engine's port on 127.0.0.1")
    engine_session_timeout: str = _setting(
        "15m",
        _matching(DURATION, "a duration such as 15m, 900s or 1h"),
        "when the engine frees the session of a client that died",
    )
    # -- the run ---------------------------------------------------------------------------------------------
    lake: Path | None = _setting(None, _path, "the lake, when a command is given no --lake (unset: --lake is required)")
    landing: Path | None = _setting(
        None, _path, "the landing folder, when a command is given no --landing (unset: --landing is required)"
    )
    ingest_threads: int = _setting(3, _whole(1), "feeds ingested at once")
    policy: Path = _setting(ROOT / "policy.toml", _path, "the policy file (its versions over time)")
    dq_gates: Path = _setting(ROOT / "data_quality" / "gates.toml", _path, "the data-quality gates' thresholds")
    dq_suites: bool = _setting(True, _flag, "the Great Expectations suites run (the gates on counts always do)")
    hourly_full: bool = _setting(False, _flag, "an hourly run screens everyone, not only who may have changed")
    # -- personal data, audit ----------------------------------------------------------------------------------
    pii_key: str | None = _setting(
        None, _text, "the HMAC key of person keys (unset: the development key, with a warning)", secret=True
    )
    profile: str = _setting(
        "development", _choice("development", "production"), "production refuses to start without a real PII key"
    )
    operator: str | None = _setting(None, _text, "who is recorded with a gate override (unset: the OS user)")
    sql_allow_pii: bool = _setting(False, _flag, "`screening sql` may read the personal bronze tables and rejects")
    # -- the crash drill (jobs/faults.py) ----------------------------------------------------------------------
    crash_at: str | None = _setting(None, _text, "the fault point where the process dies (jobs.faults.POINTS)")
    crash_target: str = _setting(
        "driver", _choice("driver", "engine"), "what dies there: this process, or the warm engine it is a client of"
    )

    @staticmethod
    def variable(name: str) -> str:
        """The environment variable of field `name`."""
        return PREFIX + name.upper()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """Parse every variable of `environ`; a bad value raises SettingsError naming each bad one on one line."""
        values, bad = {}, []
        for f in fields(cls):
            name = cls.variable(f.name)
            raw = environ.get(name, "")
            if raw == "":
                continue
            try:
                values[f.name] = f.metadata["parse"](raw)
            except ValueError as e:
                shown = "" if f.metadata["secret"] else f"={raw!r}"
                bad.append(f"{name}{shown}: expected {e}")
        if bad:
            raise SettingsError("bad setting: " + "; ".join(bad))
        return cls(**values)


def path_option(parser, name: str, help: str) -> None:
    """Add --lake or --landing to an argparse parser: SCREENING_LAKE / SCREENING_LANDING when set, else required."""
    default = getattr(settings(), name)
    parser.add_argument(
        f"--{name}",
        default=None if default is None else str(default),
        required=default is None,
        help=f"{help} (default: ${Settings.variable(name)}, which is {'set' if default else 'unset'})",
    )


def settings() -> Settings:
    """The settings as the environment holds them now (read on each call: see the module's docstring)."""
    return Settings.from_env(os.environ)
