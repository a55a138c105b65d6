"""Conversions between aware datetimes and the integer Unix milliseconds (UTC) the host stores."""

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MILLISECOND = timedelta(milliseconds=1)
HOUR_MS = 3600 * 1000
DAY_MS = 24 * HOUR_MS


def to_ms(moment: datetime) -> int:
    """Exact Unix milliseconds of an aware datetime (sub-millisecond parts are floored)."""
    return (moment - EPOCH) // MILLISECOND


def from_ms(ms: int) -> datetime:
    return EPOCH + ms * MILLISECOND
