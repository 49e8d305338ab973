"""Property tests of compute_next_run_at against an independent oracle, over every tzdata zone.

The oracle knows a zone only through UTC -> local conversion (never ambiguous): it samples the
UTC offset hourly, pins each change to the second by bisection, and from the resulting
piecewise-constant offsets derives every date's occurrence by plain integer arithmetic: the
earliest instant whose wall time is the target, or, in a gap, the target read with the offset
before the gap.
"""

from __future__ import annotations

import datetime as dt
import itertools
import zoneinfo
from dataclasses import dataclass
from functools import lru_cache

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from recapd.model.scheduled_recap import EVERY_DAY, ScheduledRecap
from recapd.model.tz import InvalidZoneError, load_zone

DAY = 86_400
HOUR = 3_600
EPOCH = dt.date(1970, 1, 1)
MIN_S = int(dt.datetime(1970, 1, 1, tzinfo=dt.UTC).timestamp())
MAX_S = int(dt.datetime(2037, 12, 31, tzinfo=dt.UTC).timestamp())


def _loadable(name: str) -> bool:
    try:
        load_zone(name)
    except InvalidZoneError:
        return False
    return True


ZONES = [name for name in sorted(zoneinfo.available_timezones()) if _loadable(name)]


# -- the oracle -----------------------------------------------------------------------------


def offset_at(zone: zoneinfo.ZoneInfo, instant: int) -> int:
    offset = dt.datetime.fromtimestamp(instant, zone).utcoffset()
    assert offset is not None
    return int(offset.total_seconds())


@dataclass(frozen=True)
class Segment:
    start: int  # first UTC second with this offset (inclusive)
    end: int  # first UTC second with the next offset
    offset: int


def segments(zone: zoneinfo.ZoneInfo, lo: int, hi: int, step: int = HOUR) -> list[Segment]:
    """Constant-offset stretches covering [lo, hi); changes found by sampling, then bisected."""
    out: list[Segment] = []
    start, current = lo, offset_at(zone, lo)
    probe = lo
    while probe < hi:
        nxt = min(probe + step, hi)
        if offset_at(zone, nxt) != current:
            # Bisect for the first second whose offset differs from `current`.
            left, right = probe, nxt
            while right - left > 1:
                mid = (left + right) // 2
                if offset_at(zone, mid) == current:
                    left = mid
                else:
                    right = mid
            out.append(Segment(start, right, current))
            start, current = right, offset_at(zone, right)
            probe = right
        else:
            probe = nxt
    out.append(Segment(start, hi, current))
    return out


