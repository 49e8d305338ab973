"""The browser pages: server-rendered Jinja2 templates, a signed session cookie, CSRF-checked
forms and live updates by server-sent events; static files under /static, no build step."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from recapd.web import (
    live,
    routes_auth,
    routes_jobs,
    routes_permalinks,
    routes_recaps,
    routes_schedules,
)
from recapd.web.templating import STATIC_DIR

__all__ = ["install"]


def install(app: FastAPI) -> None:
    """Add the pages (/, /login, /recaps, /schedules, /jobs, /events, permalinks) and /static."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.state.live_streams = live.StreamLimit()
    for router in (
        routes_auth.router,
        routes_recaps.router,
        routes_schedules.router,
        routes_jobs.router,
        live.router,
        routes_permalinks.router,
    ):
        app.include_router(router)
