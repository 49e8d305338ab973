"""Recaps: what the user reads. A recap holds one RecapChannel per channel, each with
highlights and action items that cite the posts they came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from recapd.model.app_error import AppError
from recapd.model.ids import new_id
from recapd.model.scheduled_recap import ScheduledRecap


class RecapStatus(StrEnum):
    """Lifecycle of a recap (the original's, plus `skipped` as a recorded outcome)."""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"


# Error ids the original (Mattermost) answers with, kept so its clients recognise them.
COOLDOWN_ACTIVE = "app.recap.cooldown_active.app_error"
MAX_RECAPS_REACHED = "app.recap.max_recaps_reached.app_error"
MAX_CHANNELS_EXCEEDED = "app.recap.max_channels_exceeded.app_error"
RECAP_NOT_FOUND = "app.recap.get.app_error"
RECAP_PERMISSION_DENIED = "app.recap.permission_denied"


class SkipReason(StrEnum):
    """Why an occurrence produced no recap; stored on the skipped record."""

    MISSED = "missed"
    DAILY_LIMIT = "daily_limit"
    NO_CHANNELS = "no_channels"
    DISABLED = "disabled"
    DELETED = "deleted"


# Allowed status changes. Regenerate sends a finished recap back to pending; recovery may send a
# processing recap back to pending (job retried) or straight to failed (no live job left).
RECAP_TRANSITIONS: dict[RecapStatus, frozenset[RecapStatus]] = {
    RecapStatus.PENDING: frozenset(
        {RecapStatus.PROCESSING, RecapStatus.FAILED, RecapStatus.SKIPPED}
    ),
    RecapStatus.PROCESSING: frozenset(
        {RecapStatus.COMPLETED, RecapStatus.FAILED, RecapStatus.PENDING}
    ),
    RecapStatus.COMPLETED: frozenset({RecapStatus.PENDING}),
    RecapStatus.FAILED: frozenset({RecapStatus.PENDING}),
    RecapStatus.SKIPPED: frozenset(),
}


def can_transition(old: RecapStatus | str, new: RecapStatus | str) -> bool:
    """True when a recap may move from `old` to `new`."""
    return RecapStatus(new) in RECAP_TRANSITIONS[RecapStatus(old)]


def check_transition(old: RecapStatus | str, new: RecapStatus | str) -> None:
    """Raise AppError `model.recap.status_transition.app_error` for a forbidden change."""
    if not can_transition(old, new):
        raise AppError(
            "model.recap.status_transition.app_error",
            f"a recap cannot go from {old} to {new}",
            detailed_error=f"from={old} to={new}",
            status_code=409,
        )


@dataclass(slots=True)
class Highlight:
    """One highlight of a channel, with the ids of the posts it came from."""

    text: str
    post_ids: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "post_ids": list(self.post_ids)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Highlight:
        return cls(text=str(data["text"]), post_ids=[str(p) for p in data.get("post_ids", [])])


@dataclass(slots=True)
class ActionItem:
    """A thing someone should do, its owner when stated, and the posts it came from."""

    text: str
    # Who should do it: a username, several joined by ", ", or "everyone"; "" when unstated.
    owner: str = ""
    post_ids: list[str] = field(default_factory=list)
    # Stated as an action in a meeting ("[ACTION] ...", "#action"): outranks inferred ones.
    explicit: bool = False

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "text": self.text,
            "owner": self.owner,
            "post_ids": list(self.post_ids),
        }
        if self.explicit:
            data["explicit"] = True
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ActionItem:
        return cls(
            text=str(data["text"]),
            owner=str(data.get("owner", "")),
            post_ids=[str(p) for p in data.get("post_ids", [])],
            explicit=bool(data.get("explicit", False)),
        )

    @property
    def owners(self) -> list[str]:
        """The owners one by one."""
        return [o.strip() for o in self.owner.split(",") if o.strip()]


class ChannelStatus(StrEnum):
    """Result of one channel inside a recap: a recap completes when one channel succeeded."""

    SUCCESS = "success"
    FAILED = "failed"


@dataclass(slots=True)
class RecapChannel:
    """The recap of one channel."""

    id: str = ""
    recap_id: str = ""
    channel_id: str = ""
    channel_name: str = ""
    highlights: list[Highlight] = field(default_factory=list)
    action_items: list[ActionItem] = field(default_factory=list)
    source_post_ids: list[str] = field(default_factory=list)
    status: str = ChannelStatus.SUCCESS
    error: str = ""
    create_at: int = 0
    # Questions nobody answered in the window (text + the posts asking).
    open_questions: list[Highlight] = field(default_factory=list)
    # What the reader should know about how it was made, e.g. posts left unread by a limit.
    notice: str = ""


def cited_post_ids(recap: Recap) -> set[str]:
    """Every post the recap's items cite (highlights, action items, open questions)."""
    return {
        post_id
        for ch in recap.channels
        for items in (ch.highlights, ch.action_items, ch.open_questions)
        for item in items
        for post_id in item.post_ids
    }


def outcome_kind(status: str, skip_reason: str = "") -> str:
    """An occurrence's outcome as the metrics name it: the status, or skipped_<reason>."""
    if status == RecapStatus.SKIPPED:
        return f"skipped_{skip_reason}"
    return str(status)


def skipped_outcome(
    sr: ScheduledRecap, scheduled_for: int, reason: SkipReason, why: str, now_ms: int
) -> Recap:
    """The record of an occurrence of `sr` that produced no recap, with its reason."""
    return Recap(
        id=new_id(),
        user_id=sr.user_id,
        title=sr.title,
        create_at=now_ms,
        update_at=now_ms,
        status=RecapStatus.SKIPPED,
        bot_id=sr.agent_id,
        scheduled_recap_id=sr.id,
        scheduled_for=scheduled_for,
        skip_reason=reason,
        error=why,
        channel_ids=list(sr.channel_ids),
        time_period=sr.time_period,
    )


@dataclass(slots=True)
class Recap:
    """A recap of one or more channels for one user; for a schedule, one per occurrence."""

    id: str = ""
    user_id: str = ""
    title: str = ""
    create_at: int = 0
    update_at: int = 0
    delete_at: int = 0
    read_at: int = 0
    viewed_at: int = 0
    total_message_count: int = 0
    status: str = RecapStatus.PENDING
    bot_id: str = ""
    scheduled_recap_id: str = ""
    # The occurrence this recap is the outcome of (ms); 0 for a manual recap.
    scheduled_for: int = 0
    skip_reason: str = ""
    # Why a recap failed, in words the user can read.
    error: str = ""
    # What to summarize: kept so a retried job or a regenerate makes the same recap. An empty
    # time_period means "since last read, else the latest posts" (a manual recap).
    channel_ids: list[str] = field(default_factory=list)
    time_period: str = ""
    custom_instructions: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # What making it cost: agent calls, and the parts (stretch summaries) it needed and how
    # many of them came from the part cache.
    agent_calls: int = 0
    parts_total: int = 0
    parts_reused: int = 0
    # When it last completed or failed (ms; 0: never). Only finishing moves it (update_at
    # also moves on mark read), so a delivery can tell its outcome is still the current one.
    finish_at: int = 0
    channels: list[RecapChannel] = field(default_factory=list)
