"""The `/recap` slash command of a Mattermost server: parse the text, act as the user, answer.

    /recap                                      help
    /recap now [~channel ...]                   a recap now (the current channel by default)
    /recap schedule <days> <HH:MM> [zone] ~channel ... | unreads
    /recap list
    /recap pause|resume|delete|run <id>         an id from the list, or its first characters

Mattermost waits 3 seconds for the answer, so each command is answered from what is at hand:
a recap or a run is queued as a job (the recap job is asynchronous anyway), and when it has
finished a short note goes to the command's `response_url` (the recap itself arrives as a
direct message from the bot). A command that has not finished within `ANSWER_BUDGET_S` is
answered "working on it" and its real answer follows through the response URL too. The note
watchers live in this process: after a restart the note is lost, the direct message is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from recapd.app.recaps import RecapService
from recapd.app.scheduled_recaps import ScheduledRecapService
from recapd.chat.mattermost.client import cookie_free_jar
from recapd.chat.mattermost.source import MattermostChatSource
from recapd.chat.source import ChatSource
from recapd.clock import Clock
from recapd.config import Settings
from recapd.model.app_error import AppError
from recapd.model.chat import Channel, ChannelType
from recapd.model.recap import RECAP_PERMISSION_DENIED, Recap, RecapStatus
from recapd.model.scheduled_recap import (
    CHANNEL_ACCESS_DENIED,
    EVERY_DAY,
    FRIDAY,
    MONDAY,
    SATURDAY,
    SUNDAY,
    THURSDAY,
    TUESDAY,
    WEDNESDAY,
    WEEKDAYS,
    ChannelMode,
    ScheduledRecap,
    TimePeriod,
)
from recapd.model.tz import InvalidZoneError, load_zone, ms_to_local
from recapd.store.store import Store

log = logging.getLogger(__name__)

SleepFn = Callable[[float], Awaitable[None]]

# Mattermost gives up on a command after 3 s (slash commands' documented limit); answer sooner.
ANSWER_BUDGET_S = 2.5
# A response URL takes posts for 30 minutes (CommandWebhookLifetime), 5 at most.
RESPONSE_URL_LIFETIME_MS = 30 * 60_000
# How often a note watcher looks at its recap (real seconds).
WATCH_POLL_S = 1.0
# Watchers in flight per process; beyond this a command gets no note (its DM still comes).
MAX_WATCHERS = 1000
RESPONSE_TIMEOUT_S = 10.0
TITLE_MAX_CHARS = 80
MIN_ID_PREFIX = 4
UNREADS_WORDS = frozenset({"unreads", "unread", "all_unreads"})
FINISHED = (RecapStatus.COMPLETED, RecapStatus.FAILED, RecapStatus.SKIPPED)

_DAY_BITS = {
    "sun": SUNDAY,
    "mon": MONDAY,
    "tue": TUESDAY,
    "wed": WEDNESDAY,
    "thu": THURSDAY,
    "fri": FRIDAY,
    "sat": SATURDAY,
}
_DAY_ORDER = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_DAY_WORDS = {
    "daily": EVERY_DAY,
    "everyday": EVERY_DAY,
    "weekdays": WEEKDAYS,
    "weekends": SATURDAY | SUNDAY,
}
_TIME = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")

HELP = """\
**/recap**: AI recaps of your channels, delivered to you as direct messages.
- `/recap now [~channel ...]`: a recap now (of this channel when none is named)
- `/recap schedule <days> <HH:MM> [zone] ~channel ...`: a recurring recap. Days: `daily`, \
`weekdays`, `weekends` or a list such as `mon,wed,fri` (ranges like `mon-thu` too). The zone \
is an IANA name such as `Europe/Paris` (your profile's zone when left out). Instead of \
channels, `unreads` recaps every channel with unread messages at that time. The window is the \
last 24 hours for daily recaps, the last week for weekly ones, else what you have not read.
- `/recap list`: your schedules
- `/recap pause|resume|delete|run <id>`: change or run a schedule now (the id from the list; \
its first characters are enough)"""


class SlashError(Exception):
    """A command that cannot be done as typed; its message is the answer."""


@dataclass(frozen=True)
class SlashRequest:
    """The fields of Mattermost's command request that recapd uses."""

    user_id: str
    team_id: str
    channel_id: str
    text: str
    command: str = "/recap"
    user_name: str = ""
    response_url: str = ""


@dataclass(frozen=True)
class SlashReply:
    """An ephemeral answer (only the user who typed the command sees it)."""

    text: str

    def to_dict(self) -> dict[str, Any]:
        """The CommandResponse JSON."""
        return {"response_type": "ephemeral", "text": self.text}


class SlashCommands:
    """Runs `/recap` commands as the Mattermost user who typed them."""

    def __init__(
        self,
        store: Store,
        recaps: RecapService,
        schedules: ScheduledRecapService,
        chat: ChatSource,
        settings: Settings,
        clock: Clock,
        *,
        sleep: SleepFn | None = None,
    ) -> None:
        self.store = store
        self.recaps = recaps
        self.schedules = schedules
        self.chat = chat
        self.settings = settings
        self.clock = clock
        self._sleep = sleep or asyncio.sleep
        self._tasks: set[asyncio.Task[None]] = set()

    # -- answering within the limit ------------------------------------------------------------

    async def respond(self, req: SlashRequest) -> SlashReply:
        """The answer to send back now; a slow command answers later via the response URL.

        The budget covers everything, checking the response URL too (which may ask a slow
        Mattermost server for its SiteURL)."""
        check = asyncio.ensure_future(self._checked_response_url(req.response_url))

        async def run() -> SlashReply:
            url = await check
            return await self.handle(dataclasses.replace(req, response_url=url))

        work = asyncio.ensure_future(run())
        done, _ = await asyncio.wait({work}, timeout=ANSWER_BUDGET_S)
        if done:
            return work.result()

        async def answer_later() -> None:
            reply = await work
            if check.result():
                await self.post_response(check.result(), reply)

        self._spawn(answer_later())
        if not check.done():
            return SlashReply(
                "Working on it; the answer follows here, or see `/recap list` in a moment."
            )
        if not check.result():
            return SlashReply("Still working on it; check `/recap list` in a moment.")
        return SlashReply("Working on it; the answer follows here.")

    async def handle(self, req: SlashRequest) -> SlashReply:
        """The answer to one command; a mistake in it is answered, never raised."""
        words = req.text.split()
        sub = words[0].lower() if words else "help"
        args = words[1:]
        try:
            if sub == "help":
                return SlashReply(HELP)
            if sub == "now":
                return await self._now(req, args)
            if sub == "schedule":
                return await self._schedule(req, args)
            if sub == "list":
                return await self._list(req)
            if sub in ("pause", "resume", "delete", "run"):
                return await self._change(req, sub, args)
            raise SlashError(f"Unknown command `{sub}`. Type `/recap` for help.")
        except SlashError as err:
            return SlashReply(str(err))
        except AppError as err:
            return SlashReply(_app_error_text(err))

    # -- commands ------------------------------------------------------------------------------

    async def _now(self, req: SlashRequest, args: list[str]) -> SlashReply:
        if args:
            channels = await self.resolve_channels(req, args)
        else:
            channels = [await self._current_channel(req)]
        title = _title(channels)
        recap = await self.recaps.create(
            req.user_id, title=title, channel_ids=[c.id for c in channels]
        )
        self._watch(req.response_url, lambda: self._recap(recap.id))
        return SlashReply(
            f"Making your recap \u201c{title}\u201d. It comes as a direct message from the bot"
            + (", and a note here when it is ready." if req.response_url else ".")
        )

    async def _schedule(self, req: SlashRequest, args: list[str]) -> SlashReply:
        if len(args) < 3:
            raise SlashError(
                "Usage: `/recap schedule <days> <HH:MM> [zone] ~channel ...`, "
                "e.g. `/recap schedule weekdays 09:00 Europe/Paris ~town-square`."
            )
        days = parse_days(args[0])
        time_of_day = parse_time(args[1])
        rest = args[2:]
        zone = ""
        if not rest[0].startswith("~") and rest[0].lower() not in UNREADS_WORDS:
            zone = parse_zone(rest[0])
            rest = rest[1:]
        fields: dict[str, Any] = {
            "days_of_week": days,
            "time_of_day": time_of_day,
            "time_period": period_for(days),
        }
        if len(rest) == 1 and rest[0].lower() in UNREADS_WORDS:
            fields |= {"channel_mode": ChannelMode.ALL_UNREADS.value, "channel_ids": []}
            fields["title"] = "Recap of unread channels"
        else:
            if not rest:
                raise SlashError("Name the channels to recap, e.g. `~town-square`, or `unreads`.")
            channels = await self.resolve_channels(req, rest)
            fields |= {
                "channel_mode": ChannelMode.SPECIFIC.value,
                "channel_ids": [c.id for c in channels],
                "title": _title(channels),
            }
        note = ""
        if zone:
            fields["timezone"] = zone
        elif not await self.schedules.default_timezone(req.user_id):
            fields["timezone"] = "UTC"
            note = " (your profile has no time zone, so UTC; name one to change it)"
        sr = await self.schedules.create(req.user_id, fields)
        return SlashReply(
            f"Scheduled \u201c{sr.title}\u201d: {describe_days(sr.days_of_week)} at "
            f"{sr.time_of_day} {sr.timezone}{note}. Next: {_local(sr.next_run_at, sr.timezone)}. "
            f"Id `{sr.id}`."
        )

    async def _list(self, req: SlashRequest) -> SlashReply:
        found = await self.schedules.list_for_user(req.user_id, 0, 200)
        if not found:
            return SlashReply(
                "You have no scheduled recaps. Make one with "
                "`/recap schedule <days> <HH:MM> [zone] ~channel ...`."
            )
        lines = ["| id | title | when | state | next run |", "|---|---|---|---|---|"]
        for sr in found:
            state = "active" if sr.enabled else "paused"
            if sr.pause_reason and not sr.enabled:
                state = f"paused: {sr.pause_reason}"
            next_run = _local(sr.next_run_at, sr.timezone) if sr.enabled else ""
            when = f"{describe_days(sr.days_of_week)} {sr.time_of_day} {sr.timezone}"
            title = sr.title.replace("|", "\\|")
            lines.append(f"| `{sr.id}` | {title} | {when} | {state} | {next_run} |")
        return SlashReply("\n".join(lines))

    async def _change(self, req: SlashRequest, verb: str, args: list[str]) -> SlashReply:
        if len(args) != 1:
            raise SlashError(f"Usage: `/recap {verb} <id>` (the id from `/recap list`).")
        sr = await self._find_schedule(req.user_id, args[0])
        if verb == "pause":
            await self.schedules.pause(req.user_id, sr.id)
            return SlashReply(f"Paused \u201c{sr.title}\u201d.")
        if verb == "resume":
            sr = await self.schedules.resume(req.user_id, sr.id)
            return SlashReply(
                f"Resumed \u201c{sr.title}\u201d. Next: {_local(sr.next_run_at, sr.timezone)}."
            )
        if verb == "delete":
            await self.schedules.delete(req.user_id, sr.id)
            return SlashReply(f"Deleted \u201c{sr.title}\u201d.")
        job = await self.schedules.run_now(req.user_id, sr.id)
        scheduled_for = int(job.data.get("scheduled_for", 0))
        self._watch(
            req.response_url,
            lambda: asyncio.to_thread(self.store.recaps.get_by_occurrence, sr.id, scheduled_for),
        )
        return SlashReply(
            f"Running \u201c{sr.title}\u201d now. The recap comes as a direct message"
            + (", and a note here when it is ready." if req.response_url else ".")
        )

    # -- lookups -------------------------------------------------------------------------------

    async def resolve_channels(self, req: SlashRequest, refs: list[str]) -> list[Channel]:
        """`~name` references as channels the user is a member of (the command's team first)."""
        mine = [
            c
            for c in await self.chat.channels_of_user(req.user_id)
            if c.type not in (ChannelType.DIRECT, ChannelType.GROUP)
        ]
        found: list[Channel] = []
        for ref in refs:
            if not ref.startswith("~") or len(ref) < 2:
                raise SlashError(f"`{ref}` is not a channel: write channels as `~name`.")
            name = ref[1:].rstrip(".,;:").lower()
            matches = [c for c in mine if c.name.lower() == name]
            here = [c for c in matches if c.team_id == req.team_id]
            if here:
                matches = here
            if not matches:
                raise SlashError(f"`~{name}`: you are not in a channel of that name.")
            if len(matches) > 1:
                raise SlashError(f"`~{name}` names channels in several teams; run it there.")
            if matches[0] not in found:
                found.append(matches[0])
        return found

    async def _current_channel(self, req: SlashRequest) -> Channel:
        if not await self.chat.can_read(req.user_id, req.channel_id):
            raise SlashError(
                "recapd cannot read this channel for you (the bot must be a member of it). "
                "Name channels: `/recap now ~channel`."
            )
        return await self.chat.get_channel(req.channel_id)

    async def _find_schedule(self, user_id: str, ref: str) -> ScheduledRecap:
        ref = ref.strip("`").lower()
        found = await self.schedules.list_for_user(user_id, 0, 200)
        exact = [sr for sr in found if sr.id == ref]
        if exact:
            return exact[0]
        matches = [sr for sr in found if sr.id.startswith(ref)] if len(ref) >= MIN_ID_PREFIX else []
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise SlashError(f"`{ref}` starts several of your schedules; give more of the id.")
        raise SlashError(f"You have no schedule `{ref}`. See `/recap list`.")

    async def _recap(self, recap_id: str) -> Recap | None:
        return await asyncio.to_thread(self.store.recaps.get, recap_id, include_deleted=True)

    # -- the note on the response URL ----------------------------------------------------------

    async def _checked_response_url(self, url: str) -> str:
        """The response URL when it is a command hook of the Mattermost server (its configured
        URL or its SiteURL, either perhaps under a sub-path), else "" (no note): recapd only
        ever POSTs to the server that sent the command."""
        if not url:
            return ""
        if _is_hook_of(url, self.settings.mattermost_url):
            return url
        if isinstance(self.chat, MattermostChatSource):
            with contextlib.suppress(AppError):  # the configured URL still counts
                if _is_hook_of(url, await self.chat.site_url()):
                    return url
        return ""

    def _watch(self, response_url: str, load: Callable[[], Awaitable[Recap | None]]) -> None:
        """Post a note to the response URL once the recap `load` returns has finished."""
        if response_url and len(self._tasks) < MAX_WATCHERS:
            self._spawn(self._watch_until_finished(response_url, load))

    async def _watch_until_finished(
        self, response_url: str, load: Callable[[], Awaitable[Recap | None]]
    ) -> None:
        deadline = self.clock.now_ms() + RESPONSE_URL_LIFETIME_MS
        while self.clock.now_ms() < deadline:
            try:
                recap = await load()
            except AppError:
                return  # the recap is gone
            if recap is not None and recap.status in FINISHED:
                await self.post_response(response_url, SlashReply(finished_text(recap)))
                return
            await self._sleep(WATCH_POLL_S)

    async def post_response(self, response_url: str, reply: SlashReply) -> None:
        """POST the reply to the command's response URL (no cookies kept, with a timeout)."""
        try:
            async with httpx.AsyncClient(
                cookies=cookie_free_jar(), timeout=RESPONSE_TIMEOUT_S, follow_redirects=False
            ) as client:
                resp = await client.post(response_url, json=reply.to_dict())
            if not resp.is_success:
                log.warning("response URL answered %s: %s", resp.status_code, resp.text[:200])
        except httpx.HTTPError as exc:
            log.warning("response URL failed: %r", exc)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)

    async def aclose(self) -> None:
        """Stop the note watchers of the current event loop."""
        loop = asyncio.get_running_loop()
        mine = [t for t in self._tasks if t.get_loop() is loop]
        for task in mine:
            task.cancel()
        await asyncio.gather(*mine, return_exceptions=True)


