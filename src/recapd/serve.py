"""`recapd serve`: the API and web pages (uvicorn), the schedulers and the workers of one node,
in one process and one event loop, with a clean shutdown on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Callable, Generator
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recapd.api.app import create_app
from recapd.config import Settings
from recapd.runtime import Runtime

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8065
# Requests still open when the HTTP server stops get this long before uvicorn cancels them.
HTTP_SHUTDOWN_GRACE_S = 3
EVENT_STREAM = b"text/event-stream"


class ServeError(Exception):
    """recapd serve cannot start (the address is taken, nothing to run)."""


@dataclass(frozen=True)
class ServeOptions:
    """What this node runs and where it listens."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    api: bool = True
    jobs: bool = True
    schedulers: bool = True

    def apply(self, settings: Settings) -> Settings:
        """`settings` with the job switches turned off that the options turn off."""
        js = settings.jobs
        update = {"run_jobs": js.run_jobs and self.jobs}
        update["run_scheduler"] = js.run_scheduler and self.schedulers
        return settings.model_copy(update={"jobs": js.model_copy(update=update)})


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handlers: recapd decides the order of shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class EndStreamsOnStop:
    """ASGI wrapper: once `closing` is set, server-sent event streams (which never end by
    themselves) are ended cleanly: their last chunk is sent and their handler cancelled, so
    the browser reconnects later and uvicorn neither waits for them nor cancels them with an
    error. Every other request finishes as usual."""

    def __init__(self, app: ASGIApp, closing: asyncio.Event) -> None:
        self.app = app
        self.closing = closing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        stream = False
        ended = False

        async def watch(message: Message) -> None:
            nonlocal stream, ended
            if ended:
                return  # we closed the response; the cancelled handler's last words go nowhere
            if message["type"] == "http.response.start":
                content_type = dict(message.get("headers", [])).get(b"content-type", b"")
                stream = content_type.startswith(EVENT_STREAM)
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                ended = True
            await send(message)

        handler = asyncio.ensure_future(self.app(scope, receive, watch))
        closing = asyncio.ensure_future(self.closing.wait())
        try:
            while not handler.done():
                await asyncio.wait([handler, closing], return_when=asyncio.FIRST_COMPLETED)
                if handler.done() or not stream or ended:
                    await handler
                    break
                ended = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                handler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await handler
        except asyncio.CancelledError:
            handler.cancel()  # uvicorn gave up on us: the handler goes too
            raise
        finally:
            closing.cancel()


def listen(host: str, port: int) -> socket.socket:
    """A bound TCP socket (port 0: any free port); ServeError when the address is unusable."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


def url_of(sock: socket.socket) -> str:
    """The http:// URL a browser on this machine opens for the bound socket."""
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/"


class Node:
    """One `recapd serve` node: what `options` asks for, until stopped."""

    def __init__(
        self, runtime: Runtime, options: ServeOptions, sock: socket.socket | None = None
    ) -> None:
        settings = runtime.settings
        self.runtime = runtime
        self.options = options
        self.run_jobs = settings.jobs.run_jobs or settings.jobs.run_scheduler
        if not (options.api or self.run_jobs):
            raise ServeError("nothing to run: the API, the workers and the schedulers are all off")
        self.stop = asyncio.Event()
        self.closing = asyncio.Event()  # the HTTP server is about to stop
        self.sock = sock
        self.server: _Uvicorn | None = None
        if options.api:
            self.sock = sock or listen(options.host, options.port)
            config = uvicorn.Config(
                EndStreamsOnStop(create_app(runtime), self.closing),
                log_config=None,  # recapd's logging; the request log replaces the access log
                access_log=False,
                timeout_graceful_shutdown=HTTP_SHUTDOWN_GRACE_S,
                lifespan="auto",
            )
            self.server = _Uvicorn(config)

    @property
    def url(self) -> str:
        """Where the API answers ("" without it)."""
        return url_of(self.sock) if self.sock is not None and self.server is not None else ""

    def request_stop(self) -> None:
        """Begin the shutdown; asked again, stop waiting for open HTTP requests."""
        if self.stop.is_set() and self.server is not None:
            log.warning("second signal: not waiting for open requests")
            self.server.force_exit = True
        self.stop.set()

    async def run(self, on_ready: Callable[[str], None] | None = None) -> None:
        """Run until request_stop(), then shut down in order: the job server stops claiming,
        lets running jobs finish within the grace period and releases the rest; then the HTTP
        server stops: event streams end at once, other open requests get
        HTTP_SHUTDOWN_GRACE_S."""
        tasks: list[asyncio.Task[None]] = []
        jobs: asyncio.Task[None] | None = None
        http: asyncio.Task[None] | None = None
        if self.server is not None:
            # Before any job runs: links made on this node use the address bound here.
            assert self.sock is not None
            wildcard = self.sock.getsockname()[0] in ("0.0.0.0", "::")
            warning = self.runtime.serve_at(self.url, any_host=wildcard)
            if warning:
                log.warning("%s", warning)
        if self.run_jobs:
            jobs = asyncio.create_task(self.runtime.jobs.run(self.stop), name="jobs")
            tasks.append(jobs)
        if self.server is not None:
            assert self.sock is not None
            http = asyncio.create_task(self.server.serve(sockets=[self.sock]), name="http")
            tasks.append(http)
        stopping = asyncio.create_task(self.stop.wait(), name="stop")
        try:
            if self.server is not None and http is not None:
                while not self.server.started and not http.done():
                    await asyncio.sleep(0.02)
            if on_ready is not None and (http is None or not http.done()):
                on_ready(self.url)
            # Until a signal, or until a part ends by itself (a failure: stop the other too).
            await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.stop.set()
            stopping.cancel()
            try:
                if jobs is not None:
                    await jobs  # a failure of the job server is raised, after the HTTP stop
            finally:
                if self.server is not None and http is not None:
                    self.closing.set()
                    self.server.should_exit = True
                    await http
                await self.runtime.aclose()  # HTTP clients of this loop (Mattermost)


def run_until_signal(
    runtime: Runtime,
    options: ServeOptions,
    reload_settings: Callable[[], Settings] | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """A Node in a new event loop: SIGTERM/SIGINT stop it (a second one cuts the HTTP grace
    short), SIGHUP reloads the settings through `reload_settings`."""
    node = Node(runtime, options)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, node.request_stop)
        if reload_settings is not None:
            loop.add_signal_handler(signal.SIGHUP, lambda: _reload(runtime, reload_settings))
        await node.run(on_ready)

    try:
        asyncio.run(main())
    finally:
        if node.sock is not None:
            node.sock.close()


def _reload(runtime: Runtime, reload_settings: Callable[[], Settings]) -> None:
    try:
        runtime.apply_settings(reload_settings())
    except Exception as exc:  # a bad file must not stop a running node
        log.error("settings not reloaded: %s", exc)
        return
    log.info("settings reloaded")
