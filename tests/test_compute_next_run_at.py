"""Named cases for ScheduledRecap.compute_next_run_at, with expected instants worked out by hand.

Each expectation is written in UTC with the local reading beside it, so a failure shows which
rule of DESIGN.md "Time zones and daylight saving" broke.
"""

from __future__ import annotations

import datetime as dt

import pytest

from recapd.model.app_error import AppError
from recapd.model.scheduled_recap import (
    EVERY_DAY,
    FRIDAY,
    MONDAY,
    SATURDAY,
    SUNDAY,
    WEDNESDAY,
    WEEKDAYS,
    ScheduledRecap,
    day_bit,
)

ERROR_ID = "model.scheduled_recap.compute_next_run_at.app_error"


def ms(iso: str) -> int:
    """Epoch ms of an ISO instant such as '2026-03-08T07:30Z' or '...T07:30:15.250+00:00'."""
    value = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    assert value.tzinfo is not None
    delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def iso(value_ms: int) -> str:
    """'YYYY-MM-DDTHH:MMZ' (seconds shown only when not zero)."""
    value = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=value_ms)
    fmt = (
        "%Y-%m-%dT%H:%MZ" if value.second == 0 and value.microsecond == 0 else "%Y-%m-%dT%H:%M:%SZ"
    )
    return value.strftime(fmt)


def schedule(zone: str, time_of_day: str, days: int = EVERY_DAY) -> ScheduledRecap:
    return ScheduledRecap(days_of_week=days, time_of_day=time_of_day, timezone=zone)


def runs(recap: ScheduledRecap, after: str, count: int) -> list[str]:
    return [iso(value) for value in recap.next_occurrences(ms(after), count)]


def test_helpers_round_trip() -> None:
    assert iso(ms("2026-03-08T07:30Z")) == "2026-03-08T07:30Z"
    assert ms("1970-01-01T00:01Z") == 60_000


def test_day_bits() -> None:
    assert day_bit(dt.date(2026, 3, 8)) == SUNDAY  # a Sunday
    assert day_bit(dt.date(2026, 3, 9)) == MONDAY
    assert day_bit(dt.date(2026, 3, 14)) == SATURDAY
    assert WEEKDAYS == 62
    assert EVERY_DAY == 127


# -- America/New_York: EST -5, EDT -4; 2026-03-08 02:00 -> 03:00, 2026-11-01 02:00 -> 01:00 --


def test_new_york_spring_forward_runs_past_the_gap_not_before() -> None:
    recap = schedule("America/New_York", "02:30")
    assert runs(recap, "2026-03-07T12:00Z", 3) == [
        "2026-03-08T07:30Z",  # 02:30 does not exist: 03:30 EDT (Mattermost: 01:30 EST = 06:30Z)
        "2026-03-09T06:30Z",  # 02:30 EDT
        "2026-03-10T06:30Z",
    ]


def test_new_york_gap_does_not_shift_following_weeks() -> None:
    recap = schedule("America/New_York", "02:30", SUNDAY)
    assert runs(recap, "2026-03-07T12:00Z", 3) == [
        "2026-03-08T07:30Z",  # 03:30 EDT on the day of the gap
        "2026-03-15T06:30Z",  # 02:30 EDT again, not 03:30 and not the Go original's 01:30
        "2026-03-22T06:30Z",
    ]


@pytest.mark.parametrize(
    ("time_of_day", "expected"),
    [
        ("01:59", "2026-03-08T06:59Z"),  # before the gap: EST
        ("02:00", "2026-03-08T07:00Z"),  # first minute of the gap: 03:00 EDT
        ("02:59", "2026-03-08T07:59Z"),  # last minute of the gap: 03:59 EDT
        ("03:00", "2026-03-08T07:00Z"),  # after the gap: EDT (same instant as 02:00)
    ],
)
def test_new_york_gap_edges(time_of_day: str, expected: str) -> None:
    recap = schedule("America/New_York", time_of_day, SUNDAY)
    assert iso(recap.compute_next_run_at(ms("2026-03-08T04:00Z"))) == expected


def test_new_york_fall_back_runs_once_at_the_first_instant() -> None:
    recap = schedule("America/New_York", "01:30")
    assert runs(recap, "2026-10-31T12:00Z", 3) == [
        "2026-11-01T05:30Z",  # 01:30 EDT; the second 01:30 (EST, 06:30Z) never counts
        "2026-11-02T06:30Z",  # 01:30 EST
        "2026-11-03T06:30Z",
    ]


