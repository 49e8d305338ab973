"""Outgoing webhooks: a JSON POST in the shape of Slack's and Mattermost's incoming webhooks
(`{"text": ..., "username": ...}`), with the URL checks that keep users from pointing recapd
at internal services."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from recapd.delivery.markdown import Flavor
from recapd.model.app_error import AppError

MAX_URL_LENGTH = 2048
# Slack cuts a message after 40,000 characters and Mattermost splits at 16,383; one
# Mattermost post's worth keeps the message whole in both.
MAX_TEXT_CHARS = 16_000
_ERROR_BODY_CHARS = 200

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class WebhookError(Exception):
    """A delivery the receiver did not accept. `retryable`: worth trying again later (timeouts,
    connection errors, 5xx, 429); otherwise the request itself is wrong (other 4xx, a refused
    address) and repeating it cannot help."""

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
    """Hosts and networks a webhook may reach although they are loopback, private or
    link-local (Mattermost's AllowedUntrustedInternalConnections)."""

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
        """True for a public address, or an internal one inside a listed network."""
        if not _is_internal(ip):
            return True
        return any(ip.version == net.version and ip in net for net in self.networks)


def _is_internal(ip: IpAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
    )


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
            "The URL points to a loopback, private or link-local address, which this server "
            "does not allow (delivery.allowed_untrusted_internal_connections).",
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
    """POSTs webhook payloads with a timeout; every outcome but a 2xx is a WebhookError."""

    def __init__(self, timeout_s: float, allow: InternalAllowList | None = None) -> None:
        self.timeout_s = timeout_s
        self.allow = allow or InternalAllowList.parse("")

    async def _check_address(self, url: str) -> None:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if self.allow.allows_host(host):
            return
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except UnicodeError as exc:
            raise WebhookError(f"invalid host name {host!r}", retryable=False) from exc
        except OSError as exc:
            raise WebhookError(f"cannot resolve {host}: {exc}", retryable=True) from exc
        for info in infos:
            ip = ipaddress.ip_address(info[4][0])
            if not self.allow.allows_ip(ip):
                raise WebhookError(
                    f"refused: {host} resolves to the internal address {ip}", retryable=False
                )

    async def send(self, url: str, body: dict[str, Any]) -> int:
        """POST `body` as JSON to `url`; the status code of a 2xx answer, else WebhookError."""
        try:
            url = validate_webhook_url(url, self.allow)
        except AppError as exc:
            raise WebhookError(exc.message, retryable=False) from exc
        await self._check_address(url)
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False) as client:
                resp = await client.post(url, json=body)
        except httpx.InvalidURL as exc:
            raise WebhookError(f"invalid URL: {exc}", retryable=False) from exc
        except httpx.TimeoutException as exc:
            raise WebhookError(f"timed out after {self.timeout_s:g} s", retryable=True) from exc
        except httpx.HTTPError as exc:
            raise WebhookError(f"{type(exc).__name__}: {exc}", retryable=True) from exc
        if 200 <= resp.status_code < 300:
            return resp.status_code
        detail = f"HTTP {resp.status_code}: {resp.text[:_ERROR_BODY_CHARS].strip()}".rstrip(": ")
        # 429 and 5xx are the receiver's momentary trouble; any other answer (a 3xx redirect
        # included: webhooks are not followed) says this request will never be accepted.
        retryable = resp.status_code == 429 or resp.status_code >= 500
        raise WebhookError(detail, retryable=retryable)
