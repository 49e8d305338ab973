"""The FastAPI application over one Runtime."""

from __future__ import annotations

from fastapi import FastAPI

from recapd import __version__
from recapd.api import errors, routes_recaps, routes_scheduled_recaps, routes_system
from recapd.runtime import Runtime


def create_app(runtime: Runtime) -> FastAPI:
    """The REST API on `runtime` (OpenAPI at /docs)."""
    app = FastAPI(title="recapd", version=__version__)
    app.state.runtime = runtime
    errors.install(app)
    app.include_router(routes_recaps.router)
    app.include_router(routes_scheduled_recaps.router)
    app.include_router(routes_system.router)
    return app