def test_new_york_between_the_two_readings_goes_to_the_next_day() -> None:
    recap = schedule("America/New_York", "01:30")
    # 05:45Z is 01:45 EDT: the first 01:30 has passed; the second is not an occurrence.
    assert iso(recap.compute_next_run_at(ms("2026-11-01T05:45Z"))) == "2026-11-02T06:30Z"


# -- Europe/London: GMT +0, BST +1; changes at 01:00 UTC on the last Sundays of March/October --


def test_london_spring_forward() -> None:
    recap = schedule("Europe/London", "01:30", SUNDAY)
    assert runs(recap, "2026-03-28T12:00Z", 2) == [
        "2026-03-29T01:30Z",  # 01:30 does not exist (01:00 -> 02:00): 02:30 BST
        "2026-04-05T00:30Z",  # 01:30 BST
    ]


def test_london_fall_back() -> None:
    recap = schedule("Europe/London", "01:30")
    assert runs(recap, "2026-10-24T12:00Z", 2) == [
        "2026-10-25T00:30Z",  # 01:30 BST (first); 01:30 GMT = 01:30Z is skipped
        "2026-10-26T01:30Z",  # 01:30 GMT
    ]


def test_london_unaffected_time_on_transition_day() -> None:
    recap = schedule("Europe/London", "09:00")
    assert runs(recap, "2026-03-28T12:00Z", 2) == ["2026-03-29T08:00Z", "2026-03-30T08:00Z"]


# -- Australia/Sydney: AEST +10, AEDT +11; April 5 03:00 -> 02:00, October 4 02:00 -> 03:00 --


def test_sydney_fall_back_in_april() -> None:
    recap = schedule("Australia/Sydney", "02:30")
    assert runs(recap, "2026-04-04T00:00Z", 2) == [
        "2026-04-04T15:30Z",  # 2026-04-05 02:30 AEDT (first of two)
        "2026-04-05T16:30Z",  # 2026-04-06 02:30 AEST
    ]


def test_sydney_spring_forward_in_october() -> None:
    recap = schedule("Australia/Sydney", "02:30")
    assert runs(recap, "2026-10-03T00:00Z", 2) == [
        "2026-10-03T16:30Z",  # 2026-10-04 02:30 does not exist: 03:30 AEDT
        "2026-10-04T15:30Z",  # 2026-10-05 02:30 AEDT
    ]


# -- Australia/Lord_Howe: +10:30 standard, +11 summer; a 30-minute shift at 02:00 --


def test_lord_howe_thirty_minute_gap() -> None:
    recap = schedule("Australia/Lord_Howe", "02:15")
    assert runs(recap, "2026-10-03T00:00Z", 2) == [
        "2026-10-03T15:45Z",  # 2026-10-04 02:15 does not exist (02:00 -> 02:30): 02:45 +11
        "2026-10-04T15:15Z",  # 2026-10-05 02:15 +11
    ]


def test_lord_howe_thirty_minute_overlap() -> None:
    recap = schedule("Australia/Lord_Howe", "01:45")
    assert runs(recap, "2026-04-04T00:00Z", 2) == [
        "2026-04-04T14:45Z",  # 2026-04-05 01:45 +11 (first); 01:45 +10:30 = 15:15Z skipped
        "2026-04-05T15:15Z",  # 2026-04-06 01:45 +10:30
    ]


# -- Pacific/Chatham: +12:45 standard, +13:45 summer; changes at 02:45 standard time --


def test_chatham_gap() -> None:
    recap = schedule("Pacific/Chatham", "03:00")
    assert runs(recap, "2026-09-26T00:00Z", 2) == [
        "2026-09-26T14:15Z",  # 2026-09-27 03:00 does not exist (02:45 -> 03:45): 04:00 +13:45
        "2026-09-27T13:15Z",  # 2026-09-28 03:00 +13:45
    ]


def test_chatham_overlap() -> None:
    recap = schedule("Pacific/Chatham", "03:00")
    assert runs(recap, "2026-04-04T00:00Z", 2) == [
        "2026-04-04T13:15Z",  # 2026-04-05 03:00 +13:45 (first); +12:45 = 14:15Z skipped
        "2026-04-05T14:15Z",  # 2026-04-06 03:00 +12:45
    ]


