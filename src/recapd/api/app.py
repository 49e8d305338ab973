"""The FastAPI application over one Runtime."""

from __future__ import annotations

from fastapi import FastAPI

from recapd import __version__, metrics, web
from recapd.api import (
    errors,
    openapi,
    routes_jobs,
    routes_posts,
    routes_recaps,
    routes_scheduled_recaps,
    routes_slash,
    routes_system,
    routes_users,
)
from recapd.api.body_limit import BodyLimitMiddleware
from recapd.api.request_log import RequestLogMiddleware
from recapd.runtime import Runtime


def create_app(runtime: Runtime) -> FastAPI:
    """The REST API on `runtime` (OpenAPI at /docs)."""
    app = FastAPI(title="recapd", version=__version__)
    app.state.runtime = runtime
    # /metrics counts jobs in the database, at most once per 5 s however often it is scraped.
    app.state.job_counts = metrics.CachedJobCounts(
        runtime.store.jobs.count_by_type_and_status, runtime.jobs.clock
    )
    app.add_middleware(BodyLimitMiddleware)  # inside the request-id middleware: 413s carry it
    errors.install(app)
    app.add_middleware(RequestLogMiddleware)  # outermost: one line per request
    routers = [
        routes_recaps.router,
        routes_scheduled_recaps.router,
        routes_system.router,
        routes_jobs.router,
        routes_posts.router,
        routes_users.router,
        routes_slash.router,
    ]
    for router in routers:
        app.include_router(router)
    web.install(app)  # the browser pages, after the API routes
    openapi.install(app, routers)
    return app
