"""What the command prints: one console and one table maker that print every string literally,
the formats of times, and errors in words (their ids with --verbose).

Titles, usernames and channel names are the users' own text: "[eng] standup" or "[/b]" must
print as typed, so rich's markup, emoji codes and highlighting are off here, once, for every
table and line the command prints.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

log = logging.getLogger("recapd.cli")

_console: Console | None = None


def console() -> Console:
    """The command's console: no markup, no emoji codes, no highlighting (made on first use)."""
    global _console
    if _console is None:
        from rich.console import Console

        _console = Console(markup=False, emoji=False, highlight=False)
    return _console


def out(text: str = "") -> None:
    """Print one line as it is."""
    typer.echo(text)


def table(*columns: str, title: str | None = None, **options: Any) -> Table:
    """A table whose headers and cells print literally (the console renders them)."""
    from rich.table import Table

    t = Table(title=title, **options)
    for col in columns:
        t.add_column(col)
    return t


def show(renderable: Any) -> None:
    """Print a table (or any rich renderable) on the command's console. A table's text that
    does not fit folds onto the next line instead of ending in "..." (ids and dates are
    no_wrap columns: the tables leave them room at 80 columns)."""
    from rich.table import Table

    if isinstance(renderable, Table):
        for column in renderable.columns:
            if not column.no_wrap and column.overflow == "ellipsis":
                column.overflow = "fold"
    console().print(renderable)


# -- times ------------------------------------------------------------------------------------

DATE_TIME = "%Y-%m-%d %H:%M"


def utc(ms: int, seconds: bool = False) -> str:
    """Epoch ms as `YYYY-MM-DD HH:MM[:SS]` in UTC; "-" for 0."""
    if not ms:
        return "-"
    when = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    return when.strftime(DATE_TIME + (":%S" if seconds else ""))


def local(ms: int, zone: str) -> str:
    """Epoch ms as `Mon 2026-12-07 09:00 +0545` in the IANA zone `zone`; "-" for 0."""
    if not ms:
        return "-"
    from recapd.model.tz import InvalidZoneError, load_zone

    try:
        when = dt.datetime.fromtimestamp(ms / 1000, load_zone(zone))
    except InvalidZoneError:
        return utc(ms) + " UTC"
    return f"{when:%a} {when:{DATE_TIME}} {when:%z}"


# -- errors -----------------------------------------------------------------------------------


_verbose = False


def set_verbose(flag: bool) -> None:
    """Take the global --verbose option (the command's callback sets it on every run)."""
    global _verbose
    _verbose = flag


def verbose() -> bool:
    """Whether the global --verbose option was given."""
    return _verbose


def error_text(exc: BaseException, *, with_id: bool) -> str:
    """An error as the command prints it: the message; the id and detail when asked."""
    from recapd.model.app_error import AppError

    if not isinstance(exc, AppError):
        return str(exc)
    text = exc.message
    if with_id:
        text += f"\n  id: {exc.id}"
        if exc.detailed_error:
            text += f"\n  detail: {exc.detailed_error}"
    return text


def fail(exc: BaseException, hint: str = "") -> typer.Exit:
    """Print the error in words on stderr (its id and detail too with --verbose) and a hint
    of what to do, log it with its id, and give the exit to raise (code 1)."""
    from recapd.model.app_error import AppError

    if isinstance(exc, AppError):
        log.info("%s: %s (%s)", exc.id, exc.message, exc.detailed_error)
    typer.echo(f"error: {error_text(exc, with_id=verbose())}", err=True)
    if hint:
        typer.echo(f"hint: {hint}", err=True)
    return typer.Exit(1)