# -- zones with unusual offsets or transitions ----------------------------------------------


def test_kathmandu_quarter_hour_offset() -> None:
    recap = schedule("Asia/Kathmandu", "09:00")
    # 2026-05-06T00:00Z is 05:45 local; 09:00 +05:45 = 03:15Z.
    assert runs(recap, "2026-05-06T00:00Z", 2) == ["2026-05-06T03:15Z", "2026-05-07T03:15Z"]


def test_santiago_gap_at_midnight() -> None:
    # Chile skips 00:00-01:00 on 2026-09-06 (-04 -> -03).
    recap = schedule("America/Santiago", "00:00")
    assert runs(recap, "2026-09-05T12:00Z", 2) == [
        "2026-09-06T04:00Z",  # 01:00 -03, the first instant of the day
        "2026-09-07T03:00Z",  # 00:00 -03
    ]


def test_santiago_overlap_before_midnight() -> None:
    # 2026-04-05 00:00 -03 -> 2026-04-04 23:00 -04: 23:30 on April 4 happens twice.
    recap = schedule("America/Santiago", "23:30")
    assert runs(recap, "2026-04-04T12:00Z", 2) == [
        "2026-04-05T02:30Z",  # 23:30 -03 (first); 23:30 -04 = 03:30Z skipped
        "2026-04-06T03:30Z",  # 2026-04-05 23:30 -04
    ]


def test_troll_two_hour_shift() -> None:
    # Antarctica/Troll moves between +00 and +02 at 01:00 UTC.
    gap = schedule("Antarctica/Troll", "02:00")
    assert iso(gap.compute_next_run_at(ms("2026-03-28T12:00Z"))) == "2026-03-29T02:00Z"  # 04:00
    overlap = schedule("Antarctica/Troll", "02:00")
    assert runs(overlap, "2026-10-24T12:00Z", 2) == [
        "2026-10-25T00:00Z",  # 02:00 +02 (first); 02:00 +00 skipped
        "2026-10-26T02:00Z",
    ]


def test_apia_skipped_date_lands_on_the_next_day() -> None:
    # Samoa skipped Friday 2011-12-30 entirely: 2011-12-29 23:59:59 -10 -> 2011-12-31 00:00 +14.
    friday = schedule("Pacific/Apia", "10:00", FRIDAY)
    assert runs(friday, "2011-12-20T00:00Z", 3) == [
        "2011-12-23T20:00Z",  # Friday 10:00 -10
        "2011-12-30T20:00Z",  # the skipped Friday, read at -10: Saturday 12-31 10:00 +14
        "2012-01-05T20:00Z",  # Friday 2012-01-06 10:00 +14
    ]
    daily = schedule("Pacific/Apia", "10:00")
    # 12-30 (shifted) and 12-31 give the same instant: it is one run, not two.
    assert runs(daily, "2011-12-28T00:00Z", 4) == [
        "2011-12-28T20:00Z",
        "2011-12-29T20:00Z",
        "2011-12-30T20:00Z",
        "2011-12-31T20:00Z",
    ]


def test_apia_shifted_run_from_the_day_before_after_midnight() -> None:
    # After 2011-12-31 00:10 +14 (local date 12-31), the skipped Friday's 00:30 (read at -10 =
    # 12-31 00:30 +14) is still ahead: the date before the local date of `after` counts.
    friday = schedule("Pacific/Apia", "00:30", FRIDAY)
    assert iso(friday.compute_next_run_at(ms("2011-12-30T10:10Z"))) == "2011-12-30T10:30Z"


def test_monrovia_offset_with_seconds_keeps_the_exact_wall_time() -> None:
    # Liberia kept -00:44:30 until 1972; 09:00 local is not a whole UTC minute.
    recap = schedule("Africa/Monrovia", "09:00")
    assert iso(recap.compute_next_run_at(ms("1971-06-01T00:00Z"))) == "1971-06-01T09:44:30Z"
    assert iso(recap.compute_next_run_at(ms("1972-06-01T00:00Z"))) == "1972-06-01T09:00Z"


