"""The scheduled-recap form: what the browser sent, the fields the service takes, and the
AppErrors of the model and the service placed next to the field they are about."""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from starlette.datastructures import FormData

from recapd.api.errors import capped
from recapd.model.app_error import AppError
from recapd.model.ids import new_id
from recapd.model.scheduled_recap import (
    CHANNEL_ACCESS_DENIED,
    ChannelMode,
    ScheduledRecap,
    TimePeriod,
)
from recapd.model.tz import InvalidZoneError, load_zone

# Form fields, in page order; an error about anything else is shown above the form.
FIELDS = (
    "title",
    "days_of_week",
    "time_of_day",
    "timezone",
    "time_period",
    "channel_mode",
    "channel_ids",
    "agent_id",
    "custom_instructions",
    "is_recurring",
)

# Clearer words than the model's for fields whose rule a person cannot see on the page; the
# model's message is shown for the rest (it already names the rule and the value).
_FRIENDLY: dict[str, str] = {
    "days_of_week": "Choose at least one day.",
    "timezone": "Choose a time zone from the list.",
    "time_period": "Choose what the recap covers.",
    "channel_mode": "Choose which channels to recap.",
}
_CHANNEL_ERRORS = {
    CHANNEL_ACCESS_DENIED: (
        "You cannot read one of the chosen channels (any more); choose others."
    ),
}

# Valid stand-ins: with a broken field replaced, validation goes on to the next one, so every
# broken field is reported at once instead of one per submit.
_STAND_INS: dict[str, Any] = {
    "title": "x",
    "days_of_week": 1,
    "time_of_day": "09:00",
    "timezone": "UTC",
    "time_period": TimePeriod.LAST_24H.value,
    "channel_mode": ChannelMode.ALL_UNREADS.value,
    "custom_instructions": "",
    "agent_id": "extractive",
    "is_recurring": True,
}


@lru_cache(maxsize=1)
def time_zones() -> tuple[str, ...]:
    """The IANA zone names the picker offers (those the model accepts), sorted."""
    names = []
    for name in zoneinfo.available_timezones():
        if name.startswith(("posix/", "right/")) or name in ("localtime", "Factory"):
            continue
        try:
            load_zone(name)
        except InvalidZoneError:
            continue
        names.append(name)
    return tuple(sorted(names))


def storable(text: str) -> bool:
    """No NUL and no lone surrogate: text every database accepts."""
    return "\x00" not in text and not any("\ud800" <= ch <= "\udfff" for ch in text)


