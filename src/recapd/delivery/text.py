"""A recap as plain text (the command line, and later chat direct messages)."""

from __future__ import annotations

from collections.abc import Mapping

from recapd.model.recap import ChannelStatus, Recap


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
        if not ch.highlights and not ch.action_items:
            lines.append("Nothing new.")
        if ch.highlights:
            lines.append("Highlights:")
            lines += [f"- {h.text}{_links(h.post_ids, permalinks)}" for h in ch.highlights]
        if ch.action_items:
            lines.append("Action items:")
            for a in ch.action_items:
                owner = f" (@{a.owner})" if a.owner else ""
                lines.append(f"- [ ] {a.text}{owner}{_links(a.post_ids, permalinks)}")
    return "\n".join(lines)
