"""The SSRF guard for outbound alert requests.

A target must be https and must resolve only to public (globally routable) addresses:
loopback, private, link-local (169.254.169.254 and other cloud metadata endpoints),
shared, reserved and unspecified ranges are refused, and an IPv6 form that carries an
IPv4 address (mapped, compatible, NAT64, 6to4, Teredo) is judged by that address — unless
ALERTS_ALLOW_PRIVATE_TARGETS is set, which also allows plain http. The URL is checked
when a rule is created (scheme, literal addresses, local names), and again at every send,
where the guard sits in the HTTP client's connect step: the host is resolved, every
address is checked, and the connection goes to a checked address — so a DNS answer that
changes between the check and the connect (rebinding) cannot slip through. Redirects are
never followed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

# httpx logs every request's full URL at INFO, and a webhook URL is a secret (Slack's
# carries its token in the path): our own log lines name the masked target instead.
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)

LOCAL_NAMES = ("localhost", "localhost.localdomain", "metadata", "metadata.google.internal",
               "instance-data", "instance-data.ec2.internal")


class TargetRefused(Exception):
    """The URL may not be called (scheme or address); the message says why, safely."""


NAT64 = ipaddress.ip_network("64:ff9b::/96")
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # SIIT (RFC 2765)


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries (mapped, compatible, translated, NAT64, 6to4,
    Teredo):
    a packet to it may reach that IPv4 host, so that is the address to judge."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]  # the client's (de-obfuscated) address
    if ip in NAT64 or ip in IPV4_COMPATIBLE or ip in IPV4_TRANSLATED:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_allowed(raw: str) -> bool:
    try:
        ip = ipaddress.ip_address(raw.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in NAT64_LOCAL:
            return False  # local-use NAT64: the embedded address is not at a fixed place
        embedded = embedded_ipv4(ip)
        if embedded is not None:
            if ip in IPV4_COMPATIBLE and int(ip) <= 1:
                return False  # :: and ::1
            return embedded.is_global and not embedded.is_multicast
    return ip.is_global and not ip.is_multicast


def check_url(url: str, *, allow_private: bool) -> None:
    """Static checks: scheme, host present, no credentials, no local name or address."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise TargetRefused("the URL is not valid") from None
    if parts.scheme not in (("https", "http") if allow_private else ("https",)):
        raise TargetRefused("the URL must use https")
    if not host:
        raise TargetRefused("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("credentials in the URL are not allowed")
    if allow_private:
        return
    name = host.rstrip(".").lower()
    if name in LOCAL_NAMES or name.endswith((".localhost", ".local", ".internal")):
        raise TargetRefused(f"the host {name} is a local or metadata name")
    try:
        ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return  # a name: resolved and checked at every send
    if not address_allowed(name):
        raise TargetRefused(f"the address {name} is not a public address")


async def resolve_checked(host: str, port: int) -> list[str]:
    """Every address the host resolves to, all of them public, or TargetRefused."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise httpcore.ConnectError(f"cannot resolve {host}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    refused = [a for a in addresses if not address_allowed(a)]
    if refused or not addresses:
        raise TargetRefused(f"{host} resolves to a non-public address")
    return addresses


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the address check in connect_tcp. TLS still
    verifies the certificate against the URL's host name (httpcore passes it as SNI)."""

    def __init__(self, *, allow_private: bool) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._allow_private = allow_private

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        if self._allow_private:
            return await self._inner.connect_tcp(host, port, timeout=timeout,
                                                 local_address=local_address,
                                                 socket_options=socket_options)
        last: Exception | None = None
        for address in await resolve_checked(host, port):
            try:
                return await self._inner.connect_tcp(address, port, timeout=timeout,
                                                     local_address=local_address,
                                                     socket_options=socket_options)
            except httpcore.ConnectError as exc:
                last = exc
        raise last or httpcore.ConnectError(f"cannot connect to {host}")

    async def connect_unix_socket(self, path: str, timeout: float | None = None,  # noqa: ASYNC109
                                  socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        raise TargetRefused("unix sockets are not alert targets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport (its error mapping included) over a pool with the guard."""

    def __init__(self, *, allow_private: bool) -> None:
        super().__init__(retries=0)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl.create_default_context(), max_connections=50,
            max_keepalive_connections=10, keepalive_expiry=30.0, http1=True, http2=False,
            retries=0, network_backend=GuardedBackend(allow_private=allow_private))


def client(*, allow_private: bool, timeout: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=GuardedTransport(allow_private=allow_private),
                             timeout=httpx.Timeout(timeout), follow_redirects=False,
                             trust_env=False, headers={"User-Agent": "qc-collector-alerts/1"})
