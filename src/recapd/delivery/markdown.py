"""A finished recap as a chat message: Markdown (Mattermost) or Slack mrkdwn, one section per
channel, each highlight and action item followed by links to the posts it came from."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from recapd.delivery.text import owner_names
from recapd.model.recap import ChannelStatus, Recap, RecapStatus

# Channel-wide mentions copied from chat by the agent must not ping a whole channel when the
# message lands in one (a zero-width space after "@" keeps the text readable).
_LOUD_MENTION = re.compile(r"@(?=(?:all|channel|here)\b)", re.IGNORECASE)
_ZWSP = "\u200b"


class Flavor(StrEnum):
    """The markup a receiver understands."""

    MARKDOWN = "markdown"  # Mattermost (posts and incoming webhooks), most Markdown renderers
    SLACK = "slack"  # Slack's mrkdwn: *bold*, <url|text>, &<> escaped


@dataclass(frozen=True)
class _Markup:
    flavor: Flavor

    def text(self, raw: str) -> str:
        out = _LOUD_MENTION.sub("@" + _ZWSP, raw)
        if self.flavor == Flavor.SLACK:
            # Slack reads <...> as links and mentions; & < > must be escaped.
            out = out.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return out

    def bold(self, raw: str) -> str:
        return f"*{self.text(raw)}*" if self.flavor == Flavor.SLACK else f"**{self.text(raw)}**"

    def heading(self, raw: str) -> str:
        return self.bold(raw) if self.flavor == Flavor.SLACK else f"#### {self.text(raw)}"

    def link(self, label: str, url: str) -> str:
        return f"<{url}|{label}>" if self.flavor == Flavor.SLACK else f"[{label}]({url})"


def _links(m: _Markup, post_ids: list[str], permalinks: Mapping[str, str]) -> str:
    urls = [permalinks[p] for p in post_ids if p in permalinks]
    return "".join(f" {m.link(str(i), u)}" for i, u in enumerate(urls, 1))


def render_message(
    recap: Recap,
    permalinks: Mapping[str, str],
    *,
    flavor: Flavor = Flavor.MARKDOWN,
    recap_url: str = "",
) -> str:
    """The message telling the user their recap finished: completed with its content, or
    failed with the reason. `permalinks` maps post ids to links; `recap_url` opens the recap."""
    m = _Markup(flavor)
    title = recap.title or "Recap"
    if recap.status == RecapStatus.FAILED:
        lines = [
            m.bold(f"Your recap \u201c{title}\u201d could not be made."),
            f"Reason: {m.text(recap.error or 'unknown')}",
        ]
        if recap_url:
            lines.append(m.link("Open the recap", recap_url))
        return "\n".join(lines)
    channels = len(recap.channels)
    lines = [
        m.bold(f"Your recap \u201c{title}\u201d is ready."),
        f"{recap.total_message_count} posts read in {channels} channel"
        + ("" if channels == 1 else "s")
        + "."
        + (f" {m.link('Open the recap', recap_url)}" if recap_url else ""),
    ]
    for ch in recap.channels:
        lines += ["", m.heading(ch.channel_name or ch.channel_id)]
        if ch.status == ChannelStatus.FAILED:
            lines.append(f"_This channel could not be summarized: {m.text(ch.error)}_")
            continue
        if not ch.highlights and not ch.action_items and not ch.open_questions:
            lines.append("Nothing new.")
        if ch.highlights:
            lines.append(m.bold("Highlights"))
            lines += [
                f"- {m.text(h.text)}{_links(m, h.post_ids, permalinks)}" for h in ch.highlights
            ]
        if ch.action_items:
            lines.append(m.bold("Action items"))
            for a in ch.action_items:
                owner = f" ({m.text(owner_names(a))})" if a.owner else ""
                links = _links(m, a.post_ids, permalinks)
                lines.append(f"- [ ] {m.text(a.text)}{owner}{links}")
        if ch.open_questions:
            lines.append(m.bold("Open questions"))
            lines += [
                f"- {m.text(q.text)}{_links(m, q.post_ids, permalinks)}" for q in ch.open_questions
            ]
        if ch.notice:
            lines.append(f"_{m.text(ch.notice)}_")
    return "\n".join(lines)


def split_message(message: str, max_chars: int) -> list[str]:
    """`message` in parts of at most `max_chars`, cut at line ends where possible (a chat post
    has a length limit; Mattermost splits long bot messages the same way)."""
    if max_chars < 1:
        raise ValueError("max_chars must be at least 1")
    parts: list[str] = []
    current = ""
    for line in message.split("\n"):
        while len(line) > max_chars:  # an overlong line is cut between words (links stay whole)
            if current:
                parts.append(current)
                current = ""
            cut = line.rfind(" ", 0, max_chars + 1)
            if cut < max_chars // 4:
                cut = max_chars  # no space near the end: cut hard
            parts.append(line[:cut])
            line = line[cut:].lstrip(" ")
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > max_chars:
            parts.append(current)
            current = line
        else:
            current = candidate
    if current or not parts:
        parts.append(current)
    return parts


def truncate_message(message: str, max_chars: int) -> str:
    """`message` cut to at most `max_chars`, at a line end, with a note that it was cut."""
    if len(message) <= max_chars:
        return message
    note = "\n\u2026 (truncated)"
    head = message[: max(0, max_chars - len(note))]
    cut = head.rfind("\n")
    return (head[:cut] if cut > 0 else head) + note
