"""Server-side request forgery guard: webhooks go to public addresses only.

A URL is checked when an endpoint is created or changed (a clear 422), and again on every
connection a sender opens, on the very address it connects to: DNS may have changed
since, or answer differently on purpose (rebinding). ``CERTAPI_WEBHOOK_ALLOW_PRIVATE=1``
turns the guard off, for a receiver on the same machine or network."""
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class RefusedDestination(ValueError):
    """The destination is not a public address."""


def literal_address(host: str) -> Address | None:
    """The address ``host`` spells, in any form a resolver accepts: ``127.0.0.1``,
    ``[::1]``, and the old IPv4 shorthands ``2130706433``, ``0177.0.0.1``, ``0x7f.1``."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def is_public(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def _refuse_unless_public(address: Address) -> None:
    if not is_public(address):
        raise RefusedDestination(f"the host is, or resolves to, {address}: not a public address")


def resolve(host: str, port: int) -> list[Address]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def check_url(url: str, allow_private: bool = False) -> None:
    """Raise RefusedDestination when ``url`` has no host, or (unless ``allow_private``)
    its host is, or resolves to, a non-public address. A name that does not resolve now
    passes: its deliveries fail (and are checked again) when they are sent."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as exc:  # a stray bracket ("Invalid IPv6 URL"), a port that is not a number
        raise RefusedDestination(str(exc)) from exc
    if not host:
        raise RefusedDestination("the URL has no host")
    if allow_private:
        return
    literal = literal_address(host)
    if literal is not None:
        _refuse_unless_public(literal)
        return
    try:
        addresses = resolve(host, port or 443)
    except (socket.gaierror, UnicodeError):
        return
    for address in addresses:
        _refuse_unless_public(address)


class GuardedBackend(httpcore.SyncBackend):
    """httpcore's socket backend, connecting only to checked public addresses. TLS still
    verifies the certificate against the URL's host name (httpcore passes that name,
    not the address, as the server name)."""

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        try:
            addresses = resolve(host, port)
        except (socket.gaierror, UnicodeError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        for address in addresses:
            if not is_public(address):
                raise httpcore.ConnectError(
                    f"refused: {host} is not a public address ({address})")
        return super().connect_tcp(str(addresses[0]), port, timeout, local_address,
                                   socket_options)


def client(timeout: float, allow_private: bool) -> httpx.Client:
    """The HTTP client senders use: no redirects, no proxies from the environment, and
    (unless private destinations are allowed) the guarded socket backend."""
    transport = httpx.HTTPTransport(retries=0)
    if not allow_private:
        # httpx has no parameter for httpcore's network backend; the pool holds it.
        transport._pool._network_backend = GuardedBackend()
    return httpx.Client(transport=transport, follow_redirects=False, trust_env=False,
                        timeout=timeout)
