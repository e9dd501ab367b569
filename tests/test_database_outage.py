"""`GET /v1/health` answers 503 while PostgreSQL is unreachable and 200 once it is back,
without restarting anything; the API's own requests recover with it.

SQLite is a file opened by the workers themselves: it cannot become unreachable, so this
runs on PostgreSQL only (shown as skipped, with the reason, without a server)."""
import time
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.databases import NO_SERVER, fresh_database, server_url
from tests.live_server import LiveServer, new_account
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.skipif(server_url() is None, reason=NO_SERVER)


def via(proxy: TcpProxy, url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


def health(server: LiveServer) -> int:
    # A new connection each time, so the calls spread over the workers.
    return httpx.get(f"{server.url}/v1/health", timeout=15).status_code


def test_health_follows_the_database_and_the_api_recovers(tmp_path):
    with fresh_database("postgresql", tmp_path, "outage") as url:
        target = urlsplit(url)
        proxy = TcpProxy(target.hostname, target.port).start()
        server = LiveServer(via(proxy, url), tmp_path / "server.log", workers=2)
        try:
            server.start()
            headers = new_account(url)
            partners = f"{server.url}/v1/partners"
            assert httpx.post(partners, json={"name": "Before"}, headers=headers).status_code == 201
            assert [health(server) for _ in range(6)] == [200] * 6

            proxy.stop()
            started = time.monotonic()
            assert [health(server) for _ in range(6)] == [503] * 6
            assert time.monotonic() - started < 30  # answered, not hung on a dead socket
            body = httpx.get(f"{server.url}/v1/health").json()
            assert body == {"status": "unavailable"}

            proxy.start()  # the same address: the database is back
            deadline = time.monotonic() + 10
            while health(server) != 200:
                assert time.monotonic() < deadline, "health did not recover"
                time.sleep(0.2)
            assert [health(server) for _ in range(6)] == [200] * 6
            # Pooled connections that died with the outage are never handed out again.
            for n in range(10):
                response = httpx.post(partners, json={"name": f"After {n}"}, headers=headers)
                assert response.status_code == 201, response.text
        finally:
            server.kill()
            proxy.stop()
