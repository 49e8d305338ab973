"""Live updates of the recap pages: server-sent events of the signed-in user's recaps that
changed since the last look. The stream polls the database, so it sees every change whichever
node made it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

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


class RecapWatcher:
    """The user's recap changes not yet reported, one poll at a time."""

    def __init__(self, store: Store, user_id: str, since_ms: int) -> None:
        self._store = store
        self._user_id = user_id
        self.cursor = since_ms
        self._sent: dict[str, int] = {}

    def poll(self) -> list[Recap]:
        """Recaps changed since the cursor (with the overlap), each version once."""
        rows = self._store.recaps.changed_since(
            self._user_id, self.cursor - OVERLAP_MS, limit=BATCH
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
    store: Store, viewer: Viewer, since_ms: int, lifetime_s: float = STREAM_SECONDS
) -> AsyncIterator[str]:
    """The event stream: changes as they are seen, keep-alive comments in between."""
    loop = asyncio.get_running_loop()
    watcher = RecapWatcher(store, viewer.user_id, since_ms)
    end = loop.time() + lifetime_s
    quiet_since = loop.time()
    yield "retry: 2000\n\n"
    while True:
        for recap in await asyncio.to_thread(watcher.poll):
            quiet_since = loop.time()
            yield sse(recap_event(recap, viewer.timezone), event_id=str(watcher.cursor))
        if loop.time() - quiet_since >= KEEPALIVE_SECONDS:
            quiet_since = loop.time()
            yield ": keep-alive\n\n"
        if loop.time() >= end:
            return
        await asyncio.sleep(POLL_SECONDS)


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
    if last.isdigit() and len(last) < 17:
        since = max(since, int(last))
    return StreamingResponse(
        recap_events(rt.store, viewer, since),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
