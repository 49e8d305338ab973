"""Time-zone helpers: loading IANA zones strictly and local-day bounds. The only place besides
the schedule math that reasons in wall-clock time."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from functools import lru_cache

UTC = dt.UTC


# Names that load but do not say where the user is: the server's own zone, or no zone at all.
_REFUSED = frozenset({"Local", "localtime", "Factory"})


class InvalidZoneError(ValueError):
    """The name is not an IANA zone recapd accepts."""


@lru_cache(maxsize=1024)
def load_zone(name: str) -> zoneinfo.ZoneInfo:
    """Load an IANA zone by name; empty, `Local`, `localtime`, `Factory` and unknown are refused.

    The original falls back to UTC or to the server's zone for these; recapd never guesses.
    """
    if not name or name.strip() != name or name in _REFUSED:
        raise InvalidZoneError(f"{name!r} is not an IANA time zone name")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise InvalidZoneError(f"{name!r} is not an IANA time zone name") from exc


def ms_to_local(ms: int, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """The aware local datetime of an epoch-millisecond instant."""
    return dt.datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(zone)


def datetime_to_ms(value: dt.datetime) -> int:
    """Epoch milliseconds of an aware datetime."""
    if value.tzinfo is None:
        raise ValueError("naive datetime")
    delta = value.astimezone(UTC) - dt.datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def local_midnight_ms(day: dt.date, zone: zoneinfo.ZoneInfo) -> int:
    """The first instant of a local calendar day (midnight, or the end of a gap at midnight)."""
    naive = dt.datetime.combine(day, dt.time(0, 0))
    # fold=0 in a gap reads the wall time with the offset before the gap, which lands just past
    # the gap: the first real instant of that day.
    return datetime_to_ms(naive.replace(tzinfo=zone, fold=0))


def local_day_bounds(ms: int, zone: zoneinfo.ZoneInfo) -> tuple[int, int]:
    """[start, end) in epoch ms of the local calendar day in `zone` that contains `ms`."""
    day = ms_to_local(ms, zone).date()
    start = local_midnight_ms(day, zone)
    end = local_midnight_ms(day + dt.timedelta(days=1), zone)
    if start > ms:  # a day whose midnight was skipped past `ms` is impossible; be safe
        start = ms
    return start, end