# -- parsing and wording -----------------------------------------------------------------------


def parse_days(text: str) -> int:
    """`daily`, `weekdays`, `weekends`, or days and ranges: `mon,wed,fri`, `mon-thu,sat`."""
    word = text.lower()
    if word in _DAY_WORDS:
        return _DAY_WORDS[word]
    bits = 0
    for part in word.split(","):
        first, sep, last = part.partition("-")
        a, b = _day_index(first, text), _day_index(last if sep else first, text)
        if b < a:
            raise SlashError(f"`{part}`: a range of days runs forward, e.g. `mon-fri`.")
        for day in _DAY_ORDER[a : b + 1]:
            bits |= _DAY_BITS[day]
    return bits


def _day_index(name: str, whole: str) -> int:
    key = name.strip()[:3]
    if len(name.strip()) < 3 or key not in _DAY_BITS:
        raise SlashError(
            f"`{whole}` is not a set of days: use `daily`, `weekdays`, `weekends` or days "
            "such as `mon,wed,fri`."
        )
    return _DAY_ORDER.index(key)


def parse_time(text: str) -> str:
    """`9:00` or `09:00` as `09:00`."""
    m = _TIME.fullmatch(text)
    if m is None:
        raise SlashError(f"`{text}` is not a time of day: use 24-hour `HH:MM`, e.g. `09:00`.")
    return f"{int(m.group(1)):02d}:{m.group(2)}"


