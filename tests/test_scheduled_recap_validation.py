"""ScheduledRecap.is_valid (one case per rule, exact error ids), pre_save and the JSON form."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from recapd.model.app_error import AppError
from recapd.model.ids import is_valid_id, new_id
from recapd.model.scheduled_recap import (
    CUSTOM_INSTRUCTIONS_MAX_BYTES,
    TITLE_MAX_BYTES,
    WEEKDAYS,
    ChannelMode,
    ScheduledRecap,
    TimePeriod,
)

NOW = 1_778_000_000_000
CHANNEL_A = "a" * 26
CHANNEL_B = "b" * 26


def err_id(field_name: str) -> str:
    return f"model.scheduled_recap.is_valid.{field_name}.app_error"


def valid_recap(**changes: Any) -> ScheduledRecap:
    recap = ScheduledRecap(
        id=new_id(),
        user_id=new_id(),
        title="Morning catch-up",
        days_of_week=WEEKDAYS,
        time_of_day="09:00",
        timezone="Europe/Berlin",
        time_period=TimePeriod.LAST_24H,
        channel_mode=ChannelMode.SPECIFIC,
        channel_ids=[CHANNEL_A, CHANNEL_B],
        custom_instructions="Focus on decisions.",
        agent_id="extractive",
        create_at=NOW,
        update_at=NOW,
    )
    return dataclasses.replace(recap, **changes)


def test_valid_recap_passes() -> None:
    valid_recap().is_valid()


@pytest.mark.parametrize(
    "changes",
    [
        {"time_period": "last_week"},
        {"time_period": "since_last_read"},
        {"channel_mode": "all_unreads", "channel_ids": []},
        {"days_of_week": 1},
        {"days_of_week": 127},
        {"time_of_day": "00:00"},
        {"time_of_day": "23:59"},
        {"timezone": "UTC"},
        {"timezone": "Pacific/Chatham"},
        {"title": "é" * 127},  # 254 bytes
        {"title": "x" * TITLE_MAX_BYTES},
        {"custom_instructions": ""},
        {"custom_instructions": "x" * CUSTOM_INSTRUCTIONS_MAX_BYTES},
        {"agent_id": "a" * 64},
        {"update_at": NOW + 1},
        {"channel_ids": [CHANNEL_A, CHANNEL_A]},  # duplicates are pre_save's to drop
    ],
)
def test_valid_variants_pass(changes: dict[str, Any]) -> None:
    valid_recap(**changes).is_valid()


@pytest.mark.parametrize(
    ("field_name", "changes"),
    [
        ("id", {"id": ""}),
        ("id", {"id": "short"}),
        ("id", {"id": "A" * 26}),
        ("user_id", {"user_id": ""}),
        ("user_id", {"user_id": "u" * 27}),
        ("title", {"title": ""}),
        ("title", {"title": "   \t\n"}),
        ("title", {"title": "x" * (TITLE_MAX_BYTES + 1)}),
        ("title", {"title": "é" * 128}),  # 128 characters but 256 bytes
        ("title", {"title": "bad \ud800 surrogate"}),
        ("title", {"title": None}),
        ("days_of_week", {"days_of_week": 0}),
        ("days_of_week", {"days_of_week": 128}),
        ("days_of_week", {"days_of_week": -1}),
        ("days_of_week", {"days_of_week": True}),
        ("days_of_week", {"days_of_week": False}),
        ("days_of_week", {"days_of_week": 62.0}),
        ("days_of_week", {"days_of_week": "62"}),
        ("time_of_day", {"time_of_day": ""}),
        ("time_of_day", {"time_of_day": "25:00"}),
        ("time_of_day", {"time_of_day": "24:00"}),
        ("time_of_day", {"time_of_day": "9:00"}),
        ("time_of_day", {"time_of_day": "09:60"}),
        ("time_of_day", {"time_of_day": "09:00:00"}),
        ("time_of_day", {"time_of_day": "09:00\n"}),
        ("time_of_day", {"time_of_day": " 09:00"}),
        ("time_of_day", {"time_of_day": 900}),
        ("timezone", {"timezone": ""}),
        ("timezone", {"timezone": "Local"}),
        ("timezone", {"timezone": "Mars/Olympus"}),
        ("timezone", {"timezone": " UTC"}),
        ("timezone", {"timezone": "../../etc/passwd"}),
        ("timezone", {"timezone": None}),
        ("time_period", {"time_period": ""}),
        ("time_period", {"time_period": "last_month"}),
        ("time_period", {"time_period": "LAST_24H"}),
        ("time_period", {"time_period": ["last_24h"]}),
        ("channel_mode", {"channel_mode": ""}),
        ("channel_mode", {"channel_mode": "all"}),
        ("channel_ids", {"channel_ids": []}),
        ("channel_ids", {"channel_ids": ["not-an-id"]}),
        ("channel_ids", {"channel_ids": [CHANNEL_A, ""]}),
        ("channel_ids", {"channel_ids": "a" * 26}),
        ("channel_ids", {"channel_mode": "all_unreads", "channel_ids": [CHANNEL_A]}),
        ("custom_instructions", {"custom_instructions": "x" * 501}),
        ("custom_instructions", {"custom_instructions": "é" * 251}),  # 502 bytes
        ("custom_instructions", {"custom_instructions": None}),
        ("agent_id", {"agent_id": ""}),
        ("agent_id", {"agent_id": "a" * 65}),
        ("agent_id", {"agent_id": "open ai"}),
        ("agent_id", {"agent_id": "openai\n"}),
        ("create_at", {"create_at": 0}),
        ("create_at", {"create_at": -5}),
        ("update_at", {"update_at": NOW - 1}),
    ],
)
def test_each_rule_has_its_error_id(field_name: str, changes: dict[str, Any]) -> None:
    recap = valid_recap(**changes)
    with pytest.raises(AppError) as info:
        recap.is_valid()
    assert info.value.id == err_id(field_name)
    assert info.value.status_code == 400
    assert info.value.message


def test_first_broken_rule_in_field_order_wins() -> None:
    recap = valid_recap(title="", time_of_day="25:00", agent_id="")
    with pytest.raises(AppError) as info:
        recap.is_valid()
    assert info.value.id == err_id("title")


def test_time_of_day_message_names_the_rule_and_value() -> None:
    with pytest.raises(AppError) as info:
        valid_recap(time_of_day="25:00").is_valid()
    assert info.value.message == "time_of_day must be HH:MM in 24-hour time, got '25:00'"
    assert "25:00" in info.value.detailed_error


@pytest.mark.parametrize("zone", ["", "Local", "Mars/Olympus"])
def test_refused_zones(zone: str) -> None:
    with pytest.raises(AppError) as info:
        valid_recap(timezone=zone).is_valid()
    assert info.value.id == err_id("timezone")


def test_bool_days_of_week_rejected_even_though_bool_is_int() -> None:
    with pytest.raises(AppError) as info:
        valid_recap(days_of_week=True).is_valid()
    assert info.value.id == err_id("days_of_week")


def test_plain_strings_equal_the_enums() -> None:
    valid_recap(time_period="last_24h", channel_mode="specific").is_valid()
    assert str(TimePeriod.SINCE_LAST_READ) == "since_last_read"
    assert "all_unreads" in set(ChannelMode)


# -- pre_save -------------------------------------------------------------------------------


def test_pre_save_fills_a_new_recap() -> None:
    recap = valid_recap(id="", create_at=0, update_at=0, title="  Daily  ")
    recap.channel_ids = [CHANNEL_B, CHANNEL_A, CHANNEL_B, CHANNEL_A]
    recap.pre_save(NOW)
    assert is_valid_id(recap.id)
    assert recap.create_at == NOW
    assert recap.update_at == NOW
    assert recap.title == "Daily"
    assert recap.channel_ids == [CHANNEL_B, CHANNEL_A]  # first occurrence order kept
    recap.is_valid()


def test_pre_save_keeps_id_and_create_at_of_an_existing_recap() -> None:
    recap = valid_recap()
    original_id = recap.id
    recap.pre_save(NOW + 5_000)
    assert recap.id == original_id
    assert recap.create_at == NOW
    assert recap.update_at == NOW + 5_000


def test_pre_save_gives_distinct_ids() -> None:
    first, second = valid_recap(id=""), valid_recap(id="")
    first.pre_save(NOW)
    second.pre_save(NOW)
    assert first.id != second.id


def test_pre_save_then_blank_title_still_invalid() -> None:
    recap = valid_recap(title="   ")
    recap.pre_save(NOW)
    with pytest.raises(AppError) as info:
        recap.is_valid()
    assert info.value.id == err_id("title")


# -- JSON form ------------------------------------------------------------------------------


def test_to_dict_uses_mattermost_field_names_and_plain_values() -> None:
    recap = valid_recap()
    data = recap.to_dict()
    assert list(data) == [
        "id",
        "user_id",
        "title",
        "days_of_week",
        "time_of_day",
        "timezone",
        "time_period",
        "next_run_at",
        "last_run_at",
        "run_count",
        "channel_mode",
        "channel_ids",
        "custom_instructions",
        "agent_id",
        "is_recurring",
        "enabled",
        "create_at",
        "update_at",
        "delete_at",
        # recapd additions after the original's fields
        "consecutive_failures",
        "pause_reason",
        "last_scheduled_for",
    ]
    assert type(data["time_period"]) is str
    assert type(data["channel_mode"]) is str
    assert data["channel_ids"] is not recap.channel_ids
    assert json.loads(json.dumps(data)) == data


def test_from_dict_round_trip_ignores_unknown_keys() -> None:
    recap = valid_recap()
    data = json.loads(json.dumps(recap.to_dict()))
    data["something_new"] = 1
    again = ScheduledRecap.from_dict(data)
    assert again == recap
    again.is_valid()


def test_from_dict_defaults_and_null_channel_ids() -> None:
    recap = ScheduledRecap.from_dict({"title": "x", "channel_ids": None})
    assert recap.channel_ids == []
    assert recap.is_recurring is True
    assert recap.enabled is True
    assert recap.days_of_week == 0


def test_from_dict_does_not_coerce_wrong_types() -> None:
    recap = ScheduledRecap.from_dict(valid_recap().to_dict() | {"days_of_week": "62"})
    with pytest.raises(AppError) as info:
        recap.is_valid()
    assert info.value.id == err_id("days_of_week")


@pytest.mark.parametrize(
    ("field", "value"),
    [("title", 42), ("title", ["a"]), ("is_recurring", "yes"), ("channel_ids", [{"x": 1}])],
)
def test_wrong_types_are_named_by_is_valid_not_crashed_on(field: str, value: object) -> None:
    recap = valid_recap()
    setattr(recap, field, value)
    recap.pre_save(1_790_000_000_000)  # must not raise: is_valid names the field
    with pytest.raises(AppError) as err:
        recap.is_valid()
    assert err.value.id == f"model.scheduled_recap.is_valid.{field}.app_error"
