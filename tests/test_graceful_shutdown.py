"""SIGTERM to `certapi serve --workers 2` (what systemd, Docker or Kubernetes send): it
stops taking connections, finishes the request it is in the middle of, and exits 0."""
import json
import socket
import time

import httpx

from tests.databases import backend, fresh_database, query
from tests.live_server import LiveServer, new_account


def test_sigterm_finishes_the_request_in_flight_then_exits_cleanly(tmp_path):
    with fresh_database(backend(), tmp_path, "shutdown") as url:
        server = LiveServer(url, tmp_path / "server.log", workers=2).start()
        try:
            headers = new_account(url)
            body = json.dumps({"name": "Sent across the shutdown"}).encode()
            head = (f"POST /v1/partners HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    f"Authorization: {headers['Authorization']}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
            # A request whose body is still arriving when the signal comes.
            conn = socket.create_connection(("127.0.0.1", server.port), timeout=30)
            conn.sendall(head.encode() + body[:10])
            time.sleep(0.5)
            server.process.send_signal(15)
            time.sleep(1)
            refused = False
            try:  # new connections are no longer taken
                httpx.get(f"{server.url}/v1/health", timeout=2)
            except httpx.TransportError:
                refused = True
            conn.sendall(body[10:])
            reply = b""
            while chunk := conn.recv(65536):
                reply += chunk
            conn.close()
            assert reply.startswith(b"HTTP/1.1 201 "), reply
            assert refused
            assert server.process.wait(30) == 0
        finally:
            server.kill()
        assert query(url, "SELECT name FROM partner") == [("Sent across the shutdown",)]
        assert "Traceback" not in server.log()
