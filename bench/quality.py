"""Summary quality of the extractive agent, in one run:

- ROUGE-1/2/L F1 against human references. DialogSum (test split, three references per
  dialogue): each "#PersonN#: ..." line becomes a post by that speaker; the recap's highlights,
  joined, are the summary. Baselines in the same run: the first three turns, three random
  turns (fixed seed), and the opening turns cut to the recap's length (a longer baseline
  flatters the comparison, so the length-matched one is the fair yardstick). QMSum (general
  summaries of long meetings) goes through map-reduce: parts that fit a small context are
  summarized one by one, then merged.
- The IRC measures of bench/irc_quality.py: conversation links against two baselines,
  meeting AGREED/ACTION coverage, what the highlights are made of.

Every summary goes the pipeline's way: the conversation step, the map stage, the reader's
stage (merge).

    python3 bench/quality.py [--data ../shared/data] [--split test|dev] [--limit N] [--show rust.1]

Needs `rouge-score`. Skips a data set, with a message, when its files are absent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchenv import enter

if __name__ == "__main__":
    enter(__file__)

import irc_quality
from rich.console import Console
from rich.table import Table

from recapd.agents.base import AgentPost, AgentResult, MergeRequest, SummarizeRequest
from recapd.agents.extractive import ExtractiveAgent
from recapd.agents.prompt import format_post_line
from recapd.summarize.conversations import annotate

try:
    from rouge_score import rouge_scorer
except ImportError:  # pragma: no cover - told to the user below
    rouge_scorer = None

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MEASURES = ("rouge1", "rouge2", "rougeL")
BASE_MS = 1_700_000_000_000
TURN_MS = 30_000
console = Console(width=150)


@dataclass
class Scores:
    """Mean F1 per ROUGE measure over documents (each the mean over its references)."""

    per_measure: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in MEASURES})
    words: list[int] = field(default_factory=list)

    def add(self, scorer: rouge_scorer.RougeScorer, summary: str, refs: Sequence[str]) -> None:
        results = [scorer.score(ref, summary) for ref in refs]
        for measure in MEASURES:
            self.per_measure[measure].append(statistics.fmean(r[measure].fmeasure for r in results))
        self.words.append(len(summary.split()))

    def mean(self, measure: str) -> float:
        values = self.per_measure[measure]
        return 100 * statistics.fmean(values) if values else 0.0


def _posts(turns: Sequence[tuple[str, str]]) -> list[AgentPost]:
    return [
        AgentPost(
            id=f"p{index:05d}",
            author=re.sub(r"[^\w.\-]", "_", speaker.strip()) or "speaker",
            create_at=BASE_MS + index * TURN_MS,
            message=text,
        )
        for index, (speaker, text) in enumerate(turns)
    ]


def _as_text(posts: Sequence[AgentPost]) -> str:
    # Baselines get the same "@author: text" shape as the agent's highlights.
    return " ".join(f"@{p.author}: {p.message}" for p in posts)


def _lead_words(posts: Sequence[AgentPost], words: int) -> str:
    """The opening of the transcript, cut to `words` words (a length-matched lead baseline)."""
    return " ".join(_as_text(posts[:50]).split()[:words])


def _request(posts: list[AgentPost], part: int = 1, parts: int = 1) -> SummarizeRequest:
    return SummarizeRequest(
        channel_id="bench",
        channel_name="bench",
        posts=posts,
        part=part,
        parts=parts,
    )


async def _reduce(agent: ExtractiveAgent, partials: list[AgentResult]) -> AgentResult:
    """The reader's stage, for a reader who is not in the conversation."""
    return await agent.merge(MergeRequest("bench", "bench", partials, "reader", "reader"))


def _summary(result: AgentResult) -> str:
    return " ".join(h.text for h in result.highlights)


_TURN_RE = re.compile(r"^\s*#([^#]+)#\s*:\s*(.*)$")


def _dialogue_turns(dialogue: str) -> list[tuple[str, str]]:
    turns: list[tuple[str, str]] = []
    for line in dialogue.splitlines():
        match = _TURN_RE.match(line)
        if match:
            turns.append((match.group(1), match.group(2)))
        elif turns and line.strip():
            speaker, text = turns[-1]
            turns[-1] = (speaker, f"{text} {line.strip()}")
    return turns


async def bench_dialogsum(
    path: Path, agent: ExtractiveAgent, scorer: rouge_scorer.RougeScorer, limit: int | None
) -> dict[str, Scores]:
    """Scores of the agent and both baselines on one DialogSum split."""
    rng = random.Random(20240521)
    scores = {
        "extractive": Scores(),
        "first 3 turns": Scores(),
        "random 3 turns": Scores(),
        "first turns, same length": Scores(),
    }
    with path.open(encoding="utf-8") as stream:
        for number, line in enumerate(stream):
            if limit is not None and number >= limit:
                break
            record = json.loads(line)
            refs = [record[k] for k in ("summary1", "summary2", "summary3") if record.get(k)]
            refs = refs or [record["summary"]]
            posts = annotate(_posts(_dialogue_turns(record["dialogue"])))
            if not posts:
                continue
            result = await _reduce(agent, [await agent.summarize(_request(posts))])
            summary = _summary(result)
            scores["extractive"].add(scorer, summary, refs)
            scores["first turns, same length"].add(
                scorer, _lead_words(posts, len(summary.split())), refs
            )
            scores["first 3 turns"].add(scorer, _as_text(posts[:3]), refs)
            picked = sorted(rng.sample(range(len(posts)), min(3, len(posts))))
            scores["random 3 turns"].add(scorer, _as_text([posts[i] for i in picked]), refs)
    return scores


