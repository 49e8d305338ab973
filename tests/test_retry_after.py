"""Retry-After as servers send it: delta-seconds or an HTTP date."""

from __future__ import annotations

from recapd.retry_after import retry_after_seconds

NOW = 1_790_000_000.0  # 2026-09-21 14:13:20 UTC


def test_seconds_dates_and_garbage() -> None:
    assert retry_after_seconds("7", NOW) == 7.0
    assert retry_after_seconds(" 1.5 ", NOW) == 1.5
    assert retry_after_seconds("-3", NOW) == 0.0
    assert retry_after_seconds("Mon, 21 Sep 2026 14:13:50 GMT", NOW) == 30.0
    assert retry_after_seconds("Mon, 21 Sep 2026 14:00:00 GMT", NOW) == 0.0  # already past
    for bad in (None, "", "soon", "Mon, 99 Foo"):
        assert retry_after_seconds(bad, NOW) is None
