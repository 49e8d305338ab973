"""Outgoing webhooks: a JSON POST in the shape of Slack's and Mattermost's incoming webhooks
(`{"text": ..., "username": ...}`), with the URL checks that keep users from pointing recapd
at internal services."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from recapd.delivery.markdown import Flavor
from recapd.model.app_error import AppError

log = logging.getLogger(__name__)

MAX_URL_LENGTH = 2048
# Slack cuts a message after 40,000 characters and Mattermost splits at 16,383; one
# Mattermost post's worth keeps the message whole in both.
MAX_TEXT_CHARS = 16_000
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# IPv6 prefixes whose addresses carry an IPv4 address that is the real destination.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix

# What a stored or returned error says: never the resolved address or the receiver's answer.
REFUSED_INTERNAL = "refused: the address is internal"
NOT_RESOLVED = "could not be resolved"


class WebhookError(Exception):
    """A delivery the receiver did not accept. `retryable`: worth trying again later (timeouts,
    connection errors, 5xx, 429); otherwise the request itself is wrong (other 4xx, a refused
    address) and repeating it cannot help. The message is safe to show the user."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def _url_error(reason: str, message: str, url: str) -> AppError:
    return AppError(
        f"app.delivery.webhook_url.{reason}.app_error",
        message,
        detailed_error=f"url={url[:200]!r}",
        status_code=400,
    )


@dataclass(frozen=True)
class InternalAllowList:
    """Hosts and networks a webhook may reach although they are not public addresses
    (Mattermost's AllowedUntrustedInternalConnections)."""

    hosts: frozenset[str]
    networks: tuple[IpNetwork, ...]

    @classmethod
    def parse(cls, text: str) -> InternalAllowList:
        """From "host1 10.0.0.0/8, 127.0.0.1" (space or comma separated)."""
        hosts: set[str] = set()
        nets: list[IpNetwork] = []
        for item in text.replace(",", " ").split():
            try:
                nets.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                hosts.add(item.lower().rstrip("."))
        return cls(frozenset(hosts), tuple(nets))

    def allows_host(self, host: str) -> bool:
        """True when the host name itself is listed."""
        return host.lower().rstrip(".") in self.hosts

    def allows_ip(self, ip: IpAddress) -> bool:
        """True for a public address, or an internal one (or the IPv4 address it carries)
        inside a listed network."""
        if not is_internal(ip):
            return True
        candidates = {ip, destination(ip)}
        return any(
            a.version == net.version and a in net for a in candidates for net in self.networks
        )


def destination(ip: IpAddress) -> IpAddress:
    """The address a packet to `ip` really reaches: the IPv4 address inside an IPv4-mapped
    (::ffff:a.b.c.d), 6to4 (2002::/16) or NAT64 (64:ff9b::/96) address, else `ip` itself."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
    return ip


def is_internal(ip: IpAddress) -> bool:
    """True unless the address (after unwrapping an embedded IPv4 one) is a public unicast
    address: private, loopback, link-local, shared (100.64.0.0/10), site-local, reserved,
    multicast and documentation ranges all count as internal."""
    ip = destination(ip)
    site_local = isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local
    # is_global alone misses multicast, fec0::/10 and IPv4-compatible ::a.b.c.d in Python 3.11.
    return not ip.is_global or ip.is_multicast or ip.is_reserved or site_local


def _ip_literal(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def validate_webhook_url(url: str, allow: InternalAllowList) -> str:
    """The URL, stripped, if it can be a webhook: http(s), a host, no spaces, at most 2048
    characters, not an internal address literal unless allowed. AppError 400 otherwise."""
    url = url.strip()
    if not url:
        raise _url_error("empty", "Enter the webhook URL.", url)
    if len(url) > MAX_URL_LENGTH:
        raise _url_error("too_long", f"The URL is longer than {MAX_URL_LENGTH} characters.", url)
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise _url_error("invalid", "The URL contains spaces or control characters.", url)
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - urlsplit checks the port only when it is read
    except ValueError:
        raise _url_error("invalid", "The URL cannot be read.", url) from None
    if parts.scheme.lower() not in ("http", "https"):
        raise _url_error("scheme", "The URL must start with http:// or https://.", url)
    if not host:
        raise _url_error("host", "The URL has no host name.", url)
    try:
        host.encode("idna")
    except UnicodeError:
        raise _url_error("host", "The URL's host name is not a valid name.", url) from None
    ip = _ip_literal(host)
    if ip is not None and not allow.allows_host(host) and not allow.allows_ip(ip):
        raise _url_error(
            "internal",
            "The URL points to an internal (not public) address, which this server does not "
            "allow (delivery.allowed_untrusted_internal_connections).",
            url,
        )
    return url


def flavor_for(url: str) -> Flavor:
    """The markup the receiver reads: Slack's mrkdwn for hooks.slack.com, else Markdown."""
    host = (urlsplit(url).hostname or "").lower()
    slack = host == "hooks.slack.com" or host.endswith(".slack.com")
    return Flavor.SLACK if slack else Flavor.MARKDOWN


