"""Reading an HTTP `Retry-After` header, for clients that honour it (LLM servers, Mattermost)."""

from __future__ import annotations

import email.utils


def retry_after_seconds(value: str | None, now_s: float) -> float | None:
    """Seconds `value` asks to wait: delta-seconds or an HTTP date (relative to `now_s`, Unix
    seconds); None when absent or unreadable. Never negative."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now_s)
