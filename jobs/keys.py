"""Person keys (HMAC-SHA256 of the ID number) and masking, as Spark expressions."""

from __future__ import annotations

import hashlib
import hmac
import logging

from pyspark.sql import Column
from pyspark.sql import functions as F

from jobs.settings import settings

DEV_KEY = "screening-development-key-not-for-production"
_warned = False


MIN_PRODUCTION_KEY_CHARS = 32


def pii_key() -> bytes:
    """The HMAC key. The `production` profile (SCREENING_PROFILE=production) refuses to start without a real
    key; anywhere else a missing key falls back to the documented development key, with a loud warning."""
    global _warned
    s = settings()
    key = s.pii_key or ""
    if s.profile == "production":
        if not key or key == DEV_KEY or len(key) < MIN_PRODUCTION_KEY_CHARS:
            raise SystemExit(
                "SCREENING_PROFILE=production needs SCREENING_PII_KEY set to a secret of at least "
                f"{MIN_PRODUCTION_KEY_CHARS} characters (not the development key); refusing to start"
            )
    if not key or key == DEV_KEY:
        if not _warned:
            logging.getLogger("screening").warning(
                "!!! SCREENING_PII_KEY is not set: person keys use the PUBLIC development key, so anyone can "
                "re-identify people from them. Never run production data like this. !!!"
            )
            _warned = True
        key = DEV_KEY
    return key.encode("utf-8")


def person_key_py(person_id: str) -> str:
    return hmac.new(pii_key(), person_id.encode("utf-8"), hashlib.sha256).hexdigest()


def person_key(pid: Column) -> Column:
    """HMAC-SHA256 in Spark SQL (no Python UDF): H((K^opad) || H((K^ipad) || m))."""
    key = pii_key()
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    ipad = bytes(b ^ 0x36 for b in key)
    opad = bytes(b ^ 0x5C for b in key)
    inner = F.unhex(F.sha2(F.concat(F.lit(ipad), F.encode(pid, "UTF-8")), 256))
    return F.sha2(F.concat(F.lit(opad), inner), 256)


def mask_phone(phone: Column) -> Column:
    return F.concat(F.substring(phone, 1, 3), F.lit("****"), F.substring(phone, 8, 4))


def mask_id(pid: Column) -> Column:
    return F.concat(F.substring(pid, 1, 6), F.lit("********"), F.substring(pid, 15, 4))
