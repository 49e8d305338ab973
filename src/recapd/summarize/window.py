"""Which posts a recap covers: the time window of a schedule's time period."""

from __future__ import annotations

from recapd.model.scheduled_recap import TimePeriod

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
# A manual recap of a channel with nothing unread shows the latest posts instead (as the
# original does).
FALLBACK_LATEST_POSTS = 20


def window_start(time_period: str, now_ms: int, last_viewed_at: int) -> int:
    """Start (ms) of the window that ends now: 24 h, 7 days, or since the reader last read."""
    if time_period == TimePeriod.LAST_24H:
        return now_ms - DAY_MS
    if time_period == TimePeriod.LAST_WEEK:
        return now_ms - 7 * DAY_MS
    return max(0, last_viewed_at)
