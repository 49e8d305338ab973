"""Scheduled recaps: the schedule record, its validation and its next-run math (no I/O).

The schedule math follows DESIGN.md "Time zones and daylight saving": an occurrence is the local
time of day on every local date whose day bit is set; a time that happens twice runs at the first
instant only; a time inside a spring-forward gap runs at the same distance past the gap (read with
the offset in force before it), never before the time the user asked for.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from functools import lru_cache
from typing import Any, Self

from recapd.model.app_error import AppError
from recapd.model.ids import is_valid_id, new_id
from recapd.model.tz import InvalidZoneError, load_zone


class TimePeriod(StrEnum):
    """The window a recap covers."""

    LAST_24H = "last_24h"
    LAST_WEEK = "last_week"
    SINCE_LAST_READ = "since_last_read"


class ChannelMode(StrEnum):
    """Which channels a recap reads: a fixed list, or every channel with unread messages."""

    SPECIFIC = "specific"
    ALL_UNREADS = "all_unreads"


SUNDAY = 1
MONDAY = 2
TUESDAY = 4
WEDNESDAY = 8
THURSDAY = 16
FRIDAY = 32
SATURDAY = 64
WEEKDAYS = MONDAY | TUESDAY | WEDNESDAY | THURSDAY | FRIDAY  # 62
EVERY_DAY = WEEKDAYS | SATURDAY | SUNDAY  # 127

# Error ids the original (Mattermost) answers with, kept so its clients recognise them.
SCHEDULED_RECAP_NOT_FOUND = "app.scheduled_recap.get.app_error"
CHANNEL_ACCESS_DENIED = "app.scheduled_recap.channel_access_denied.app_error"

TITLE_MAX_BYTES = 255
CUSTOM_INSTRUCTIONS_MAX_BYTES = 500
AGENT_ID_MAX_CHARS = 64

# fullmatch, not `$`: `$` would also accept a trailing newline.
_TIME_OF_DAY_RE = re.compile(r"([0-1][0-9]|2[0-3]):([0-5][0-9])")
_TIME_PERIODS = frozenset(p.value for p in TimePeriod)
_CHANNEL_MODES = frozenset(m.value for m in ChannelMode)

_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_DAY_S = 86_400
# Local dates examined around the local date of `after`: one before (a skipped date's shifted
# occurrence can land on the next day, see Pacific/Apia 2011-12-30) to eight after (a full week
# past the next date, whatever the mask).
_FIRST_DAY_DELTA = -1
_LAST_DAY_DELTA = 8
_NEXT_RUN_ERROR = "model.scheduled_recap.compute_next_run_at.app_error"


def day_bit(date: dt.date) -> int:
    """The days_of_week bit of a calendar date: Sunday=1, Monday=2 ... Saturday=64."""
    return 1 << (date.isoweekday() % 7)


def _invalid(field_name: str, message: str, value: object = None) -> AppError:
    detail = "" if value is None else f"{field_name}={value!r}"
    return AppError(
        f"model.scheduled_recap.is_valid.{field_name}.app_error",
        message,
        detail,
        status_code=400,
    )


def _utf8_len(value: str) -> int | None:
    """Byte length in UTF-8, or None for a string that cannot be encoded (lone surrogates)."""
    try:
        return len(value.encode("utf-8"))
    except UnicodeEncodeError:
        return None


@lru_cache(maxsize=2048)
def _parse_time_of_day(value: str) -> tuple[int, int] | None:
    """(hour, minute) of a valid HH:MM, else None. Cached: there are only 1440 valid values."""
    match = _TIME_OF_DAY_RE.fullmatch(value)
    return None if match is None else (int(match.group(1)), int(match.group(2)))


def _offset_s(offset: dt.timedelta | None) -> int:
    if offset is None:  # a ZoneInfo always answers; guard for the type checker
        raise AppError(_NEXT_RUN_ERROR, "time zone gave no UTC offset", status_code=500)
    # zoneinfo offsets are whole seconds (some pre-1972 ones are not whole minutes).
    return offset.days * _DAY_S + offset.seconds


def _offset_at(instant_s: int, zone: zoneinfo.ZoneInfo) -> int:
    """The UTC offset in force at an epoch-second instant (UTC -> local is never ambiguous)."""
    return _offset_s(dt.datetime.fromtimestamp(instant_s, zone).utcoffset())


@lru_cache(maxsize=65_536)
def _occurrence_s(ordinal: int, hour: int, minute: int, zone: zoneinfo.ZoneInfo) -> int:
    """Epoch seconds of the run on one local date (given as a proleptic ordinal).

    The wall time is read with each offset zoneinfo proposes for it (fold 0 and 1) and kept only
    when converting back gives the same wall time, so the answer never rests on fold semantics
    alone: two survivors = fall back, take the earlier; none = spring-forward gap. Cached:
    schedules share zones and times, and a date's run never changes for a loaded zone.
    """
    day = dt.date.fromordinal(ordinal)
    wall = dt.datetime(day.year, day.month, day.day, hour, minute)
    wall_s = (ordinal - _EPOCH_ORDINAL) * _DAY_S + hour * 3600 + minute * 60
    # ZoneInfo.utcoffset reads a naive datetime's wall fields and fold directly.
    offset0 = _offset_s(zone.utcoffset(wall))
    offset1 = _offset_s(zone.utcoffset(wall.replace(fold=1)))
    best: int | None = None
    for offset in (offset0,) if offset0 == offset1 else (offset0, offset1):
        instant = wall_s - offset
        if _offset_at(instant, zone) == offset and (best is None or instant < best):
            best = instant
    if best is not None:
        return best
    # A gap. wall - (larger offset) is an instant before the transition: the offset in force
    # there is the one before the gap, and reading the wall time with it lands past the gap by
    # exactly how far the asked time was into it.
    before = wall_s - max(offset0, offset1)
    offset_before = _offset_at(before, zone)
    instant = wall_s - offset_before
    if not (before + offset_before < wall_s < instant + _offset_at(instant, zone)):
        raise AppError(
            _NEXT_RUN_ERROR,
            "could not place a local time that falls in a daylight-saving gap",
            f"zone={zone.key!r} wall={wall.isoformat()}",
            status_code=500,
        )
    return instant


@dataclass(slots=True)
class ScheduledRecap:
    """A user's recurring (or one-shot) recap schedule, as stored in ScheduledRecaps."""

    id: str = ""
    user_id: str = ""
    title: str = ""
    days_of_week: int = 0
    time_of_day: str = ""
    timezone: str = ""
    time_period: str = ""
    next_run_at: int = 0
    last_run_at: int = 0
    run_count: int = 0
    channel_mode: str = ""
    channel_ids: list[str] = field(default_factory=list)
    custom_instructions: str = ""
    agent_id: str = ""
    is_recurring: bool = True
    enabled: bool = True
    create_at: int = 0
    update_at: int = 0
    delete_at: int = 0
    # recapd additions: failed occurrences in a row, and why the schedule paused itself.
    consecutive_failures: int = 0
    pause_reason: str = ""
    # The occurrence last recorded by mark_executed (a retried job does not count twice).
    last_scheduled_for: int = 0

    # -- validation -------------------------------------------------------------------------

    def is_valid(self) -> None:
        """Raise an AppError (400) naming the first broken rule; return None when valid."""
        if not is_valid_id(self.id):
            raise _invalid("id", "id must be a 26-character id", self.id)
        if not is_valid_id(self.user_id):
            raise _invalid("user_id", "user_id must be a 26-character id", self.user_id)
        self._check_title()
        self._check_days_of_week()
        if not isinstance(self.time_of_day, str) or _parse_time_of_day(self.time_of_day) is None:
            raise _invalid(
                "time_of_day",
                f"time_of_day must be HH:MM in 24-hour time, got {self.time_of_day!r}",
                self.time_of_day,
            )
        self._check_timezone()
        if not isinstance(self.time_period, str) or self.time_period not in _TIME_PERIODS:
            raise _invalid(
                "time_period",
                f"time_period must be one of {', '.join(sorted(_TIME_PERIODS))}, "
                f"got {self.time_period!r}",
                self.time_period,
            )
        if not isinstance(self.channel_mode, str) or self.channel_mode not in _CHANNEL_MODES:
            raise _invalid(
                "channel_mode",
                f"channel_mode must be one of {', '.join(sorted(_CHANNEL_MODES))}, "
                f"got {self.channel_mode!r}",
                self.channel_mode,
            )
        self._check_channel_ids()
        self._check_custom_instructions()
        self._check_agent_id()
        if not isinstance(self.is_recurring, bool):
            raise _invalid("is_recurring", "is_recurring must be true or false", self.is_recurring)
        if not isinstance(self.create_at, int) or self.create_at <= 0:
            raise _invalid("create_at", "create_at must be set (epoch ms > 0)", self.create_at)
        if not isinstance(self.update_at, int) or self.update_at < self.create_at:
            raise _invalid(
                "update_at", "update_at must not be earlier than create_at", self.update_at
            )

    def _check_title(self) -> None:
        title = self.title
        size = _utf8_len(title) if isinstance(title, str) else None
        if size is None:
            raise _invalid("title", "title must be valid text", title)
        if not title.strip():
            raise _invalid("title", "title must not be empty", title)
        if size > TITLE_MAX_BYTES:
            raise _invalid(
                "title", f"title must be at most {TITLE_MAX_BYTES} bytes, got {size}", size
            )

    def _check_days_of_week(self) -> None:
        days = self.days_of_week
        # bool is an int subclass; True would otherwise pass as Sunday.
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= EVERY_DAY:
            raise _invalid(
                "days_of_week",
                f"days_of_week must be a bitmask from 1 to {EVERY_DAY} "
                f"(Sunday=1 ... Saturday=64), got {days!r}",
                days,
            )

    def _check_timezone(self) -> None:
        try:
            if not isinstance(self.timezone, str):
                raise InvalidZoneError("not a string")
            load_zone(self.timezone)
        except InvalidZoneError as exc:
            raise _invalid(
                "timezone",
                f"timezone must be an IANA time zone name, got {self.timezone!r}",
                self.timezone,
            ) from exc

    def _check_channel_ids(self) -> None:
        ids = self.channel_ids
        if not isinstance(ids, list):
            raise _invalid("channel_ids", "channel_ids must be a list of channel ids", ids)
        if self.channel_mode == ChannelMode.SPECIFIC:
            if not ids:
                raise _invalid(
                    "channel_ids", "channel_ids must name at least one channel in specific mode"
                )
            for channel_id in ids:
                if not is_valid_id(channel_id):
                    raise _invalid(
                        "channel_ids",
                        f"channel_ids must hold 26-character ids, got {channel_id!r}",
                        channel_id,
                    )
        elif ids:
            raise _invalid("channel_ids", "channel_ids must be empty in all_unreads mode", len(ids))

    def _check_custom_instructions(self) -> None:
        text = self.custom_instructions
        size = _utf8_len(text) if isinstance(text, str) else None
        if size is None:
            raise _invalid("custom_instructions", "custom_instructions must be valid text")
        if size > CUSTOM_INSTRUCTIONS_MAX_BYTES:
            raise _invalid(
                "custom_instructions",
                f"custom_instructions must be at most {CUSTOM_INSTRUCTIONS_MAX_BYTES} bytes, "
                f"got {size}",
                size,
            )

    def _check_agent_id(self) -> None:
        agent = self.agent_id
        if not isinstance(agent, str) or not agent:
            raise _invalid("agent_id", "agent_id must not be empty", agent)
        if len(agent) > AGENT_ID_MAX_CHARS:
            raise _invalid(
                "agent_id",
                f"agent_id must be at most {AGENT_ID_MAX_CHARS} characters, got {len(agent)}",
                agent,
            )
        if any(ch.isspace() for ch in agent):
            raise _invalid("agent_id", "agent_id must not contain whitespace", agent)

    def pre_save(self, now_ms: int) -> None:
        """Fill id and timestamps, strip the title and drop repeated channel ids (first kept)."""
        if not self.id:
            self.id = new_id()
        if self.create_at == 0:
            self.create_at = now_ms
        self.update_at = now_ms
        # Values of the wrong type are left as they are for is_valid to name.
        if isinstance(self.title, str):
            self.title = self.title.strip()
        if isinstance(self.channel_ids, list) and all(isinstance(c, str) for c in self.channel_ids):
            self.channel_ids = list(dict.fromkeys(self.channel_ids))

    # -- schedule math ----------------------------------------------------------------------

    def _schedule_parts(self) -> tuple[int, int, int, zoneinfo.ZoneInfo]:
        days = self.days_of_week
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= EVERY_DAY:
            raise AppError(
                _NEXT_RUN_ERROR,
                f"days_of_week must be a bitmask from 1 to {EVERY_DAY}, got {days!r}",
                repr(days),
            )
        tod = self.time_of_day
        parsed = _parse_time_of_day(tod) if isinstance(tod, str) else None
        if parsed is None:
            raise AppError(
                _NEXT_RUN_ERROR,
                f"time_of_day must be HH:MM in 24-hour time, got {self.time_of_day!r}",
                repr(self.time_of_day),
            )
        try:
            zone = load_zone(self.timezone)
        except (InvalidZoneError, TypeError) as exc:
            raise AppError(
                _NEXT_RUN_ERROR,
                f"timezone must be an IANA time zone name, got {self.timezone!r}",
                repr(self.timezone),
            ) from exc
        return days, parsed[0], parsed[1], zone

    def compute_next_run_at(self, after_ms: int) -> int:
        """The first run strictly after `after_ms` (epoch ms UTC), in epoch ms UTC."""
        mask, hour, minute, zone = self._schedule_parts()
        time_s = hour * 3600 + minute * 60
        best_ms: int | None = None
        try:
            # Flooring to the second keeps the local date: zone offsets are whole seconds.
            start = dt.datetime.fromtimestamp(after_ms // 1000, zone).date().toordinal()
            for ordinal in range(start + _FIRST_DAY_DELTA, start + _LAST_DAY_DELTA + 1):
                wall_ms = ((ordinal - _EPOCH_ORDINAL) * _DAY_S + time_s) * 1000
                # |UTC offset| < 24 h, so this date's run is later than wall - 24 h: once that
                # bound passes the best so far, no later date can win.
                if best_ms is not None and wall_ms - _DAY_S * 1000 >= best_ms:
                    break
                # ordinal 1 (0001-01-01) is a Monday, so ordinal % 7 == isoweekday() % 7.
                if not mask & (1 << (ordinal % 7)):
                    continue
                candidate = _occurrence_s(ordinal, hour, minute, zone) * 1000
                if candidate > after_ms and (best_ms is None or candidate < best_ms):
                    best_ms = candidate
        except (OverflowError, ValueError, OSError) as exc:
            raise AppError(
                _NEXT_RUN_ERROR,
                "the time is outside the range a schedule can be computed for",
                f"after_ms={after_ms}",
            ) from exc
        if best_ms is None:  # unreachable: eight days always hold every weekday
            raise AppError(_NEXT_RUN_ERROR, "no run found within a week", status_code=500)
        return best_ms

    def next_occurrences(self, after_ms: int, count: int) -> list[int]:
        """The next `count` runs strictly after `after_ms`, each from the one before."""
        runs: list[int] = []
        current = after_ms
        for _ in range(count):
            current = self.compute_next_run_at(current)
            runs.append(current)
        return runs

    # -- wire form --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON object, with Mattermost's field names."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["channel_ids"] = list(self.channel_ids)
        # Plain str, so enum members never leak into JSON encoders or comparisons by identity.
        out["time_period"] = str(self.time_period)
        out["channel_mode"] = str(self.channel_mode)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build from a JSON object; unknown keys are ignored, missing ones take defaults.

        Values are not coerced: is_valid reports wrong types.
        """
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        channel_ids = values.get("channel_ids")
        if channel_ids is None:
            values["channel_ids"] = []
        elif isinstance(channel_ids, list | tuple):
            values["channel_ids"] = list(channel_ids)
        return cls(**values)
