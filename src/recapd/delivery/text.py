"""A recap as plain text (the command line, and later chat direct messages)."""

from __future__ import annotations

from collections.abc import Mapping

from recapd.model.recap import ActionItem, ChannelStatus, Recap


def owner_names(item: ActionItem) -> str:
    """An action item's owners as a reader sees them: "@ann, @bob", or "everyone"."""
    return ", ".join(o if o.lower() == "everyone" else f"@{o}" for o in item.owners)


def _links(post_ids: list[str], permalinks: Mapping[str, str]) -> str:
    urls = [permalinks[p] for p in post_ids if p in permalinks]
    return (" " + " ".join(f"<{u}>" for u in urls)) if urls else ""


def render_recap(recap: Recap, permalinks: Mapping[str, str]) -> str:
    """The recap as readable text: per channel, highlights and action items with their links."""
    lines = [f"# {recap.title}", f"status: {recap.status}"]
    if recap.error:
        lines.append(f"reason: {recap.error}")
    lines.append(f"posts read: {recap.total_message_count}")
    for ch in recap.channels:
        lines += ["", f"## {ch.channel_name or ch.channel_id}"]
        if ch.status == ChannelStatus.FAILED:
            lines.append(f"(failed: {ch.error})")
            continue
        if not ch.highlights and not ch.action_items and not ch.open_questions:
            lines.append("Nothing new.")
        if ch.highlights:
            lines.append("Highlights:")
            lines += [f"- {h.text}{_links(h.post_ids, permalinks)}" for h in ch.highlights]
        if ch.action_items:
            lines.append("Action items:")
            for a in ch.action_items:
                owner = f" ({owner_names(a)})" if a.owner else ""
                lines.append(f"- [ ] {a.text}{owner}{_links(a.post_ids, permalinks)}")
        if ch.open_questions:
            lines.append("Open questions:")
            lines += [f"- {q.text}{_links(q.post_ids, permalinks)}" for q in ch.open_questions]
        if ch.notice:
            lines.append(f"({ch.notice})")
    return "\n".join(lines)
