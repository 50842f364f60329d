"""The as-of instant as the command line gives it: ISO-8601, local time (Asia/Shanghai) when it has no offset.

Plain Python on purpose (no pyspark): the CLI parses `--as-of` with it, and `jobs.asof` (bronze as known at T)
is the Spark side of the same idea.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

LOCAL = ZoneInfo("Asia/Shanghai")


def parse_as_of(text: str, flag: str = "--as-of") -> datetime:
    """ISO-8601; local (Asia/Shanghai) when no offset. Returned as naive local time (the Spark session's zone).
    A bad value stops the command with one line naming `flag`."""
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        raise SystemExit(f"{flag} {text!r} is not an ISO-8601 timestamp (e.g. 2022-05-15T01:00:00)") from None
    if ts.tzinfo is not None:
        ts = ts.astimezone(LOCAL).replace(tzinfo=None)
    return ts