# -- strictly after, masks, sub-minute input -------------------------------------------------


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        ("2026-05-06T13:00Z", "2026-05-07T13:00Z"),  # exactly an occurrence: the next one
        ("2026-05-06T12:59:59.999Z", "2026-05-06T13:00Z"),
        ("2026-05-06T13:00:00.001Z", "2026-05-07T13:00Z"),
        ("2026-05-06T13:00:30.500Z", "2026-05-07T13:00Z"),
        ("2026-05-06T12:59:30.250Z", "2026-05-06T13:00Z"),
    ],
)
def test_strictly_after_and_sub_minute_input(after: str, expected: str) -> None:
    recap = schedule("America/New_York", "09:00")  # 09:00 EDT = 13:00Z
    assert iso(recap.compute_next_run_at(ms(after))) == expected


@pytest.mark.parametrize(
    ("days", "after", "expected"),
    [
        (MONDAY, "2026-05-06T12:00Z", "2026-05-11T13:00Z"),  # Wednesday -> Monday
        (MONDAY, "2026-05-11T13:00Z", "2026-05-18T13:00Z"),  # on a Monday's run: next week
        (WEDNESDAY, "2026-05-06T12:00Z", "2026-05-06T13:00Z"),  # later the same day
        (WEDNESDAY, "2026-05-06T14:00Z", "2026-05-13T13:00Z"),  # a full week ahead
        (WEEKDAYS, "2026-05-08T13:00Z", "2026-05-11T13:00Z"),  # Friday's run -> Monday
        (SATURDAY | SUNDAY, "2026-05-06T12:00Z", "2026-05-09T13:00Z"),
        (SUNDAY, "2026-05-09T23:30Z", "2026-05-10T13:00Z"),  # Saturday 19:30 local
    ],
)
def test_weekly_masks(days: int, after: str, expected: str) -> None:
    recap = schedule("America/New_York", "09:00", days)
    assert iso(recap.compute_next_run_at(ms(after))) == expected


def test_mask_uses_the_local_date_not_the_utc_date() -> None:
    # 2026-05-11T02:00Z is Sunday 22:00 in New York; Monday's 09:00 EDT is next.
    recap = schedule("America/New_York", "09:00", MONDAY)
    assert iso(recap.compute_next_run_at(ms("2026-05-11T02:00Z"))) == "2026-05-11T13:00Z"
    # Tokyo is already Monday at 2026-05-10T16:00Z (01:00 JST).
    tokyo = schedule("Asia/Tokyo", "09:00", MONDAY)
    assert iso(tokyo.compute_next_run_at(ms("2026-05-10T16:00Z"))) == "2026-05-11T00:00Z"


def test_results_are_whole_minutes() -> None:
    recap = schedule("Australia/Lord_Howe", "23:59")
    for value in recap.next_occurrences(ms("2026-05-06T12:34:56.789Z"), 20):
        assert value % 60_000 == 0


def test_next_occurrences_counts() -> None:
    recap = schedule("UTC", "00:00")
    assert recap.next_occurrences(0, 0) == []
    assert runs(recap, "1970-01-01T00:00Z", 2) == ["1970-01-02T00:00Z", "1970-01-03T00:00Z"]


@pytest.mark.parametrize(
    ("changes", "detail"),
    [
        ({"days_of_week": 0}, "0"),
        ({"days_of_week": 128}, "128"),
        ({"days_of_week": -1}, "-1"),
        ({"days_of_week": True}, "True"),
        ({"time_of_day": "24:00"}, "'24:00'"),
        ({"time_of_day": "9:00"}, "'9:00'"),
        ({"time_of_day": "09:00\n"}, "'09:00\\n'"),
        ({"timezone": ""}, "''"),
        ({"timezone": "Local"}, "'Local'"),
        ({"timezone": "Mars/Olympus"}, "'Mars/Olympus'"),
    ],
)
def test_invalid_schedule_raises(changes: dict[str, object], detail: str) -> None:
    recap = schedule("America/New_York", "09:00")
    for name, value in changes.items():
        setattr(recap, name, value)
    with pytest.raises(AppError) as info:
        recap.compute_next_run_at(ms("2026-05-06T12:00Z"))
    assert info.value.id == ERROR_ID
    assert info.value.detailed_error == detail


def test_out_of_range_instant_raises_app_error() -> None:
    recap = schedule("UTC", "09:00")
    with pytest.raises(AppError) as info:
        recap.compute_next_run_at(ms("9999-12-31T12:00Z"))
    assert info.value.id == ERROR_ID