def parse_zone(text: str) -> str:
    """An IANA time zone name (`Europe/Paris`, `UTC`)."""
    try:
        load_zone(text)
    except InvalidZoneError:
        raise SlashError(
            f"`{text}` is not a time zone: use an IANA name such as `Europe/Paris` or `UTC`."
        ) from None
    return text


def period_for(days: int) -> str:
    """The window of a schedule's recaps: a day for daily ones, a week for weekly ones, else
    what the user has not read since (no gaps between occurrences, no repeats)."""
    if days == EVERY_DAY:
        return TimePeriod.LAST_24H.value
    if bin(days).count("1") == 1:
        return TimePeriod.LAST_WEEK.value
    return TimePeriod.SINCE_LAST_READ.value


def describe_days(days: int) -> str:
    """The days of a bitmask in words."""
    for word, bits in (("daily", EVERY_DAY), ("weekdays", WEEKDAYS)):
        if days == bits:
            return word
    return ", ".join(d.title() for d in _DAY_ORDER if days & _DAY_BITS[d])


def finished_text(recap: Recap) -> str:
    """The note sent to the response URL when a recap has finished."""
    title = recap.title or "Recap"
    if recap.status == RecapStatus.COMPLETED:
        highlights = sum(len(c.highlights) for c in recap.channels)
        actions = sum(len(c.action_items) for c in recap.channels)
        return (
            f"Your recap \u201c{title}\u201d is ready: {len(recap.channels)} channel(s), "
            f"{highlights} highlight(s), {actions} action item(s). "
            "The bot sent it to you as a direct message."
        )
    if recap.status == RecapStatus.SKIPPED:
        return f"Your recap \u201c{title}\u201d was skipped: {recap.error or recap.skip_reason}"
    return f"Your recap \u201c{title}\u201d failed: {recap.error or 'no channel could be read'}"


