"""Recaps of the annotated IRC logs (../shared/data/irc): conversation links, meetings, and
what the highlights are made of. Used by bench/quality.py; runnable alone.

    python3 bench/irc_quality.py [--data ../shared/data] [--show rust.1,stripe.0]

Measures, each on the same logs and in the same run:
- conversation links: link accuracy and cluster F1 of recapd's conversation step against
  "the previous message" and "the addressed nick's last message, else the previous one";
- meetings: the share of the `ubuntu-meeting` logs' AGREED/ACTION lines that the recap cites;
- highlights of the rust, stripe and ubuntu-meeting recaps: the share whose lead post is a
  bot's, the share that are a question shown without the answer the log has, and pairs of
  highlights that say the same thing (word cosine >= 0.5, or the same lead post).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchenv import enter

if __name__ == "__main__":
    enter(__file__)

from rich.console import Console
from rich.table import Table

from recapd.agents.base import AgentPost, AgentResult, MergeRequest, SummarizeRequest
from recapd.agents.extractive import ExtractiveAgent
from recapd.chat.importers.irc_log import LogLine, read_log, read_reply_links
from recapd.model.chat import DEFAULT_BOT_NAMES
from recapd.summarize.chunking import split_parts
from recapd.summarize.conversations import annotate, is_bot_name
from recapd.summarize.link_eval import (
    addressed_baseline,
    load_annotated,
    log_posts,
    previous_baseline,
    recapd_links,
    score_links,
)
from recapd.summarize.pipeline import PROMPT_RESERVE_TOKENS

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
console = Console(width=150)
# The default agent's context, as a recap of one channel would use it.
PART_TOKENS = 32_000 - PROMPT_RESERVE_TOKENS
_MEETING_ITEM_RE = re.compile(
    r"^\s*(?:\[(?:agreed|action)\]|#(?:agreed|action)\b|(?:agreed|action)\s*:)\s*(?P<rest>.+)",
    re.IGNORECASE,
)
_WORD_RE = re.compile(r"[a-z0-9']{3,}")

# (log file name, its posts) -> the recap
Recapper = Callable[[str, list[AgentPost]], AgentResult]


async def _recap(agent: ExtractiveAgent, posts: list[AgentPost], reader: str) -> AgentResult:
    """What the pipeline does with one channel: structure, parts, map, reduce."""
    posts = annotate(posts, DEFAULT_BOT_NAMES)
    parts = split_parts(posts, PART_TOKENS)
    partials = [
        await agent.summarize(SummarizeRequest("c", "bench", part, part=i, parts=len(parts)))
        for i, part in enumerate(parts, start=1)
    ]
    return await agent.merge(MergeRequest("c", "bench", partials, "rid", reader))


def recapd_recap(name: str, posts: list[AgentPost]) -> AgentResult:
    """recapd's recap of a whole log for a reader who is not in it."""
    return asyncio.run(_recap(ExtractiveAgent(), posts, "reader"))


@dataclass
class HighlightStats:
    """What the highlights of some recaps are made of."""

    highlights: int = 0
    bot_led: int = 0
    unanswered: int = 0
    duplicate_pairs: int = 0
    citations: list[int] = field(default_factory=list)
    action_items: int = 0
    open_questions: int = 0


def _words(text: str) -> Counter[str]:
    return Counter(_WORD_RE.findall(text.lower().replace("@", " ")))


def _cosine(a: Counter[str], b: Counter[str]) -> float:
    dot = sum(v * b[k] for k, v in a.items())
    norm = math.sqrt(sum(v * v for v in a.values())) * math.sqrt(sum(v * v for v in b.values()))
    return dot / norm if norm else 0.0


def highlight_stats(
    stats: HighlightStats, result: AgentResult, lines: Sequence[LogLine], gold: dict[int, set[int]]
) -> None:
    """Add one recap's highlights to `stats` (gold links tell which questions had answers)."""
    by_index = {line.index: line for line in lines}
    answered = {p for child, parents in gold.items() for p in parents if p != child}
    stats.action_items += len(result.action_items)
    stats.open_questions += len(result.open_questions)
    leads: list[int] = []
    for h in result.highlights:
        stats.highlights += 1
        stats.citations.append(len(h.post_ids))
        if not h.post_ids:
            continue
        lead = by_index[int(h.post_ids[0])]
        leads.append(lead.index)
        if is_bot_name(lead.nick):
            stats.bot_led += 1
        text = h.text.split(" \u2014 ", 1)
        if lead.text.rstrip().endswith("?") and lead.index in answered and len(text) == 1:
            stats.unanswered += 1
    vecs = [_words(h.text) for h in result.highlights]
    for i in range(len(vecs)):
        for j in range(i + 1, len(vecs)):
            same_lead = i < len(leads) and j < len(leads) and leads[i] == leads[j]
            if same_lead or _cosine(vecs[i], vecs[j]) >= 0.5:
                stats.duplicate_pairs += 1


def meeting_items(lines: Sequence[LogLine]) -> dict[str, list[int]]:
    """AGREED/ACTION items said by people (bot echoes left out): text -> its lines."""
    items: dict[str, list[int]] = {}
    for line in lines:
        if line.type.startswith("system_") or is_bot_name(line.nick):
            continue
        m = _MEETING_ITEM_RE.match(line.text)
        if m is not None:
            items.setdefault(" ".join(m["rest"].lower().split()), []).append(line.index)
    return items


