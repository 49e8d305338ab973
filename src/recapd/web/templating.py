"""Jinja2 templates of the pages, their filters (times in a zone, days of week), and render()."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from recapd import __version__
from recapd.model.scheduled_recap import EVERY_DAY, WEEKDAYS
from recapd.model.tz import InvalidZoneError, load_zone
from recapd.web.session import CSRF_FIELD, Session

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"

# Sunday=1 ... Saturday=64, shown Monday first.
DAYS: tuple[tuple[int, str, str], ...] = (
    (2, "Mon", "Monday"),
    (4, "Tue", "Tuesday"),
    (8, "Wed", "Wednesday"),
    (16, "Thu", "Thursday"),
    (32, "Fri", "Friday"),
    (64, "Sat", "Saturday"),
    (1, "Sun", "Sunday"),
)


def _instant(ms: int, zone: dt.tzinfo) -> dt.datetime | None:
    """`ms` in `zone`, or None beyond the years 1-9999 there (9999-12-31 is year 10000 east
    of UTC; admins may post at any time up to 9999-12-31 UTC)."""
    try:
        return dt.datetime.fromtimestamp(ms / 1000, zone)
    except (OverflowError, OSError, ValueError):
        return None


def when(ms: int, zone_name: str = "UTC") -> str:
    """A time for people: `Tue 22 Sep 2026, 09:00 CEST` in `zone_name` (UTC if unknown, or
    if the time has no date there; the raw milliseconds if it has none in UTC either)."""
    if not ms:
        return "—"
    try:
        zone = load_zone(zone_name or "UTC")
    except InvalidZoneError:
        zone = load_zone("UTC")
    local = _instant(ms, zone) or _instant(ms, dt.UTC)
    if local is None:
        return f"{ms} ms"
    return local.strftime("%a %d %b %Y, %H:%M ") + (local.tzname() or str(local.tzinfo))


def clock(ms: int, zone_name: str = "UTC") -> str:
    """The time of day of `when`: `09:00 CEST`."""
    return when(ms, zone_name).split(", ")[-1]


def iso(ms: int) -> str:
    """An ISO-8601 UTC instant, for <time datetime=...>; "" when there is no such date."""
    instant = _instant(ms, dt.UTC)
    return instant.isoformat(timespec="seconds") if instant else ""


def days_label(mask: int) -> str:
    """`Every day`, `Weekdays`, or the days by name."""
    if mask == EVERY_DAY:
        return "Every day"
    if mask == WEEKDAYS:
        return "Weekdays"
    if mask == 65:
        return "Weekends"
    return ", ".join(short for bit, short, _ in DAYS if mask & bit) or "No days"


PERIOD_LABELS = {
    "last_24h": "Last 24 hours",
    "last_week": "Last week",
    "since_last_read": "Since I last read",
}


def period_label(period: str) -> str:
    """A window (time period) for people."""
    return PERIOD_LABELS.get(period, period or "Since last read, else the latest posts")


# Every page: never cached (it is someone's), never framed by another site (clickjacking),
# and only this site's own scripts, styles and connections (the templates have no inline ones).
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'; object-src 'none'",
    "X-Content-Type-Options": "nosniff",
}


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=when, clock=clock, iso=iso, days_label=days_label, period_label=period_label
    )
    env.globals.update(version=__version__, csrf_field=CSRF_FIELD, DAYS=DAYS)
    return env


ENV = _environment()


def render_text(name: str, **context: Any) -> str:
    """A template (or partial) as text."""
    return ENV.get_template(name).render(**context)


def render(
    request: Request,
    name: str,
    session: Session,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A whole page: the template with the session's CSRF token and pending notice."""
    context.setdefault("viewer", None)
    context.setdefault("nav", "")
    html = render_text(
        name,
        request_path=request.url.path,
        csrf=session.csrf,
        notice=session.pop_notice(),
        **context,
    )
    return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)