def split_by_tokens(posts: list[AgentPost], budget: int) -> list[list[AgentPost]]:
    """Consecutive parts whose prompt lines fit `budget` estimated tokens."""
    parts: list[list[AgentPost]] = [[]]
    used = 0
    for post in posts:
        cost = len(format_post_line(post).encode()) // 4 + 1
        if parts[-1] and used + cost > budget:
            parts.append([])
            used = 0
        parts[-1].append(post)
        used += cost
    return parts


async def bench_qmsum(
    path: Path,
    agent: ExtractiveAgent,
    scorer: rouge_scorer.RougeScorer,
    limit: int | None,
    part_tokens: int,
) -> tuple[dict[str, Scores], float]:
    """Scores of map-reduce summaries of whole meetings, and the mean number of parts."""
    scores = {
        "extractive (map-reduce)": Scores(),
        "first 3 turns": Scores(),
        "first turns, same length": Scores(),
    }
    part_counts: list[int] = []
    with path.open(encoding="utf-8") as stream:
        for number, line in enumerate(stream):
            if limit is not None and number >= limit:
                break
            record = json.loads(line)
            general = record.get("general_query_list") or []
            refs = [q["answer"] for q in general if q.get("answer")]
            if not refs:
                continue
            turns = [(t["speaker"], t["content"]) for t in record["meeting_transcripts"]]
            posts = annotate(_posts(turns))
            parts = split_by_tokens(posts, part_tokens)
            part_counts.append(len(parts))
            partials = [
                await agent.summarize(_request(part, i, len(parts)))
                for i, part in enumerate(parts, start=1)
            ]
            merged = await _reduce(agent, partials)
            summary = _summary(merged)
            scores["extractive (map-reduce)"].add(scorer, summary, refs)
            scores["first 3 turns"].add(scorer, _as_text(posts[:3]), refs)
            scores["first turns, same length"].add(
                scorer, _lead_words(posts, len(summary.split())), refs
            )
    return scores, statistics.fmean(part_counts) if part_counts else 0.0


def _table(title: str, rows: dict[str, Scores]) -> Table:
    table = Table(title=title, caption="F1 x 100, mean over documents of the mean over references")
    table.add_column("summary", no_wrap=True)
    for measure in ("ROUGE-1", "ROUGE-2", "ROUGE-L"):
        table.add_column(measure, justify="right")
    table.add_column("words", justify="right")
    table.add_column("docs", justify="right")
    for name, scores in rows.items():
        table.add_row(
            name,
            *(f"{scores.mean(m):.2f}" for m in MEASURES),
            f"{statistics.fmean(scores.words):.0f}" if scores.words else "-",
            str(len(scores.words)),
        )
    return table


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench; exit 1 when the agent misses the DialogSum target."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data folder")
    parser.add_argument("--split", choices=("test", "dev"), default="test")
    parser.add_argument("--limit", type=int, default=None, help="documents per data set")
    parser.add_argument("--part-tokens", type=int, default=2000, help="QMSum part size")
    parser.add_argument("--show", default="", help="IRC logs to print whole recaps of (rust.1)")
    args = parser.parse_args(argv)
    if rouge_scorer is None:
        console.print("[red]rouge-score is not installed: pip install rouge-score[/red]")
        return 2
    scorer = rouge_scorer.RougeScorer(list(MEASURES), use_stemmer=True)
    agent = ExtractiveAgent()
    target_met = True
    ran = False

    def skip(name: str, path: Path) -> None:
        console.print(f"[yellow]skipping {name}: {path} not found[/yellow]")

    dialogsum = args.data / "dialogsum" / f"dialogsum.{args.split}.jsonl"
    if dialogsum.is_file():
        ran = True
        started = time.perf_counter()
        rows = asyncio.run(bench_dialogsum(dialogsum, agent, scorer, args.limit))
        elapsed = time.perf_counter() - started
        console.print(_table(f"DialogSum {args.split} ({elapsed:.1f} s)", rows))
        ours, lead = rows["extractive"], rows["first 3 turns"]
        target_met = all(ours.mean(m) > lead.mean(m) for m in MEASURES)
        verdict = "[green]met[/green]" if target_met else "[red]missed[/red]"
        console.print(f"target (beat first 3 turns on every measure): {verdict}")
    else:
        skip("DialogSum", dialogsum)

    qmsum = args.data / "qmsum" / "qmsum.test.jsonl"
    if qmsum.is_file():
        ran = True
        started = time.perf_counter()
        rows, mean_parts = asyncio.run(
            bench_qmsum(qmsum, agent, scorer, args.limit, args.part_tokens)
        )
        elapsed = time.perf_counter() - started
        title = (
            f"QMSum general summaries, map-reduce over {args.part_tokens}-token parts "
            f"({mean_parts:.1f} parts per meeting, {elapsed:.1f} s)"
        )
        console.print(_table(title, rows))
    else:
        skip("QMSum", qmsum)

    if (args.data / "irc").is_dir():
        ran = True
        links = irc_quality.link_table(args.data)
        if links is not None:
            console.print(links)
        for table in irc_quality.recap_tables(args.data, irc_quality.recapd_recap):
            console.print(table)
        if args.show:
            irc_quality.show(args.data, args.show.split(","), irc_quality.recapd_recap)
    else:
        skip("IRC logs", args.data / "irc")

    if not ran:
        console.print("no data set found; nothing measured")
        return 0
    return 0 if target_met else 1


if __name__ == "__main__":
    sys.exit(main())