def meeting_coverage(result: AgentResult, lines: Sequence[LogLine]) -> tuple[int, int]:
    """(items cited by the recap, items in the log)."""
    cited = {
        int(p)
        for items in (result.highlights, result.action_items)
        for item in items
        for p in item.post_ids
    }
    items = meeting_items(lines)
    return sum(1 for where in items.values() if cited & set(where)), len(items)


def link_table(data: Path) -> Table | None:
    """Link accuracy and cluster F1 on both annotated sets, recapd and both baselines."""
    sets = {
        "new-domains": sorted((data / "irc" / "new-domains").glob("*.ascii.txt")),
        "ubuntu-test": sorted((data / "irc" / "ubuntu-test").glob("*.raw.txt")),
    }
    if not any(sets.values()):
        return None
    table = Table(title="Conversation links on hand-annotated IRC logs")
    table.add_column("set")
    table.add_column("links", justify="right")
    for name in ("previous message", "addressed nick, else previous", "recapd"):
        table.add_column(f"{name}: link acc.", justify="right")
        table.add_column("cluster F1", justify="right")
    for name, files in sets.items():
        logs = [load_annotated(f) for f in files]
        scores = [
            score_links(logs, fn) for fn in (previous_baseline, addressed_baseline, recapd_links)
        ]
        row = [name, str(scores[0].links)]
        for s in scores:
            row += [f"{100 * s.accuracy:.1f}%", f"{100 * s.cluster_f1:.1f}"]
        table.add_row(*row)
    return table


def recap_tables(data: Path, recap: Recapper) -> list[Table]:
    """Meeting coverage and highlight make-up of the recaps of whole logs."""
    folder = data / "irc" / "new-domains"
    meetings = Table(title="Meeting AGREED/ACTION items in the recap (whole log in the window)")
    meetings.add_column("log")
    meetings.add_column("cited", justify="right")
    meetings.add_column("items", justify="right")
    per_channel: dict[str, HighlightStats] = {}
    total_cited = total_items = 0
    for channel in ("rust", "stripe", "ubuntu-meeting"):
        stats = per_channel.setdefault(channel, HighlightStats())
        for path in sorted(folder.glob(f"{channel}.*.ascii.txt")):
            lines = read_log(path)
            result = recap(path.name, log_posts(lines))
            highlight_stats(stats, result, lines, read_reply_links(path))
            if channel == "ubuntu-meeting":
                cited, items = meeting_coverage(result, lines)
                total_cited, total_items = total_cited + cited, total_items + items
                meetings.add_row(path.name.split(".ascii")[0], str(cited), str(items))
    meetings.add_row("all", str(total_cited), str(total_items))
    table = Table(title="Highlights of the recaps of whole logs (3 logs per channel)")
    for column in (
        "channel",
        "highlights",
        "bot-led",
        "question w/o its answer",
        "duplicate pairs",
        "citations mean/max",
        "action items",
        "open questions",
    ):
        table.add_column(column, justify="right" if column != "channel" else "left")
    for channel, s in per_channel.items():
        mean = sum(s.citations) / len(s.citations) if s.citations else 0.0
        table.add_row(
            channel,
            str(s.highlights),
            f"{s.bot_led} ({100 * s.bot_led / max(1, s.highlights):.0f}%)",
            f"{s.unanswered} ({100 * s.unanswered / max(1, s.highlights):.0f}%)",
            str(s.duplicate_pairs),
            f"{mean:.1f}/{max(s.citations, default=0)}",
            str(s.action_items),
            str(s.open_questions),
        )
    return [meetings, table]


def show(data: Path, names: Sequence[str], recap: Recapper) -> None:
    """Print whole recaps, for reading."""
    for name in names:
        path = data / "irc" / "new-domains" / f"{name}.ascii.txt"
        lines = read_log(path)
        by_index = {line.index: line for line in lines}
        result = recap(path.name, log_posts(lines))
        console.print(f"\n[bold]#{name}[/bold] ({len(lines)} lines)", highlight=False)
        for title, items in (
            ("Highlights", result.highlights),
            ("Action items", result.action_items),
            ("Open questions", result.open_questions),
        ):
            if not items:
                continue
            console.print(f"{title}:", highlight=False)
            for item in items:
                owner = getattr(item, "owner", "")
                when = by_index[int(item.post_ids[0])].create_at if item.post_ids else 0
                stamp = f"{when // 3_600_000 % 24:02d}:{when // 60_000 % 60:02d}"
                console.print(
                    f"- {item.text}"
                    + (f" (owner: {owner})" if owner else "")
                    + f" [{stamp}, {len(item.post_ids)} posts]",
                    highlight=False,
                    markup=False,
                )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data folder")
    parser.add_argument("--show", default="", help="logs to print whole recaps of, e.g. rust.1")
    args = parser.parse_args(argv)
    if not (args.data / "irc").is_dir():
        console.print(f"[yellow]skipping the IRC measures: {args.data / 'irc'} not found[/yellow]")
        return 0
    links = link_table(args.data)
    if links is not None:
        console.print(links)
    for table in recap_tables(args.data, recapd_recap):
        console.print(table)
    if args.show:
        show(args.data, [n for n in args.show.split(",") if n], recapd_recap)
    return 0


if __name__ == "__main__":
    sys.exit(main())