def payload(text: str, username: str = "") -> dict[str, Any]:
    """The incoming-webhook JSON: `text` (cut to MAX_TEXT_CHARS by the caller), `username`."""
    body: dict[str, Any] = {"text": text}
    if username:
        body["username"] = username
    return body


class WebhookSender:
    """POSTs webhook payloads; every outcome but a 2xx is a WebhookError. The whole send
    (resolving, connecting, the answer's headers) has one deadline, so a receiver that
    answers a byte at a time cannot hold a worker; the answer's body is never read."""

    def __init__(self, timeout_s: float, allow: InternalAllowList | None = None) -> None:
        self.timeout_s = timeout_s
        self.allow = allow or InternalAllowList.parse("")

    async def _addresses(self, url: str) -> list[str]:
        """Where to connect: the host's checked addresses, or [] to connect by name (an
        allow-listed host name, or an address literal validate_webhook_url checked)."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        if self.allow.allows_host(host) or _ip_literal(host) is not None:
            return []
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except UnicodeError as exc:
            raise WebhookError("the host name is not valid", retryable=False) from exc
        except OSError as exc:
            log.info("webhook host %s could not be resolved: %s", host, exc)
            raise WebhookError(NOT_RESOLVED, retryable=True) from exc
        found: list[str] = []
        for info in infos:
            ip = ipaddress.ip_address(info[4][0])
            if not self.allow.allows_ip(ip):
                log.warning("webhook host %s resolves to the internal address %s", host, ip)
                raise WebhookError(REFUSED_INTERNAL, retryable=False)
            if str(ip) not in found:
                found.append(str(ip))
        if not found:
            raise WebhookError(NOT_RESOLVED, retryable=True)
        return found

    async def send(self, url: str, body: dict[str, Any]) -> int:
        """POST `body` as JSON to `url`; the status code of a 2xx answer, else WebhookError."""
        try:
            url = validate_webhook_url(url, self.allow)
        except AppError as exc:
            raise WebhookError(exc.message, retryable=False) from exc
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._send(url, body)
        except TimeoutError as exc:
            raise WebhookError(f"timed out after {self.timeout_s:g} s", retryable=True) from exc

    async def _send(self, url: str, body: dict[str, Any]) -> int:
        addresses = await self._addresses(url)
        target = httpx.URL(url)
        async with httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False) as client:
            if not addresses:
                return await self._post(client, target, body, {}, {})
            # Connect to the address just checked, not to whatever a second lookup returns
            # (DNS rebinding); the Host header and TLS name stay the URL's.
            headers = {"Host": target.netloc.decode("ascii")}
            sni = target.raw_host.decode("ascii")
            extensions = {"sni_hostname": sni} if target.scheme == "https" else {}
            for i, address in enumerate(addresses):
                try:
                    pinned = target.copy_with(host=address)
                    return await self._post(client, pinned, body, headers, extensions)
                except WebhookError as exc:
                    if not isinstance(exc.__cause__, httpx.ConnectError) or i == len(addresses) - 1:
                        raise
        raise AssertionError("unreachable")  # the loop returns or raises

    async def _post(
        self,
        client: httpx.AsyncClient,
        url: httpx.URL,
        body: dict[str, Any],
        headers: dict[str, str],
        extensions: dict[str, Any],
    ) -> int:
        try:
            async with client.stream(
                "POST", url, json=body, headers=headers, extensions=extensions
            ) as resp:
                status = resp.status_code  # the body is never read: only the status counts
        except httpx.InvalidURL as exc:
            raise WebhookError("the URL is not valid", retryable=False) from exc
        except httpx.TimeoutException as exc:
            raise WebhookError(f"timed out after {self.timeout_s:g} s", retryable=True) from exc
        except httpx.ConnectError as exc:
            raise WebhookError("could not connect", retryable=True) from exc
        except httpx.HTTPError as exc:
            name = type(exc).__name__
            raise WebhookError(f"the connection failed ({name})", retryable=True) from exc
        if 200 <= status < 300:
            return status
        # 429 and 5xx are the receiver's momentary trouble; any other answer (a 3xx redirect
        # included: webhooks are not followed) says this request will never be accepted.
        raise WebhookError(f"HTTP {status}", retryable=status == 429 or status >= 500)
