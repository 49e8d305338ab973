"""Live updates of the recap pages: server-sent events of the signed-in user's recaps that
changed since the last look. The stream polls the database in a read-only transaction, so it
sees every change whichever node made it without taking SQLite's write lock. A user has at most
MAX_STREAMS_PER_USER streams on a node; one more ends the oldest, which tells its page why."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from recapd.model.recap import Recap
from recapd.store.store import Store
from recapd.web.templating import render_text
from recapd.web.viewer import RuntimeDep, SignInRequired, Viewer, viewer_of

router = APIRouter(include_in_schema=False)

POLL_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0
# A stream ends after this long and the browser reconnects (EventSource does so by itself,
# sending the last event id): sign-outs and revoked tokens take effect, proxies see traffic.
STREAM_SECONDS = 120.0
# Writers on other nodes stamp update_at with their own clocks and commit a little after it:
# each look goes this far back, and versions already sent are not sent again.
OVERLAP_MS = 5_000
BATCH = 200
# Each stream polls once a second: a user with many tabs (or a script) may hold this many.
MAX_STREAMS_PER_USER = 5
SUPERSEDED = (
    "Live updates stopped here: you have too many pages with live updates open. "
    "Reload this page to follow it again."
)


@dataclass(eq=False)
class Stream:
    """One open event stream of a user; `closed` is set when a newer one takes its place."""

    user_id: str
    closed: asyncio.Event = field(default_factory=asyncio.Event)


class StreamLimit:
    """The open streams of each user on this node (touched from the event loop only)."""

    def __init__(self, per_user: int = MAX_STREAMS_PER_USER) -> None:
        self.per_user = per_user
        self._open: dict[str, deque[Stream]] = {}

    def open(self, user_id: str) -> Stream:
        """A new stream of the user; the oldest ones are told to close beyond the limit."""
        streams = self._open.setdefault(user_id, deque())
        stream = Stream(user_id)
        streams.append(stream)
        while len(streams) > self.per_user:
            streams.popleft().closed.set()
        return stream

    def release(self, stream: Stream) -> None:
        """Forget an ended stream (again is harmless)."""
        streams = self._open.get(stream.user_id)
        if streams is None:
            return
        with contextlib.suppress(ValueError):
            streams.remove(stream)
        if not streams:
            del self._open[stream.user_id]

    def count(self, user_id: str) -> int:
        """How many streams the user has open."""
        return len(self._open.get(user_id, ()))


class RecapWatcher:
    """The user's recap changes not yet reported, one poll at a time."""

    def __init__(self, store: Store, user_id: str, since_ms: int) -> None:
        self._store = store
        self._user_id = user_id
        self.cursor = since_ms
        self._sent: dict[str, int] = {}

    def poll(self) -> list[Recap]:
        """Recaps changed since the cursor (with the overlap), each version once."""
        with self._store.db.read_transaction() as conn:
            rows = self._store.recaps.changed_since(
                self._user_id, self.cursor - OVERLAP_MS, limit=BATCH, conn=conn
            )
        fresh = [r for r in rows if self._sent.get(r.id) != r.update_at]
        for r in fresh:
            self._sent[r.id] = r.update_at
        if rows:
            self.cursor = max(self.cursor, rows[-1].update_at)
        floor = self.cursor - OVERLAP_MS
        self._sent = {rid: at for rid, at in self._sent.items() if at >= floor}
        return fresh


def recap_event(recap: Recap, zone: str) -> dict[str, object]:
    """What the page needs of a changed recap: its state and its list row, rendered."""
    return {
        "id": recap.id,
        "status": str(recap.status),
        "update_at": recap.update_at,
        "read": recap.read_at > 0,
        "deleted": recap.delete_at > 0,
        "row": render_text("_recap_row.html", recap=recap, zone=zone),
    }


def sse(data: object, event: str = "recap", event_id: str = "") -> str:
    """One server-sent event."""
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def recap_events(
    store: Store,
    viewer: Viewer,
    since_ms: int,
    lifetime_s: float = STREAM_SECONDS,
    streams: StreamLimit | None = None,
) -> AsyncIterator[str]:
    """The event stream: changes as they are seen, keep-alive comments in between; a `closed`
    event, and the end, when the user opened too many others (counted in `streams`)."""
    loop = asyncio.get_running_loop()
    watcher = RecapWatcher(store, viewer.user_id, since_ms)
    # Counted once the generator runs: only then does its `finally` release the stream.
    limit = streams if streams is not None else StreamLimit()
    stream = limit.open(viewer.user_id)
    end = loop.time() + lifetime_s
    quiet_since = loop.time()
    try:
        yield "retry: 2000\n\n"
        while True:
            if stream.closed.is_set():
                yield sse({"reason": "too_many_streams", "message": SUPERSEDED}, "closed")
                return
            for recap in await asyncio.to_thread(watcher.poll):
                quiet_since = loop.time()
                yield sse(recap_event(recap, viewer.timezone), event_id=str(watcher.cursor))
            if loop.time() - quiet_since >= KEEPALIVE_SECONDS:
                quiet_since = loop.time()
                yield ": keep-alive\n\n"
            if loop.time() >= end:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stream.closed.wait(), POLL_SECONDS)
    finally:
        limit.release(stream)


def stream_limit(request: Request) -> StreamLimit:
    """This app's count of open streams (see recapd.web.install)."""
    limit: StreamLimit = request.app.state.live_streams
    return limit


@router.get("/events")
async def events(
    request: Request, rt: RuntimeDep, since: int = Query(0, ge=0, le=2**53)
) -> Response:
    """The signed-in user's recap changes since `since` (ms) or the Last-Event-ID."""
    try:
        viewer = await viewer_of(request)
    except SignInRequired:
        return PlainTextResponse("sign in first", status_code=401)
    last = request.headers.get("Last-Event-ID", "")
    # isdigit() alone accepts digits int() refuses ("²").
    if last.isascii() and last.isdigit() and len(last) < 17:
        since = max(since, int(last))
    return StreamingResponse(
        recap_events(rt.store, viewer, since, streams=stream_limit(request)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