def _title(channels: list[Channel]) -> str:
    title = "Recap of " + ", ".join(f"~{c.name}" for c in channels)
    return title if len(title) <= TITLE_MAX_CHARS else title[: TITLE_MAX_CHARS - 1] + "\u2026"


def _local(ms: int, zone: str) -> str:
    try:
        return ms_to_local(ms, load_zone(zone)).strftime("%a %Y-%m-%d %H:%M")
    except InvalidZoneError:
        return str(ms)


def _origin(url: str) -> str:
    parts = urlsplit(url.strip())
    return f"{parts.scheme}://{parts.netloc}".lower()


def _is_hook_of(url: str, server_url: str) -> bool:
    """Whether `url` is `{server_url}/hooks/commands/{id}` (same origin and path prefix)."""
    parts, server = urlsplit(url.strip()), urlsplit(server_url.strip())
    if parts.scheme not in ("http", "https") or not server_url.strip():
        return False
    prefix = server.path.rstrip("/") + "/hooks/commands/"
    return (
        _origin(url) == _origin(server_url)
        and parts.path.startswith(prefix)
        and len(parts.path) > len(prefix)
    )


def _app_error_text(err: AppError) -> str:
    if err.id in (RECAP_PERMISSION_DENIED, CHANNEL_ACCESS_DENIED):
        return "You cannot recap one of those channels (or the bot is not a member of it)."
    return err.message[:1].upper() + err.message[1:] + ("" if err.message.endswith(".") else ".")


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("slash command task failed", exc_info=task.exception())
