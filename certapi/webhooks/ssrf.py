"""Server-side request forgery guard: webhooks go to public addresses only.

A URL is checked when an endpoint is created or changed (a clear 422), and again on every
connection a sender opens, on the very address it connects to: DNS may have changed
since, or answer differently on purpose (rebinding). ``CERTAPI_WEBHOOK_ALLOW_PRIVATE=1``
turns the guard off, for a receiver on the same machine or network."""
import ipaddress
import socket
import threading
from urllib.parse import urlsplit

from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, PoolManager, Timeout
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util.connection import create_connection

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


# How long an endpoint's create or update waits for DNS: under the time an HTTP client
# waits for the answer. A name with no answer by then passes like one that does not
# resolve (its deliveries are checked again when they are sent).
CHECK_RESOLVE_SECONDS = 2.0


def resolve(host: str, port: int, timeout: float) -> list[Address]:
    """getaddrinfo with a deadline. The C resolver itself waits as long as resolv.conf
    says (5 s per server and attempt, retried), which is longer than any client waits;
    a name without an answer within ``timeout`` is a ``socket.gaierror`` (EAI_AGAIN).
    The lookup runs in a daemon thread left to finish on its own: getaddrinfo cannot
    be interrupted, and a daemon thread never holds up the process's exit."""
    answer: list[list] = []
    failure: list[BaseException] = []

    def lookup() -> None:
        try:
            answer.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except BaseException as exc:  # handed to the caller's thread below
            failure.append(exc)

    thread = threading.Thread(target=lookup, name="certapi-dns", daemon=True)
    thread.start()
    thread.join(timeout)
    if failure:
        raise failure[0]
    if not answer:
        raise socket.gaierror(socket.EAI_AGAIN, f"no DNS answer for {host} within {timeout:g} s")
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in answer[0]]


def check_url(url: str, allow_private: bool = False) -> None:
    """Raise RefusedDestination when ``url`` has no host, or (unless ``allow_private``)
    its host is, or resolves to, a non-public address. A name that does not resolve now
    (or gives no answer within CHECK_RESOLVE_SECONDS) passes: its deliveries fail (and
    are checked again) when they are sent."""
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
        addresses = resolve(host, port or 443, CHECK_RESOLVE_SECONDS)
    except (socket.gaierror, UnicodeError):
        return
    for address in addresses:
        _refuse_unless_public(address)


def _connect_public(conn: HTTPConnection) -> socket.socket:
    """Open ``conn``'s socket to a checked public address of its host. TLS still
    verifies the certificate against the URL's host name (urllib3 passes ``host``, not
    the address connected to, as the server name)."""
    try:
        addresses = resolve(conn.host.strip("[]"), conn.port, _connect_seconds(conn))
    except (socket.gaierror, UnicodeError) as exc:
        raise NewConnectionError(conn, f"cannot resolve {conn.host}: {exc}") from exc
    for address in addresses:
        if not is_public(address):
            raise NewConnectionError(
                conn, f"refused: {conn.host} is not a public address ({address})")
    try:
        return create_connection((str(addresses[0]), conn.port), conn.timeout,
                                 source_address=conn.source_address,
                                 socket_options=conn.socket_options)
    except TimeoutError as exc:
        raise ConnectTimeoutError(conn, f"connecting to {conn.host} timed out") from exc
    except OSError as exc:
        raise NewConnectionError(conn, f"cannot connect to {conn.host}: {exc}") from exc


def _connect_seconds(conn: HTTPConnection) -> float:
    # urllib3 gives the connection its connect timeout as a float, or None for "wait".
    return conn.timeout if isinstance(conn.timeout, (int, float)) else CHECK_RESOLVE_SECONDS


class _GuardedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return _connect_public(self)


class _GuardedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        return _connect_public(self)


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


def client(timeout: float, allow_private: bool, per_host: int = 32) -> PoolManager:
    """The HTTP client senders use: keep-alive connections (up to ``per_host`` to each
    host), no retries, no redirects followed, no proxies from the environment, and
    (unless private destinations are allowed) connections to public addresses only.

    urllib3 rather than httpx: on the sender's path it costs about half the CPU per
    request (bench/PROFILE.md, webhooks), CPU the API's workers share."""
    pool = PoolManager(num_pools=64, maxsize=per_host, block=False, retries=False,
                       timeout=Timeout(connect=timeout, read=timeout))
    if not allow_private:
        pool.pool_classes_by_scheme = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}
    return pool