def local_date(segs: list[Segment], instant: int) -> dt.date:
    for seg in segs:
        if seg.start <= instant < seg.end:
            return EPOCH + dt.timedelta(days=(instant + seg.offset) // DAY)
    raise AssertionError("instant outside the oracle window")


def wall_seconds(date: dt.date, minutes: int) -> int:
    """The wall time as if it were UTC, in epoch seconds."""
    return (date - EPOCH).days * DAY + minutes * 60


def oracle_occurrence(segs: list[Segment], wall: int) -> tuple[int, bool]:
    """(instant, existed) for one wall time: earliest real reading, else the gap reading."""
    readings = [wall - s.offset for s in segs if s.start <= wall - s.offset < s.end]
    if readings:
        return min(readings), True
    for before, after in itertools.pairwise(segs):
        change = before.end
        if change + before.offset <= wall < change + after.offset:
            return wall - before.offset, False
    raise AssertionError("wall time neither exists nor falls in a gap of the window")


def day_mask_bit(date: dt.date) -> int:
    # weekday(): Monday=0 ... Sunday=6; Sunday is bit 0.
    return 1 << ((date.weekday() + 1) % 7)


@dataclass(frozen=True)
class Occurrence:
    instant_s: int
    date: dt.date
    existed: bool


def oracle_occurrences(
    segs: list[Segment], first: dt.date, last: dt.date, days: int, minutes: int
) -> list[Occurrence]:
    out = []
    date = first
    while date <= last:
        if days & day_mask_bit(date):
            instant, existed = oracle_occurrence(segs, wall_seconds(date, minutes))
            out.append(Occurrence(instant, date, existed))
        date += dt.timedelta(days=1)
    return out


def oracle_window(zone: zoneinfo.ZoneInfo, after_ms: int) -> list[Segment]:
    after_s = after_ms // 1000
    return segments(zone, after_s - 4 * DAY, after_s + 12 * DAY)


def oracle_next(segs: list[Segment], after_ms: int, days: int, minutes: int) -> Occurrence:
    """The earliest oracle occurrence strictly after `after_ms`, over a generous date range."""
    start = local_date(segs, after_ms // 1000)
    occurrences = oracle_occurrences(
        segs, start - dt.timedelta(days=2), start + dt.timedelta(days=9), days, minutes
    )
    later = [o for o in occurrences if o.instant_s * 1000 > after_ms]
    assert later, "no occurrence within 9 days"
    return min(later, key=lambda o: (o.instant_s, o.date))


# -- transitions, to aim examples at them ---------------------------------------------------


@dataclass(frozen=True)
class Change:
    instant: int  # first UTC second of the new offset
    before: int
    after: int


@lru_cache(maxsize=1024)
def changes(name: str) -> tuple[Change, ...]:
    """Offset changes of a zone in 1970-2037 (sampled weekly, so a change undone within a week
    can be missed; this only aims examples, the oracle samples hourly)."""
    segs = segments(load_zone(name), MIN_S, MAX_S + 7 * DAY, step=7 * DAY)
    return tuple(
        Change(after.start, before.offset, after.offset)
        for before, after in itertools.pairwise(segs)
    )


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, int, int, int]:
    """(zone, after_ms, days_of_week, minutes of the day).

    A third anywhere in 1970-2037; a third within three days of one of the zone's offset
    changes; a third aimed at the change itself: the time of day inside (or just around) the
    skipped or repeated wall-clock stretch, on a date whose bit is set.
    """
    name = draw(st.sampled_from(ZONES))
    mode = draw(st.sampled_from(["anywhere", "near", "inside"]))
    known = changes(name)
    days = draw(st.integers(1, EVERY_DAY))
    hour = draw(st.integers(0, 3) | st.integers(0, 23))
    minutes = hour * 60 + draw(st.sampled_from([0, 15, 30, 45, 59]) | st.integers(0, 59))
    if mode == "anywhere" or not known:
        after_s = draw(st.integers(MIN_S + 5 * DAY, MAX_S))
    else:
        change = draw(st.sampled_from(known))
        after_s = change.instant + draw(st.integers(-3 * DAY, 3 * DAY))
        if mode == "inside":
            # The stretch of wall time that is skipped (gap) or happens twice (overlap).
            low = change.instant + min(change.before, change.after)
            span = abs(change.after - change.before)
            wall = low + draw(st.integers(-30 * 60, span + 30 * 60))
            minutes = (wall % DAY) // 60
            days |= day_mask_bit(EPOCH + dt.timedelta(days=wall // DAY))
            after_s = change.instant - draw(st.integers(0, 2 * DAY))
    after_s = min(max(after_s, MIN_S + 5 * DAY), MAX_S)
    # Whole minutes, whole seconds and arbitrary milliseconds.
    after_ms = after_s * 1000 + draw(st.sampled_from([0, 0, 1, 999]) | st.integers(0, 999))
    if draw(st.booleans()):
        after_ms -= after_ms % 60_000
    return name, after_ms, days, minutes


def make(name: str, days: int, minutes: int) -> ScheduledRecap:
    return ScheduledRecap(
        days_of_week=days, time_of_day=f"{minutes // 60:02d}:{minutes % 60:02d}", timezone=name
    )


def check_one(name: str, after_ms: int, days: int, minutes: int) -> int:
    """All properties for one schedule and instant; returns the result for chaining."""
    zone = load_zone(name)
    recap = make(name, days, minutes)
    result = recap.compute_next_run_at(after_ms)
    segs = oracle_window(zone, after_ms)
    expected = oracle_next(segs, after_ms, days, minutes)
    context = f"{name} days={days} at={recap.time_of_day} after={after_ms}"

    twice = [s for s in segs if s.start <= wall_seconds(expected.date, minutes) - s.offset < s.end]
    event("gap" if not expected.existed else "overlap" if len(twice) > 1 else "plain")
    event("offset changes in window" if len(segs) > 1 else "no offset change in window")
    # (1) strictly after
    assert result > after_ms, context
    # (2) whole minutes whenever the zone's offsets are (pre-1972 Monrovia is not)
    if all(s.offset % 60 == 0 for s in segs):
        assert result % 60_000 == 0, context
    # (3) an occurrence: the wall time on a date whose bit is set, or the documented gap shift
    index = next(i for i, s in enumerate(segs) if s.start <= result // 1000 < s.end)
    offset = segs[index].offset
    wall = result // 1000 + offset
    wall_date = EPOCH + dt.timedelta(days=wall // DAY)
    asked = wall_seconds(expected.date, minutes)
    if expected.existed:
        assert wall == asked, context
        assert days & day_mask_bit(wall_date), context
    else:
        # Read with the offset in force just before the gap: past the asked time by exactly
        # the jump, so never before it.
        assert days & day_mask_bit(expected.date), context
        assert index > 0, context
        assert wall - asked == offset - segs[index - 1].offset > 0, context
    # (4) nothing in between: the oracle's earliest occurrence after `after` is the result
    assert result == expected.instant_s * 1000, f"{context} expected={expected}"
    # (6) no change of offset in the window: the wall time is exactly the asked time
    if len(segs) == 1:
        assert wall % DAY == minutes * 60 and days & day_mask_bit(wall_date), context
    return result


def check_chain(name: str, after_ms: int, days: int, minutes: int, count: int) -> None:
    """(5) Applying the function to its own result moves to a strictly later occurrence date."""
    zone = load_zone(name)
    current = check_one(name, after_ms, days, minutes)
    produced = make(name, days, minutes).next_occurrences(after_ms, count)
    assert produced[0] == current
    for previous, nxt in itertools.pairwise(produced):
        assert nxt > previous
        segs = oracle_window(zone, previous)
        start = local_date(segs, previous // 1000)
        occurrences = oracle_occurrences(
            segs, start - dt.timedelta(days=2), start + dt.timedelta(days=9), days, minutes
        )
        dates_previous = [o.date for o in occurrences if o.instant_s * 1000 == previous]
        dates_next = [o.date for o in occurrences if o.instant_s * 1000 == nxt]
        # Two dates share an instant only when a whole date was skipped (Pacific/Apia).
        assert dates_previous and dates_next
        assert max(dates_previous) < min(dates_next), f"{name} {previous} -> {nxt}"
        assert nxt == check_one(name, previous, days, minutes)


# -- the tests ------------------------------------------------------------------------------


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(cases())
def test_matches_oracle_everywhere(case: tuple[str, int, int, int]) -> None:
    name, after_ms, days, minutes = case
    check_chain(name, after_ms, days, minutes, count=2)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(ZONES), st.integers(MIN_S + 5 * DAY, MAX_S))
def test_exact_occurrence_input_gives_the_next_one(name: str, after_s: int) -> None:
    recap = make(name, EVERY_DAY, 9 * 60)
    first = recap.compute_next_run_at(after_s * 1000)
    second = recap.compute_next_run_at(first)
    assert first < second <= first + 2 * DAY * 1000
    assert recap.compute_next_run_at(first - 1) == first


def _interesting_minutes(segs: list[Segment]) -> list[int]:
    """Local times of day inside each gap or overlap of the window, plus a plain one."""
    picked = {9 * 60}
    for before, after in itertools.pairwise(segs):
        jump = after.offset - before.offset
        low = before.end + min(before.offset, after.offset)  # the wall time where it starts
        middle = low + abs(jump) // 2
        for wall in (low, middle):
            picked.add((wall % DAY) // 60)
    return sorted(picked)


@pytest.mark.parametrize("name", ZONES)
def test_every_zone_across_its_transitions(name: str) -> None:
    """Every zone in tzdata, deterministically: times inside each 2025-2027 gap and overlap."""
    zone = load_zone(name)
    lo = int(dt.datetime(2025, 1, 1, tzinfo=dt.UTC).timestamp())
    hi = int(dt.datetime(2028, 1, 1, tzinfo=dt.UTC).timestamp())
    # Daily sampling finds every change that lasts a day or more; the oracle then samples hourly.
    moments = [s.start for s in segments(zone, lo, hi, step=DAY)[1:]] or [lo + 180 * DAY]
    for change in moments:
        after_ms = (change - 2 * DAY) * 1000
        # Wide enough for four daily runs plus the oracle's nine days of look-ahead.
        segs = segments(zone, change - 6 * DAY, change + 20 * DAY)
        for minutes in _interesting_minutes(segs):
            recap = make(name, EVERY_DAY, minutes)
            current = after_ms
            for _ in range(4):  # walks over the change and past it
                result = recap.compute_next_run_at(current)
                expected = oracle_next(segs, current, EVERY_DAY, minutes)
                assert result == expected.instant_s * 1000, (name, recap.time_of_day, current)
                assert result > current
                current = result


# Every 24-hour offset jump in 1970-2037 (found by scanning all zones daily): dates skipped
# whole, whose run lands on the next day. Plus Vostok's 7-hour jumps.
DATE_LINE_JUMPS = [
    ("Pacific/Kwajalein", dt.date(1993, 8, 20)),
    ("Kwajalein", dt.date(1993, 8, 20)),
    ("Pacific/Kanton", dt.date(1994, 12, 31)),
    ("Pacific/Enderbury", dt.date(1994, 12, 31)),
    ("Pacific/Kiritimati", dt.date(1994, 12, 31)),
    ("Pacific/Apia", dt.date(2011, 12, 30)),
    ("Pacific/Fakaofo", dt.date(2011, 12, 30)),
    ("Antarctica/Vostok", dt.date(1994, 2, 1)),
    ("Antarctica/Vostok", dt.date(1994, 11, 1)),
]
SINGLE_DAYS = [1 << bit for bit in range(7)]


@pytest.mark.parametrize(("name", "date"), DATE_LINE_JUMPS)
def test_skipped_dates_every_mask_and_many_times(name: str, date: dt.date) -> None:
    if name not in ZONES:
        pytest.skip(f"{name} not in this tzdata")
    zone = load_zone(name)
    center = wall_seconds(date, 12 * 60)
    segs = segments(zone, center - 15 * DAY, center + 15 * DAY)
    assert len(segs) > 1, "the jump moved: update DATE_LINE_JUMPS"
    for days in [*SINGLE_DAYS, EVERY_DAY]:
        for minutes in range(0, 24 * 60, 45):
            recap = make(name, days, minutes)
            for after_s in range(center - 3 * DAY, center + 3 * DAY, 7 * HOUR + 13 * 60):
                result = recap.compute_next_run_at(after_s * 1000)
                expected = oracle_next(segs, after_s * 1000, days, minutes)
                assert result == expected.instant_s * 1000, (name, days, minutes, after_s)
