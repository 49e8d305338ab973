"""The JSON of recaps, scheduled recaps and limits as the original (Mattermost) sends them, so
its own client (`@mattermost/client`, `@mattermost/types`) reads recapd unchanged.

Every field the original has is there with its name, type and presence (a list item leaves
out `channels`; empty `channel_ids` and `custom_instructions` of a schedule are left out, as Go's
`omitempty` does). recapd's richer data rides beside them under names the original does not
use: `highlights`/`action_items` are the original's `string[]` (each item's text), and
`highlight_items`/`action_item_items`/`open_questions` hold the same items as objects with the
posts they cite (and the owner of an action item). docs/mattermost.md lists every difference.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from recapd.app.recaps import LimitStatus
from recapd.model.recap import ActionItem, Highlight, Recap, RecapChannel
from recapd.model.scheduled_recap import ScheduledRecap

LIMIT_SOURCE_SYSTEM = "system"


def _highlight(h: Highlight) -> dict[str, Any]:
    return {"text": h.text, "post_ids": list(h.post_ids)}


def _action_item(a: ActionItem) -> dict[str, Any]:
    # owner: a username, several joined by ", ", or "everyone"; explicit: a meeting's action.
    return {"text": a.text, "owner": a.owner, "post_ids": list(a.post_ids), "explicit": a.explicit}


def channel_to_wire(ch: RecapChannel) -> dict[str, Any]:
    """One channel of a recap: the original's RecapChannel plus recapd's rich items."""
    return {
        "id": ch.id,
        "recap_id": ch.recap_id,
        "channel_id": ch.channel_id,
        "channel_name": ch.channel_name,
        "highlights": [h.text for h in ch.highlights],
        "action_items": [a.text for a in ch.action_items],
        "source_post_ids": list(ch.source_post_ids),
        "create_at": ch.create_at,
        # recapd's additions
        "highlight_items": [_highlight(h) for h in ch.highlights],
        "action_item_items": [_action_item(a) for a in ch.action_items],
        "open_questions": [_highlight(q) for q in ch.open_questions],
        "notice": ch.notice,
        "status": str(ch.status),
        "error": ch.error,
    }


def recap_to_wire(r: Recap) -> dict[str, Any]:
    """A recap: the original's Recap (channels only when there are some) plus recapd's fields."""
    out: dict[str, Any] = {
        "id": r.id,
        "user_id": r.user_id,
        "title": r.title,
        "create_at": r.create_at,
        "update_at": r.update_at,
        "delete_at": r.delete_at,
        "read_at": r.read_at,
        "viewed_at": r.viewed_at,
        "total_message_count": r.total_message_count,
        "status": str(r.status),
        "bot_id": r.bot_id,
    }
    # The original leaves these out when empty (omitempty).
    if r.scheduled_recap_id:
        out["scheduled_recap_id"] = r.scheduled_recap_id
    if r.skip_reason:
        out["skip_reason"] = str(r.skip_reason)
    if r.channels:
        out["channels"] = [channel_to_wire(c) for c in r.channels]
    # recapd's additions: the occurrence a scheduled recap is the outcome of, why it failed.
    out["scheduled_for"] = r.scheduled_for
    out["error"] = r.error
    return out


def limit_status_to_wire(s: LimitStatus) -> dict[str, Any]:
    """The original's RecapLimitStatus: effective limits, today's use, the cooldown; plus
    recapd's count of posts read today."""
    return {
        "effective_limits": {
            "max_recaps_per_day": s.max_recaps_per_day,
            "max_scheduled_recaps": s.max_scheduled_recaps,
            "max_channels_per_recap": s.max_channels_per_recap,
            "max_posts_per_recap": s.max_posts_per_recap,
            "max_tokens_per_recap": s.max_tokens_per_recap,
            "max_posts_per_day": s.max_posts_per_day,
            "cooldown_minutes": s.cooldown_minutes,
            "source": LIMIT_SOURCE_SYSTEM,
            "source_id": "",
        },
        "daily": {
            "used": s.recaps_used_today,
            "limit": s.max_recaps_per_day,
            "reset_at": s.day_resets_at,
        },
        "cooldown": {
            "is_active": s.cooldown_remaining_seconds > 0,
            "available_at": s.cooldown_available_at,
            "retry_after_seconds": s.cooldown_remaining_seconds,
        },
        # recapd's addition
        "daily_posts": {"used": s.posts_used_today, "limit": s.max_posts_per_day},
    }


def scheduled_recap_to_wire(sr: ScheduledRecap) -> dict[str, Any]:
    """A schedule: the original's ScheduledRecap (empty `channel_ids` and
    `custom_instructions` left out) plus recapd's failure count, pause reason and last
    recorded occurrence."""
    out: dict[str, Any] = {}
    for f in fields(sr):
        value = getattr(sr, f.name)
        if f.name in ("channel_ids", "custom_instructions") and not value:
            continue
        out[f.name] = list(value) if f.name == "channel_ids" else value
    # Plain str, so enum members never leak into JSON encoders.
    out["time_period"] = str(sr.time_period)
    out["channel_mode"] = str(sr.channel_mode)
    return out