@dataclass
class ScheduleForm:
    """The form's values as typed (kept as they were when re-shown with errors)."""

    title: str = ""
    days: list[int] = field(default_factory=list)
    time_of_day: str = "09:00"
    timezone: str = "UTC"
    time_period: str = TimePeriod.LAST_24H.value
    channel_mode: str = ChannelMode.SPECIFIC.value
    channel_ids: list[str] = field(default_factory=list)
    agent_id: str = ""
    custom_instructions: str = ""
    is_recurring: bool = True
    update_at: int = 0
    # Before any JS: the browser's own zone replaces `timezone` on a new form.
    zone_from_browser: bool = False

    @property
    def days_of_week(self) -> int:
        """The day bits as one mask (0 when no day is ticked)."""
        mask = 0
        for bit in self.days:
            mask |= bit
        return mask

    @classmethod
    def blank(cls, agent_id: str, timezone: str) -> ScheduleForm:
        """A new schedule's form: weekdays at 09:00, the browser's (else the user's) zone."""
        zone = timezone if timezone in time_zones() else "UTC"
        return cls(days=[2, 4, 8, 16, 32], agent_id=agent_id, timezone=zone, zone_from_browser=True)

    @classmethod
    def of(cls, sr: ScheduledRecap) -> ScheduleForm:
        """The form of an existing schedule."""
        return cls(
            title=sr.title,
            days=[1 << i for i in range(7) if sr.days_of_week & (1 << i)],
            time_of_day=sr.time_of_day,
            timezone=sr.timezone,
            time_period=str(sr.time_period),
            channel_mode=str(sr.channel_mode),
            channel_ids=list(sr.channel_ids),
            agent_id=sr.agent_id,
            custom_instructions=sr.custom_instructions,
            is_recurring=sr.is_recurring,
            update_at=sr.update_at,
        )

    @classmethod
    def parse(cls, form: FormData) -> tuple[ScheduleForm, dict[str, str]]:
        """The values posted, and errors for values that cannot even be read."""
        errors: dict[str, str] = {}

        def text(name: str) -> str:
            value = form.get(name, "")
            value = value if isinstance(value, str) else ""
            if not storable(value):
                errors[name] = "This contains characters that cannot be stored."
                return ""
            return value

        def texts(name: str) -> list[str]:
            return [v for v in form.getlist(name) if isinstance(v, str) and storable(v)]

        days: list[int] = []
        for raw in texts("days"):
            if raw.isdigit() and int(raw) in (1, 2, 4, 8, 16, 32, 64):
                days.append(int(raw))
        update_at = text("update_at")
        parsed = cls(
            title=text("title"),
            days=sorted(set(days)),
            time_of_day=text("time_of_day").strip(),
            timezone=text("timezone"),
            time_period=text("time_period"),
            channel_mode=text("channel_mode"),
            channel_ids=list(dict.fromkeys(texts("channel_ids"))),
            agent_id=text("agent_id"),
            custom_instructions=text("custom_instructions").replace("\r\n", "\n"),
            is_recurring=text("is_recurring") != "once",
            update_at=int(update_at) if update_at.isdigit() and len(update_at) < 18 else 0,
        )
        return parsed, errors

    def fields(self) -> dict[str, Any]:
        """The editable fields as the service takes them (channels only in specific mode)."""
        return {
            "title": self.title,
            "days_of_week": self.days_of_week,
            "time_of_day": self.time_of_day,
            "timezone": self.timezone,
            "time_period": self.time_period,
            "channel_mode": self.channel_mode,
            "channel_ids": self.channel_ids if self.channel_mode == ChannelMode.SPECIFIC else [],
            "custom_instructions": self.custom_instructions,
            "agent_id": self.agent_id,
            "is_recurring": self.is_recurring,
        }


def field_of(err: AppError) -> str:
    """The form field an AppError of the model or the service is about ("" for none)."""
    prefix, suffix = "model.scheduled_recap.is_valid.", ".app_error"
    if err.id.startswith(prefix) and err.id.endswith(suffix):
        name = err.id[len(prefix) : -len(suffix)]
        return name if name in FIELDS else ""
    if err.id.startswith("app.agent."):
        return "agent_id"
    if err.id in (
        "app.scheduled_recap.max_channels.app_error",
        CHANNEL_ACCESS_DENIED,
    ):
        return "channel_ids"
    return ""


def message_of(err: AppError) -> str:
    """What to say next to the field."""
    if err.id in _CHANNEL_ERRORS:
        return _CHANNEL_ERRORS[err.id]
    name = field_of(err)
    if name == "channel_ids" and "at least one channel" in err.message:
        return "Choose at least one channel, or “All my unread channels”."
    if name == "time_of_day":
        return "Enter the time as HH:MM, 24-hour (00:00 to 23:59)."
    message = capped(err.message)  # it may quote input of any size
    return _FRIENDLY.get(name, message[:1].upper() + message[1:])


def field_errors(user_id: str, values: dict[str, Any], now_ms: int) -> dict[str, AppError]:
    """Every field the model rejects, each with its AppError: validate, put a valid stand-in
    in the broken field, validate again, until the rest passes."""
    values = dict(values)
    found: dict[str, AppError] = {}
    for _ in FIELDS:
        sr = ScheduledRecap.from_dict({**values, "user_id": user_id})
        sr.pre_save(now_ms)
        try:
            sr.is_valid()
            return found
        except AppError as err:
            name = field_of(err)
            if not name or name in found:
                found.setdefault("", err)
                return found
            found[name] = err
            if name == "channel_ids":
                specific = values.get("channel_mode") == ChannelMode.SPECIFIC
                values[name] = [new_id()] if specific else []
            else:
                values[name] = _STAND_INS[name]
    return found


def messages(errors: Iterable[tuple[str, AppError]]) -> dict[str, str]:
    """Field -> message, for the template."""
    return {name: message_of(err) for name, err in errors}
